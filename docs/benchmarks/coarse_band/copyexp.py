"""Offline copy-test experiments on a bench-dedup dump (issue 15): stage 1 caches the
candidate pairs and their parts as dedup computes them; stage 2 rescores variants."""
import pickle, sys, time
import numpy as np
from samestyle import contract as C, photohash as PH, photoreg as PR
from samestyle import dedup as D
from samestyle.dedup import candidates as CD, scoring as S, titles as T
from samestyle.bench.dedup.scoring import score as bench_score

def load(stem):
    d = pickle.load(open(stem + ".pkl", "rb"))
    return d, np.load(stem + "-greys.npy")

def parts(d, greys):
    img, txt = d["vectors"][C.IMAGE_VEC], d["vectors"][C.TEXT_VEC]
    n = len(img); titles = d["extra"]["title"]; colours = d["extra"].get(C.DEDUP_COLOUR_FIELD)
    hashes = d["extra"][C.PHOTO_HASH]
    near = [CD.nearest(img, d["groups"], CD.NEIGHBOURS, 1024, CD.EXACT_MAX),
            CD.nearest(txt, d["groups"], CD.NEIGHBOURS, 1024, CD.EXACT_MAX)]
    sigs, has = PH.parse(hashes)
    near.append(CD.signature_nearest(sigs, has, d["groups"], CD.NEIGHBOURS, 1024, CD.EXACT_MAX))
    i, j = CD.candidate_pairs(n, *near)
    ok = ~S.kept_apart(titles, colours, i, j)
    i, j = i[ok], j[ok]
    overlap = T.title_overlap(titles, i, j)
    cos = S._dot_pairs(np.asarray(img, np.float32), i, j)
    both = has[i] & has[j]
    sig = np.zeros(len(i), np.float32)
    sig[both] = PH.similarity(sigs, i[both], j[both], C.DEDUP_HASH_FLOOR)
    sigcos = np.zeros(len(i), np.float32)
    sigcos[both] = PH.cosine(sigs, i[both], j[both])
    gate = both & (sig < 1) & S.registration_gate(cos, overlap)
    gp = greys.reshape(len(greys), -1).any(1)
    gate &= gp[i] & gp[j]
    return dict(i=i, j=j, overlap=overlap, cos=cos, both=both, sig=sig, sigcos=sigcos, gate=gate)

# --- the aligned measures -------------------------------------------------------------
def _resize_matrix(n_in, n_out):
    """Area-average resampling matrix [n_out, n_in]."""
    m = np.zeros((n_out, n_in), np.float32)
    for o in range(n_out):
        a, b = o * n_in / n_out, (o + 1) * n_in / n_out
        for k in range(int(a), int(np.ceil(b))):
            m[o, k] = min(b, k + 1) - max(a, k)
    return m / m.sum(1, keepdims=True)

RH, RW = _resize_matrix(80, 32), _resize_matrix(60, 32)
DCT = PH._dct_matrix(32).astype(np.float32)

def lowsig(imgs):  # [P, 80, 60] -> unit [P, 63]
    small = RH[None] @ imgs @ RW.T[None]
    low = (DCT[None] @ small @ DCT.T[None])[:, :8, :8].reshape(len(imgs), -1)[:, 1:]
    return low / (np.linalg.norm(low, axis=1, keepdims=True) + 1e-6)

def aligned(P, greys_f, i, j, batch=256, smooth_sigmas=(1.5, 3.0)):
    """For each pair: band NCC (as dedup), aligned low-DCT signature cosine, smooth NCCs."""
    from scipy.ndimage import gaussian_filter
    out = {"band": np.zeros(len(i), np.float32), "asig": np.zeros(len(i), np.float32)}
    for s in smooth_sigmas:
        out[f"sm{s}"] = np.zeros(len(i), np.float32)
    _, h, w = P.smooth.shape
    for s0 in range(0, len(i), batch):
        a, b = i[s0:s0 + batch], j[s0:s0 + batch]
        src, dst, x, y = PR.align(P, a, b)  # dedup's own alignment
        sl = slice(s0, s0 + len(a))
        out["band"][sl] = PR._ncc(PR._sample(P.bands[0][src], x, y), P.bands[0][dst].reshape(len(dst), -1))  # the fine band
        for bk, bv in getattr(P, "extra_bands", {}).items():
            out.setdefault(bk, np.zeros(len(i), np.float32))[sl] = PR._ncc(PR._sample(bv[src], x, y), bv[dst].reshape(len(dst), -1))
        if getattr(P, "bands_only", False):
            continue
        g_src = PR._sample(P.raw[src], x, y).reshape(-1, h, w)
        g_dst = P.raw[dst]
        out["asig"][sl] = (lowsig(g_src) * lowsig(g_dst)).sum(1)
        for s in smooth_sigmas:
            fa = gaussian_filter(g_src, (0, s, s)).reshape(len(a), -1)
            fb = gaussian_filter(g_dst, (0, s, s)).reshape(len(a), -1)
            out[f"sm{s}"][sl] = PR._ncc(fa, fb)
    return out

def stage1(stem):
    d, greys = load(stem)
    t = time.time()
    p = parts(d, greys)
    print("candidates", len(p["i"]), "gated", int(p["gate"].sum()), f"{time.time()-t:.0f}s", flush=True)
    gi, gj = p["i"][p["gate"]], p["j"][p["gate"]]
    rows, inv = np.unique(np.concatenate([gi, gj]), return_inverse=True)
    P = PR.Prepared(greys[rows]); P.raw = greys[rows].astype(np.float32)
    t = time.time()
    al = aligned(P, None, inv[:len(gi)], inv[len(gi):])
    print("aligned", f"{time.time()-t:.0f}s", flush=True)
    np.savez(stem + "-parts.npz", **p, **{"al_" + k: v for k, v in al.items()})

def stage1b(stem, bands):
    from scipy.ndimage import gaussian_filter
    d, greys = load(stem)
    p = dict(np.load(stem + "-parts.npz"))
    g = p["gate"]; gi, gj = p["i"][g], p["j"][g]
    rows, inv = np.unique(np.concatenate([gi, gj]), return_inverse=True)
    P = PR.Prepared(greys[rows]); raw = greys[rows].astype(np.float32)
    P.extra_bands = {f"b{a}-{b}": gaussian_filter(raw, (0, a, a)) - gaussian_filter(raw, (0, b, b)) for a, b in bands}
    P.bands_only = True
    al = aligned(P, None, inv[:len(gi)], inv[len(gi):], smooth_sigmas=())
    p.update({"al_" + k: v for k, v in al.items() if k.startswith("b")})
    np.savez(stem + "-parts.npz", **p)

if __name__ == "__main__":
    if len(sys.argv) > 2:
        stage1b(sys.argv[1], [tuple(map(float, b.split(","))) for b in sys.argv[2:]])
    else:
        stage1(sys.argv[1])

"""Rescore cached dedup parts with a copy-evidence variant; strict F1 per threshold (issue 15)."""
import pickle, sys
import numpy as np
from samestyle import contract as C, photoreg as PR
from samestyle import dedup as D
from samestyle.dedup import scoring as S

FINE_FLOOR, FINE_TOP = 0.85, 0.95  # the fine band's stretch, as dedup ran it before the coarse band
from samestyle.bench.dedup.scoring import score as bench_score

def f1s(stem, variant, ths=(0.9, 0.91, 0.92, 0.93, 0.94, 0.95), **kw):
    d = pickle.load(open(stem + ".pkl", "rb")); p = dict(np.load(stem + "-parts.npz"))
    n = len(d["ids"]); g = p["gate"]
    copy = p["sig"].copy()
    band = np.zeros_like(copy); band[g] = PR.similarity(p["al_band"], FINE_FLOOR, FINE_TOP)
    extra = np.zeros_like(copy)
    if variant == "asig":
        extra[g] = np.clip((p["al_asig"] - kw["floor"]) / (1 - kw["floor"]), 0, 1)
    elif variant.startswith(("b0", "b1", "b2", "sm")):
        extra[g] = np.clip((p["al_" + variant] - kw["floor"]) / (kw.get("top", 1) - kw["floor"]), 0, 1)
    if kw.get("noband"):
        band[:] = 0
    copy = np.maximum(copy, np.maximum(band, extra))
    photo = p["cos"].copy()
    b = p["both"]
    photo[b] = (1 - C.DEDUP_HASH_WEIGHT) * photo[b] + C.DEDUP_HASH_WEIGHT * copy[b]
    sc = S.pair_score(photo, p["overlap"])
    keep = S.mutual_best(n, p["i"], p["j"], sc)
    pairs = D.Pairs(p["i"][keep], p["j"][keep], sc[keep].astype(np.float32))
    out = []
    for th in ths:
        q = pairs.above(th)
        cids = D.cluster_ids(n, q)
        r = bench_score(cids, d["truth"], d["same_photo"], th, len(q))
        out.append((th, r["tp"], r["predicted_pairs"] - r["byte_identical_linked"], r["precision"], r["recall"], r["f1"]))
    return out

if __name__ == "__main__":
    stem, variant = sys.argv[1], sys.argv[2]
    kw = {k: float(v) for k, v in (a.split("=") for a in sys.argv[3:])}
    for row in f1s(stem, variant, **kw):
        print(variant, kw, *row)

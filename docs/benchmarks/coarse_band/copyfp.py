import pickle, sys
import numpy as np
from samestyle import contract as C, photoreg as PR
from samestyle.dedup import scoring as S

FINE_FLOOR, FINE_TOP = 0.85, 0.95  # the fine band's stretch, as dedup ran it before the coarse band
stem = sys.argv[1]
d = pickle.load(open(stem + ".pkl", "rb")); p = dict(np.load(stem + "-parts.npz"))
n = len(d["ids"]); g = p["gate"]; ncat = n - len(d["truth"])
band = np.zeros_like(p["sig"]); band[g] = PR.similarity(p["al_band"], FINE_FLOOR, FINE_TOP)
copy = np.maximum(p["sig"], band)
photo = p["cos"].copy(); b = p["both"]
photo[b] = 0.05 * photo[b] + 0.95 * copy[b]
sc = S.pair_score(photo, p["overlap"])
keep = S.mutual_best(n, p["i"], p["j"], sc) & (sc >= 0.93)
sp = d["same_photo"]; i, j = p["i"], p["j"]
cat = (i < ncat) & (j < ncat) & ~((sp[i] >= 0) & (sp[i] == sp[j]))
fp = keep & cat
print("links", keep.sum(), "catalogue non-identical links", fp.sum())
src = np.where(p["sig"] >= band, "sig", "band")
for s in ("sig", "band"):
    m = fp & (src == s)
    print(s, m.sum(), "sigcos q", np.round(np.quantile(p["sigcos"][m], [0.1, .5, .9]), 4) if m.any() else "",
          "overlap q", np.round(np.quantile(p["overlap"][m], [0.1, .5, .9]), 3) if m.any() else "",
          "cos q", np.round(np.quantile(p["cos"][m], [0.1, .5, .9]), 3) if m.any() else "")
gp = np.cumsum(g) - 1
m = fp & g
print("fp gated", m.sum(), "band ncc q", np.round(np.quantile(p["al_band"][gp[m]], [0.1, .25, .5, .9]), 4))
tr = {(min(a, b), max(a, b)) for a, b in d["truth"]}
t = np.array([(a, bb) in tr for a, bb in zip(i.tolist(), j.tolist())])
m = keep & t
print("tp links", m.sum(), "sig-driven", (m & (src == "sig")).sum(), "band-driven", (m & (src == "band")).sum())
print("tp sigcos q", np.round(np.quantile(p["sigcos"][m & (src=='sig')], [0.05, .1, .5]), 4))

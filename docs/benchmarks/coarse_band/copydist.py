import pickle, sys
import numpy as np
stem = sys.argv[1]
d = pickle.load(open(stem + ".pkl", "rb")); p = dict(np.load(stem + "-parts.npz"))
n = len(d["ids"]); g = p["gate"]; gi, gj = p["i"][g], p["j"][g]
truth = {(min(a, b), max(a, b)) for a, b in d["truth"]}
t = np.array([(a, b) in truth for a, b in zip(gi.tolist(), gj.tolist())])
sp = d["same_photo"]; samep = (sp[gi] >= 0) & (sp[gi] == sp[gj])
print("gated", len(gi), "truth", t.sum(), "byte-identical", samep.sum())
other = ~t & ~samep
for k in sys.argv[2:] or ["al_band"]:
    v = p[k]
    q = lambda x: np.round(np.quantile(x, [0.05, 0.1, 0.25, 0.5]), 4)
    print(k, "truth q05/10/25/50", q(v[t]), " other q99/99.5/99.9/max", np.round(np.quantile(v[other], [0.99, 0.995, 0.999, 1]), 4))
    for thr in ([0.98, 0.985, 0.99, 0.995] if k == "al_asig" else [0.9, 0.93, 0.95, 0.97]):
        print(f"   >= {thr}: truth {(v[t] >= thr).mean():.3f}  other {(v[other] >= thr).sum()}")

import pickle, sys
import numpy as np
stem = sys.argv[1]; key = sys.argv[2] if len(sys.argv) > 2 else "al_band"
d = pickle.load(open(stem + ".pkl", "rb")); p = dict(np.load(stem + "-parts.npz"))
g = p["gate"]; idx = {(a, b): k for k, (a, b) in enumerate(zip(p["i"].tolist(), p["j"].tolist()))}
gpos = np.cumsum(g) - 1
rows = []
for (a, b), kind, how in zip(d["truth"], d["kinds"], d["edits"]):
    k = idx.get((min(a, b), max(a, b)))
    if kind == "title": continue
    ed = how.split("/")[0]
    if k is None: rows.append((ed, "nocand", None)); continue
    if not g[k]: rows.append((ed, "sig1" if p["sig"][k] >= 1 else "ungated", p["cos"][k])); continue
    rows.append((ed, "gated", p[key][gpos[k]]))
from collections import defaultdict
by = defaultdict(list)
for ed, st, v in rows:
    by[ed].append((st, v))
for ed, L in sorted(by.items()):
    vs = np.array([v for st, v in L if st == "gated"])
    st = {s: sum(1 for x, _ in L if x == s) for s in ("nocand", "sig1", "ungated", "gated")}
    print(f"{ed:18s} n={len(L):3d} {st} band<0.93: {(vs < 0.93).sum() if len(vs) else 0} median {np.median(vs) if len(vs) else 0:.3f}")

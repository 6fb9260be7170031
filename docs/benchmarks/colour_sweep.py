"""The colour-weight sweep of docs/model.md (model v2, run 7): how the retrieval table moves
when a colour-apart model's colour part weighs w in the stored AND the query vectors.

Encodes the catalogue once with the torch fusion encoder (cached features), then rescales
each vector's two parts exactly (style by sqrt(1 - w^2), colour by w; both parts are unit
length inside the model) and scores samestyle.evaluate's directions, own pairs and modifier
queries on the model's held-out groups, the same queries as `samestyle eval`.

    .venv/bin/python docs/benchmarks/colour_sweep.py MODEL_DIR 0,0.15,0.25,0.35 OUT.json
    (LIMIT=3000 reads only the first rows, for a quick check)
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from samestyle import dataset
from samestyle import evaluate as ev
from samestyle.cli.eval import _modifier_local
from samestyle.model import checkpoint, features

model_dir, weights, out = Path(sys.argv[1]), [float(x) for x in sys.argv[2].split(",")], sys.argv[3]
cat = Path(os.environ.get("MYNTRA", "../shared/datasets/myntra/products.csv"))
fusion, manifest = checkpoint.load(model_dir)
k, c0 = fusion.cfg.colour_dims, fusion.cfg.colour_weight
if not k:
    sys.exit(f"{model_dir} keeps no colour apart (fusion.colour_dims is 0)")
limit = int(os.environ["LIMIT"]) if os.environ.get("LIMIT") else None
data = dataset.read(cat, label_col="style_group", colour_col="baseColour", limit=limit)
feats = features.for_catalogue(data, Path(os.environ.get("SAMESTYLE_DATA_DIR", ".samestyle")) / "cache",
                               progress=False, backbone=checkpoint.image_backbone(model_dir, manifest))
tr = manifest["training"]
cand = np.flatnonzero(dataset.heldout_groups(data.labels, tr["heldout"], tr.get("split_seed", 0)))
queries = ev.label_queries(data.labels, cand, None, 0)
mods = ev.modifier_queries(data.labels, data.colours, cand, feats.has_image, 3000, 0)
views = features.fused_views(fusion, feats)
mod_views = _modifier_local(fusion, feats, mods)
both = np.flatnonzero(feats.has_image & (feats.attention_mask.sum(1) > 0))
pool = np.intersect1d(cand, both)
pool = np.sort(np.random.default_rng(0).choice(pool, size=min(5000, len(pool)), replace=False))
rel_mod, own = [r for _, _, r in mods], np.array([a for a, _, _ in mods])


def rescale(v: np.ndarray, w: float) -> np.ndarray:
    v = v.copy()
    v[:, :-k] *= np.sqrt(1 - w * w) / np.sqrt(1 - c0 * c0)
    v[:, -k:] *= w / c0
    return v


res = {}
for w in weights:
    V = {n: rescale(x, w) for n, x in views.items()}
    M = {n: rescale(x, w) for n, x in mod_views.items()}
    r = {d: (m["r@1"], m["r@10"]) for d, m in ev.table(V, data.labels, queries).items()}
    r["t->own i"] = ev.own_pair(V["text"], V["image"], pool)["r@10"]
    r["i->own t"] = ev.own_pair(V["image"], V["text"], pool)["r@10"]
    r["mod word"] = ev.hits(M["word"], V["fused"], rel_mod, own)["hit@10"]
    r["mod but"] = ev.hits(M["but"], V["fused"], rel_mod, own)["hit@10"]
    r["mod word->img"] = ev.hits(M["word"], V["image"], rel_mod, own)["hit@10"]
    r["photo alone"] = ev.hits(V["image"][own], V["fused"], rel_mod, own)["hit@10"]
    res[w] = r
    print(w, json.dumps(r), flush=True)
Path(out).write_text(json.dumps(res, indent=1) + "\n")

"""The composed modifier query of docs/model.md (run 11): is "photo + colour word" held back
by the fusion encoder or by the photo's style part? Builds the query in the split space
instead of through the fusion encoder: the style part of the photo view (colour-blind by
construction in run 11) joined to the colour part of the colour word's title view (or of
the fused photo + word view), and scores it as `samestyle eval`'s modifier line does (the
same 3,000 held-out queries, image_vec gallery, hit@10).

    .venv/bin/python docs/benchmarks/modifier_composed.py plugin/model/default OUT.json
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from samestyle import dataset
from samestyle import evaluate as ev
from samestyle.cli.eval import _modifier_local
from samestyle.model import checkpoint, features
from samestyle.train import Phrases

model_dir, out = Path(sys.argv[1]), sys.argv[2]
cat = Path(os.environ.get("MYNTRA", "../shared/datasets/myntra/products.csv"))
data = dataset.read(cat, label_col="style_group", colour_col="baseColour")
fusion, manifest = checkpoint.load(model_dir)
k = fusion.cfg.colour_dims
if not k:
    sys.exit(f"{model_dir} keeps no colour apart (fusion.colour_dims is 0)")
feats = features.for_catalogue(data, Path(os.environ.get("SAMESTYLE_DATA_DIR", ".samestyle")) / "cache",
                               progress=False, backbone=checkpoint.image_backbone(model_dir, manifest))
tr = manifest["training"]
cand = np.flatnonzero(dataset.heldout_groups(data.labels, tr["heldout"], tr.get("split_seed", 0)))
mods = ev.modifier_queries(data.labels, data.colours, cand, feats.has_image, 3000, 0)
views = features.fused_views(fusion, feats)
fused_mod = _modifier_local(fusion, feats, mods)["word"]
colours = sorted({c for _, c, _ in mods})
ph = Phrases(colours)
no_photo = torch.zeros(1, *feats.image_tokens.shape[1:])  # masked out: the title view of the word alone
no_photo_mask = torch.zeros(1, feats.image_tokens.shape[1], dtype=torch.long)
word = {}
with torch.no_grad():
    for c in colours:
        r = ph.colour_index[c] * ph.n_templates
        word[c] = fusion(no_photo, no_photo_mask, ph.tokens[r:r + 1], ph.mask[r:r + 1]).numpy()[0]
rel, own = [r for _, _, r in mods], np.array([a for a, _, _ in mods])
gallery = views["image"]
style = gallery[own][:, :-k]


def composed(colour: np.ndarray, w: float | None) -> np.ndarray:
    """The photo's style part and `colour`, as trained (w None) or re-weighted to w."""
    if w is None:
        return np.concatenate([style, colour], 1)
    s = style / np.linalg.norm(style, axis=1, keepdims=True) * np.sqrt(1 - w * w)
    return np.concatenate([s, colour / np.linalg.norm(colour, axis=1, keepdims=True) * w], 1)


res = {"model": manifest.get("model_version"), "queries": len(mods), "gallery": "image_vec",
       "fused modifier (as served)": ev.hits(fused_mod, gallery, rel, own)["hit@10"],
       "photo alone": ev.hits(gallery[own], gallery, rel, own)["hit@10"]}
for name, colour in (("word's title view", np.stack([word[c][-k:] for _, c, _ in mods])),
                     ("fused modifier", fused_mod[:, -k:])):
    for w in (None, 0.5, 0.7):
        res[f"photo style + {name} colour" + ("" if w is None else f", colour weight {w}")] = \
            ev.hits(composed(colour, w), gallery, rel, own)["hit@10"]
print(json.dumps(res, indent=1))
Path(out).write_text(json.dumps(res, indent=1) + "\n")

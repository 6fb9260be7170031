"""Raw (untrained) photo search by photo input, as `samestyle eval` scores it: i->i on the
same-style queries of the shipped models' held-out groups (`--heldout 0.27`, split seed 0)
and of every product of one category (default Footwear), the
pooled ImageNet features of EfficientNet-Lite0 on the RGB photo and on its luminance
(photo input "grey-colour", head-map channels only), whole catalogue as gallery.

    .venv/bin/python docs/benchmarks/raw_photo_input.py OUT.json [COL=VALUE]
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from samestyle import contract as C
from samestyle import dataset
from samestyle import evaluate as ev
from samestyle.model import features

CAT = Path(os.environ.get("MYNTRA", "../shared/datasets/myntra/products.csv"))
CACHE = Path(os.environ.get("SAMESTYLE_DATA_DIR", ".samestyle")) / "cache"


def main(out: str, check: str = "masterCategory=Footwear") -> None:
    col, val = check.split("=", 1)
    data = dataset.read(CAT, label_col="style_group", colour_col="baseColour")
    rel = ev.same_label_index(data.labels)
    inside = np.flatnonzero(dataset.matching(CAT, [(col, val)], len(data)))
    held = np.flatnonzero(dataset.heldout_groups(data.labels, 0.27, 0))
    report = {"gallery": len(data), check: {"products": int(len(inside))}, "held-out groups": {}}
    for photo_input in C.PHOTO_INPUTS:
        f = features.for_catalogue(data, CACHE, progress=False, photo_input=photo_input)
        img = features.backbone_vectors(f)["image"]
        for name, cand in (("held-out groups", held), (check, inside)):
            q = ev.label_queries(data.labels, cand, None, 0)
            report[name][photo_input] = ev.metrics(ev.first_relevant_ranks(img[q], img, q, rel))
            report[name]["queries"] = int(len(q))
        print(photo_input, {k: report[k][photo_input] for k in ("held-out groups", check)}, flush=True)
    Path(out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])

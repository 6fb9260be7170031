"""The colour probe of docs/model.md (model v2, run 9): how well does each photo descriptor
name a product's `baseColour`? A linear probe (logistic regression on standardised
features) on 9,000 random Myntra products with a photo and one of the colours that at least
100 products have, scored on 3,000 others. Descriptors: EfficientNet-Lite0's pooled ImageNet
features of the photo (RGB, as every model up to run 8 sees it) and of its luminance (photo
input "grey-colour"); the colour histogram that rides beside them (5 tokens x 27 bins); the
same histogram with each pixel weighted by how far its colour is from the photo's border
colour (a crude foreground); and the two concatenations the fusion encoder receives.

    .venv/bin/python docs/benchmarks/colour_probe.py OUT.json
    (reads the cached features of `samestyle train`/`eval`: SAMESTYLE_DATA_DIR, default .samestyle)
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from samestyle import contract as C
from samestyle import dataset
from samestyle.model import features
from samestyle.model import preprocess as pp

CAT = Path(os.environ.get("MYNTRA", "../shared/datasets/myntra/products.csv"))
CACHE = Path(os.environ.get("SAMESTYLE_DATA_DIR", ".samestyle")) / "cache"
HEAD = C.IMAGE_FEATURE_DIM


def foreground_histogram(photo: Path, consts: dict) -> np.ndarray:
    """[5 * 27]: the colour map of backbones.colour_map, each pixel weighted by its distance
    from the median border colour, pooled as the image tokens are (global + 2x2)."""
    px = torch.from_numpy(pp.decode_image(photo.read_bytes(), consts)[None])
    rgb = F.avg_pool2d((px * 128 + 127) / 255.0, 4)
    border = torch.cat([rgb[..., 0, :], rgb[..., -1, :], rgb[..., :, 0], rgb[..., :, -1]], -1)
    bg = border.median(-1).values[..., None, None]
    w = 1 - torch.exp(-((rgb - bg) ** 2).sum(1, keepdim=True) / (2 * 0.1**2))
    lv = torch.linspace(0, 1, C.COLOUR_LEVELS)
    pal = torch.cartesian_prod(lv, lv, lv).view(1, C.COLOUR_BINS, 3, 1, 1)
    share = torch.softmax(((rgb[:, None] - pal) ** 2).sum(2) * (-0.5 / C.COLOUR_SIGMA**2), 1) * w
    m = (F.avg_pool2d(share, 8) / F.avg_pool2d(w, 8).clamp_min(1e-3)).sqrt()[0].numpy()  # [27, 5, 5]
    regions = [m[:, a:b, c:e].mean((1, 2)) for a, b in ((0, 3), (2, 5)) for c, e in ((0, 3), (2, 5))]
    return np.concatenate([m.mean((1, 2))] + regions) * C.COLOUR_SCALE


def main(out: str) -> None:
    data = dataset.read(CAT, label_col="style_group", colour_col="baseColour")
    rgb = features.for_catalogue(data, CACHE, progress=False)
    gc = features.for_catalogue(data, CACHE, progress=False, photo_input=C.PHOTO_GREY_COLOUR)
    col = np.array([c or "" for c in data.colours])
    names, counts = np.unique(col, return_counts=True)
    common = names[(counts >= 100) & (names != "")]
    rng = np.random.default_rng(0)
    sel = rng.choice(np.flatnonzero(rgb.has_image & np.isin(col, common)), 12000, replace=False)
    consts = C.preprocess_constants()
    grey_head = gc.image_tokens[sel, 0, :HEAD].astype(np.float32)
    hist = gc.image_tokens[sel, :, HEAD:].astype(np.float32).reshape(len(sel), -1)
    fg = np.stack([foreground_histogram(Path(data.photos[i]), consts) for i in sel])
    descriptors = {
        "rgb imagenet (global)": rgb.image_tokens[sel, 0].astype(np.float32),
        "grey imagenet (global)": grey_head,
        "colour histogram (5 x 27)": hist,
        "foreground colour histogram (5 x 27)": fg,
        "grey imagenet + histogram": np.concatenate([grey_head, hist], 1),
        "grey imagenet + foreground histogram": np.concatenate([grey_head, fg], 1),
    }
    y = col[sel]
    report = {"train": 9000, "test": 3000, "classes": len(common),
              "majority": round(float(max(np.mean(y[9000:] == c) for c in common)), 3), "top1": {}}
    for name, x in descriptors.items():
        sc = StandardScaler().fit(x[:9000])
        clf = LogisticRegression(max_iter=300, C=0.5).fit(sc.transform(x[:9000]), y[:9000])
        report["top1"][name] = round(float(clf.score(sc.transform(x[9000:]), y[9000:])), 3)
        print(f"{name:40s} {report['top1'][name]}", flush=True)
    Path(out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

"""`samestyle bench dedup`, the catalogue's own copies: linked pairs of two catalogue
products (no re-listing, no byte-identical photo: `linked_catalogue_pairs`) whose grey
NEAR_SIZE photos (`grey_thumb`, decoded as ingest decodes them) are one photo saved
twice by `copy_score` (the zero-offset NCC of the smoothed photos) at or above the limit
`near_limit` measures on the run's own JPEG-only re-listings (NEAR_NCC when too few);
`catalogue_link_kinds` tells the linked pairs apart by the catalogue's own facts (copies,
the same title and colour, another colour, the rest), `near_identical_linked` counts the
copies, and `false_links_sheet` draws pairs side by side for a person to judge."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from ... import dedup as D
from ... import photoreg as PR
from ...model.preprocess import open_photo

NEAR_NCC = 0.999  # copy_score at or above which two photos are one photo saved twice (fallback)
NEAR_QUANTILE = 0.05  # ... measured instead: this quantile of the JPEG-only re-listings' copy_score
NEAR_SMOOTH = 1.0  # sigma (pixels) of the smoothing before the correlation: JPEG noise is finer
NEAR_MIN_SAMPLES = 20  # fewer JPEG-only re-listings than this: NEAR_NCC
NEAR_SIZE = PR.GREY_SIZE  # the grey photo they are compared at (width, height): dedup's registration size


def grey_thumb(data: bytes, consts: dict) -> np.ndarray:
    """The photo decoded as ingest decodes it, in grey at NEAR_SIZE (uint8)."""
    return PR.grey(open_photo(data, consts))


def linked_catalogue_pairs(cids: np.ndarray, n_catalogue: int, same_photo: np.ndarray) -> np.ndarray:
    """The (a, b) row pairs one cluster holds where both are catalogue products (rows
    below `n_catalogue`, no re-listing) not sharing a byte-identical photo."""
    rows = np.flatnonzero(np.arange(len(cids)) < n_catalogue)
    order = rows[np.argsort(cids[rows], kind="stable")]
    out = []
    for g in np.split(order, np.flatnonzero(np.diff(cids[order])) + 1):
        if len(g) > 1:
            a, b = np.triu_indices(len(g), 1)
            out.append(np.stack([g[a], g[b]], axis=1))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)
    sa, sb = same_photo[pairs[:, 0]], same_photo[pairs[:, 1]]
    return pairs[~((sa >= 0) & (sa == sb))]


def grey_difference(ga: np.ndarray, gb: np.ndarray) -> float:
    """Mean absolute grey-level difference of two grey thumbnails (0..255)."""
    return float(np.abs(ga.astype(np.int16) - gb).mean())


def copy_score(ga: np.ndarray, gb: np.ndarray) -> float:
    """How nearly two grey thumbnails are one photo saved twice: the normalised
    cross-correlation, at zero offset, of the photos smoothed by NEAR_SMOOTH (1 = the same
    picture up to brightness and contrast; JPEG noise is mostly finer than the smoothing).
    A flat photo correlates with nothing (0)."""
    x, y = (gaussian_filter(g.astype(np.float32), NEAR_SMOOTH).ravel() for g in (ga, gb))
    x, y = x - x.mean(), y - y.mean()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    return float(x @ y) / (nx * ny) if nx > 1e-3 and ny > 1e-3 else 0.0


def near_limit(truth: list[tuple[int, int]], kinds: list[str], edits: list[str], grey_of) -> dict:
    """The copy_score at or above which two photos count as one photo saved twice,
    measured on this run: the NEAR_QUANTILE of the scores between each JPEG-only
    re-listing (photo re-compressed, nothing else changed) and its source, so that
    1 - NEAR_QUANTILE of such copies pass. With fewer than NEAR_MIN_SAMPLES of them
    (a quick run), NEAR_NCC."""
    scores = []
    for (a, b), kind, how in zip(truth, kinds, edits):
        if kind == "photo" and how == "jpeg":
            ga, gb = grey_of(a), grey_of(b)
            if ga is not None and gb is not None:
                scores.append(copy_score(ga, gb))
    test = f"zero-offset NCC of the grey {NEAR_SIZE[0]}x{NEAR_SIZE[1]} photos smoothed by sigma {NEAR_SMOOTH}"
    if len(scores) < NEAR_MIN_SAMPLES:
        return {"test": test, "min_ncc": NEAR_NCC, "from": f"default (only {len(scores)} JPEG-only re-listings)",
                "jpeg_relistings": len(scores)}
    return {"test": test, "min_ncc": round(float(np.quantile(scores, NEAR_QUANTILE)), 5),
            "from": f"quantile {NEAR_QUANTILE} of the JPEG-only re-listings' score against their source",
            "jpeg_relistings": len(scores), "jpeg_median": round(float(np.median(scores)), 5)}


def _scored_catalogue_pairs(cids: np.ndarray, n_catalogue: int, same_photo: np.ndarray, grey_of):
    """(row a, row b, grey a, grey b, copy_score) of each linked catalogue pair whose
    photos both read."""
    for a, b in linked_catalogue_pairs(cids, n_catalogue, same_photo).tolist():
        ga, gb = grey_of(a), grey_of(b)
        if ga is not None and gb is not None:
            yield a, b, ga, gb, copy_score(ga, gb)


def _listing_text(title, colour) -> tuple[str, str]:
    return D.normalised(title), D.normalised(colour)


def catalogue_link_kinds(cids: np.ndarray, n_catalogue: int, same_photo: np.ndarray, grey_of, limit: float,
                         titles, colours) -> dict:
    """What the linked catalogue pairs the benchmark judges are (`linked_catalogue_pairs`
    whose photos read), by the catalogue's own facts: `copies` (copy_score at or above
    `limit`, set apart by the second scoring); of the rest, `same_listing_text` (the same
    title and the same stored colour, `colours` all None when none is stored: perhaps one
    product listed twice with two photos, perhaps two products under a generic title),
    `other_colour` (both colours stored and not the same: two colourways, never one
    product) and `other`. A diagnosis of the false links; no score depends on it but
    `listing_text_apart`'s bound."""
    out = {"copies": 0, "same_listing_text": 0, "other_colour": 0, "other": 0}
    for a, b, _, _, sc in _scored_catalogue_pairs(cids, n_catalogue, same_photo, grey_of):
        ta, tb = _listing_text(titles[a], colours[a]), _listing_text(titles[b], colours[b])
        if sc >= limit:
            out["copies"] += 1
        elif ta == tb and ta[0]:
            out["same_listing_text"] += 1
        elif ta[1] and tb[1] and ta[1] != tb[1]:
            out["other_colour"] += 1
        else:
            out["other"] += 1
    return out


def near_identical_linked(cids: np.ndarray, n_catalogue: int, same_photo: np.ndarray, grey_of,
                          limit: float = NEAR_NCC) -> int:
    """How many linked catalogue pairs (`linked_catalogue_pairs`) are one photo saved twice:
    the copy_score of their grey thumbnails (`grey_of(row)`, None when the photo is
    unreadable) is at least `limit` (`near_limit`)."""
    none = [None] * len(cids)
    return catalogue_link_kinds(cids, n_catalogue, same_photo, grey_of, limit, none, none)["copies"]


def false_links_sheet(cids: np.ndarray, n_catalogue: int, same_photo: np.ndarray, grey_of, path: Path,
                      k: int = 24, seed: int = 0, limit: float = NEAR_NCC, apart: bool = False) -> int:
    """A picture of up to `k` linked catalogue pairs the benchmark counts as false (not
    byte-identical, under the copy limit), or with `apart` those it sets apart as the
    catalogue's own copies, drawn at random, each pair's grey photos side by side with
    their copy_score: whether they are duplicates is for a person to judge. Returns how
    many were drawn."""
    pairs = [p[2:] for p in _scored_catalogue_pairs(cids, n_catalogue, same_photo, grey_of) if (p[4] >= limit) == apart]
    pairs = random.Random(seed).sample(pairs, min(k, len(pairs)))
    w, h = NEAR_SIZE
    cols, cell = 6, (2 * w * 2 + 8, h * 2 + 16)
    rows = max(1, -(-len(pairs) // cols))
    sheet = Image.new("L", (cols * cell[0], rows * cell[1]), 255)
    draw = ImageDraw.Draw(sheet)
    for n, (ga, gb, sc) in enumerate(pairs):
        x, y = (n % cols) * cell[0], (n // cols) * cell[1]
        sheet.paste(Image.fromarray(ga).resize((2 * w, 2 * h)), (x, y))
        sheet.paste(Image.fromarray(gb).resize((2 * w, 2 * h)), (x + 2 * w + 2, y))
        draw.text((x + 2, y + 2 * h + 2), f"copy score {sc:.4f}", fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return len(pairs)

"""`samestyle bench dedup`: duplicate detection scored against real duplicates, and its
cost as the catalogue grows.

- Re-listings: a sample of the collection's products is listed again the way sellers
  do it: the photo re-cropped, resized, re-compressed or watermarked; the title
  reordered, abbreviated or typo'd; or both. The re-listings are encoded by the same
  encoder as the collection (Triton, or in-process ONNX with --encoder onnx), mixed in
  with every stored product, and `samestyle dedup`'s clustering (samestyle.dedup: the
  same code) is scored as pairs against that truth: precision, recall and F1 per
  threshold. The re-listed products are drawn among those with a photo no other
  product shares. Recall is also given by kind (photo, title, both changed) and, for
  the photo-changed ones, by photo edit (crop, resize, jpeg, watermark); and the pairs
  of other colourways (two products of one Myntra `style_group`, which are not
  duplicates) that the clustering merges are counted as a false-merge rate. Each
  re-listing's photo signature (samestyle.photohash) is computed as ingest computes it
  (loaders.transform.inspect_photo); a stored product without one (a collection
  ingested before it) gets it here from its photo file, the same way, and the report
  says how many did.
- Myntra ships about 1,400 products whose photo is byte-identical to another's. They
  are reported on their own (how many of their pairs the clustering links) and their
  pairs count neither for nor against the re-listing score.
- Near-identical photos: a linked pair of two catalogue products (neither a re-listing)
  whose grey 60x80 photos, smoothed, correlate at least as closely as this run's own
  re-compressed copies do with their sources (`copy_score`, the zero-offset NCC; the
  limit is the NEAR_QUANTILE of the JPEG-only re-listings' scores, NEAR_NCC when there are
  fewer than NEAR_MIN_SAMPLES of them) is one photo saved twice: the catalogue's own
  unlabelled copy. Each threshold is scored twice: as above (unchanged), and with those
  pairs also counted neither way (`near_identical_apart`, with how many were linked). The
  limit and where it came from are in the report (`near_identical`). The linked catalogue
  pairs are also told apart by the catalogue's own facts (`catalogue_links`: copies, the
  same title and colour, another colour, the rest; colour from the stored C.DEDUP_COLOUR_FIELD),
  with an upper bound on precision that sets the same-title-and-colour pairs apart too
  (`listing_text_apart`: some are one product listed twice, some two products under a
  generic title; targets are judged on the first two scorings). (A mean grey
  difference, the test before, is no copy test at 60x80: small products on white differ
  by a few grey levels on average whatever they are; docs/benchmarks/catalogue_copies_audit.py.)
- Time: the clustering (pairs + union-find) over the collection and, on synthetic unit
  vectors with planted near-copies, at --synthetic-sizes (e.g. 42k and 1M), with the
  growth exponent between sizes (1 = linear, 2 = quadratic) and the planted copies'
  recall.
Figures are printed, never asserted; `--quick` is the smoke run the tests use.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import platform
import random
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from .. import contract as C
from .. import dedup as D
from .. import photoreg as PR
from . import collection_option, photo_base, photo_dir_option, run_options, save_report
from ..encoders.base import ProductInput
from ..encoders.onnx import OnnxEncoder
from ..loaders.transform import inspect_photo
from ..model.preprocess import PreprocessError, open_photo
from ..output import emit
from ..config import ROOT
from .. import serve
from ..store import Store, search as store_reads

DEFAULT_PLOT = ROOT / "docs" / "benchmarks" / "dedup.png"
THRESHOLDS = "0.85,0.88,0.9,0.91,0.92,0.93,0.94,0.95,0.96,0.97,0.98"
KINDS = ("photo", "title", "both")
PHOTO_EDITS = ("crop", "resize", "jpeg", "watermark")
STYLE_LABEL = "style_group"  # Myntra's "same style, other colourway": must not merge
NEAR_NCC = 0.999  # copy_score at or above which two photos are one photo saved twice (fallback)
NEAR_QUANTILE = 0.05  # ... measured instead: this quantile of the JPEG-only re-listings' copy_score
NEAR_SMOOTH = 1.0  # sigma (pixels) of the smoothing before the correlation: JPEG noise is finer
NEAR_MIN_SAMPLES = 20  # fewer JPEG-only re-listings than this: NEAR_NCC
NEAR_SIZE = PR.GREY_SIZE  # the grey photo they are compared at (width, height): dedup's registration size
N_SYN_CATEGORIES = 48  # as bench scale


def _say(msg: str) -> None:
    click.echo(msg, err=True)


# --- re-listing, the way sellers do it ------------------------------------------------
def relist_photo(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """The photo re-cropped, resized, re-compressed or watermarked (one or two of them)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    ops = rng.sample(["crop", "resize", "jpeg", "watermark"], rng.choice([1, 2]))
    quality = 90
    for op in ops:
        w, h = img.size  # each edit works on the photo as the previous one left it
        if op == "crop":
            f = rng.uniform(0.8, 0.95)
            cw, ch = int(w * f), int(h * f)
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h))
        elif op == "resize":
            f = rng.choice([0.5, 0.75, 1.5, 2.0])
            img = img.resize((max(8, int(w * f)), max(8, int(h * f))))
        elif op == "jpeg":
            quality = rng.randint(25, 60)
        else:
            layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
            d = ImageDraw.Draw(layer)
            text = rng.choice(["SALE", "shop.example", "(c) seller", "50% OFF"])
            x, y = rng.randint(0, max(1, img.size[0] // 3)), rng.randint(0, max(1, img.size[1] * 3 // 4))
            d.text((x, y), text, fill=(255, 255, 255, rng.randint(110, 200)))
            img = Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue(), "+".join(ops)


def relist_title(title: str, rng: random.Random) -> tuple[str, str]:
    """The title reordered, abbreviated or with typos."""
    words = title.split()
    op = rng.choice(["reorder", "abbreviate", "typo"]) if len(words) > 1 else "typo"
    if op == "reorder":
        k = rng.randint(1, len(words) - 1)
        words = words[k:] + words[:k] if rng.random() < 0.5 else rng.sample(words, len(words))
    elif op == "abbreviate":
        drop = set(rng.sample(range(len(words)), min(len(words) - 1, rng.choice([1, 2]))))
        words = [w[:3] + "." if i in drop and len(w) > 4 else w for i, w in enumerate(words)
                 if not (i in drop and len(w) <= 4)] or words
    else:
        for _ in range(rng.choice([1, 2])):
            i = rng.randrange(len(words))
            w = words[i]
            if len(w) < 3:
                continue
            j = rng.randrange(len(w) - 1)
            words[i] = rng.choice([w[:j] + w[j + 1] + w[j] + w[j + 2:], w[:j] + w[j + 1:], w[:j] + w[j] + w[j:]])
    return " ".join(words), op


def make_relists(sources: list[dict], photo_of, rng: random.Random) -> list[dict]:
    out = []
    for n, src in enumerate(sources):
        kind = KINDS[n % len(KINDS)]
        photo = photo_of(src)
        title = src.get("title") or ""
        how = []
        if kind in ("photo", "both"):
            photo, op = relist_photo(photo, rng)
            how.append(op)
        if kind in ("title", "both"):
            title, op = relist_title(title, rng)
            how.append(op)
        out.append({"id": f"relist-{src[C.PRIMARY_KEY]}", "source": src[C.PRIMARY_KEY], "kind": kind,
                    "how": "/".join(how), "photo": photo, "title": title, "category": src.get(C.CATEGORY_FIELD)})
    return out


# --- scoring ----------------------------------------------------------------------------
def _pairs_within(keys: np.ndarray) -> int:
    _, counts = np.unique(keys, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def score(cids: np.ndarray, truth: list[tuple[int, int]], same_photo: np.ndarray, threshold: float,
          links: int, near_identical: int = 0, same_listing: int | None = None) -> dict:
    """Pair precision/recall/F1 of clusters against the re-listing truth pairs; pairs
    of two products sharing a byte-identical photo (`same_photo`: a group id per row,
    -1 for none) are left out of both sides and reported on their own. `near_identical`
    (linked catalogue pairs of one photo saved twice, `near_identical_linked`) gives the
    second scoring, `near_identical_apart`, where those pairs also count neither way; the
    first is unchanged by it. `same_listing` (linked catalogue pairs under the copy limit
    with the same title and colour, `catalogue_link_kinds`) adds `listing_text_apart`:
    those counted neither way too, an upper bound on precision (some are two products
    under one generic title), never the figure a target is judged on."""
    _, sizes = np.unique(cids, return_counts=True)
    predicted = int((sizes * (sizes - 1) // 2).sum())
    has = same_photo >= 0
    photo_pairs = _pairs_within(same_photo[has])
    linked_photo = _pairs_within(np.char.add(np.char.add(cids[has].astype(str), ":"), same_photo[has].astype(str)))
    tp = sum(1 for a, b in truth if cids[a] == cids[b])
    judged = predicted - linked_photo
    p, r, f1 = _prf(tp, judged, len(truth))
    return {"threshold": threshold, "links": links, "clusters": int((sizes > 1).sum()), "predicted_pairs": predicted,
            "true_pairs": len(truth), "tp": tp, "precision": _r(p), "recall": _r(r), "f1": _r(f1),
            "byte_identical_pairs": photo_pairs, "byte_identical_linked": linked_photo,
            "byte_identical_recall": _r(linked_photo / photo_pairs if photo_pairs else None),
            "near_identical_apart": _apart(tp, judged - near_identical, len(truth),
                                           near_identical_linked=near_identical),
            **({} if same_listing is None else {"listing_text_apart": _apart(
                tp, judged - near_identical - same_listing, len(truth), same_listing_text_linked=same_listing)})}


def _prf(tp: int, judged: int, true_pairs: int) -> tuple[float | None, float | None, float | None]:
    """Precision over the `judged` predicted pairs, recall over the true pairs, and F1."""
    p = tp / judged if judged > 0 else None
    r = tp / true_pairs if true_pairs else None
    f1 = (2 * p * r / (p + r) if p + r > 0 else 0.0) if p is not None and r is not None else None
    return p, r, f1


def _apart(tp: int, judged: int, true_pairs: int, **linked: int) -> dict:
    """A scoring with some linked pairs set apart: how many (`linked`, one named count),
    then precision, recall and F1 over the `judged` pairs left."""
    p, r, f1 = _prf(tp, judged, true_pairs)
    return {**linked, "precision": _r(p), "recall": _r(r), "f1": _r(f1)}


def _r(v):
    return None if v is None else round(float(v), 4)


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


def by_kind(cids: np.ndarray, truth: list[tuple[int, int]], kinds: list[str]) -> dict:
    out = {}
    for k in KINDS:
        sel = [t for t, kk in zip(truth, kinds) if kk == k]
        out[k] = _r(sum(1 for a, b in sel if cids[a] == cids[b]) / len(sel)) if sel else None
    return out


def by_photo_edit(cids: np.ndarray, truth: list[tuple[int, int]], kinds: list[str], edits: list[str]) -> dict:
    """Recall of the photo-changed re-listings (photo or both) by photo edit; a re-listing
    with two edits counts for both."""
    out = {}
    for e in PHOTO_EDITS:
        sel = [t for t, k, h in zip(truth, kinds, edits) if k != "title" and e in h.split("/")[0].split("+")]
        out[e] = _r(sum(1 for a, b in sel if cids[a] == cids[b]) / len(sel)) if sel else None
    return out


def style_false_merges(cids: np.ndarray, style: list, same_photo: np.ndarray) -> dict:
    """Pairs of different products of one style group (other colourways, not duplicates)
    that the clustering merges, as a count and a rate; pairs sharing a byte-identical
    photo left out (the catalogue's own duplicates)."""
    lab = np.array(["" if v in D.NO_LABEL else str(v) for v in style], dtype=object)
    has = lab != ""
    key = lambda *parts: np.array([":".join(map(str, t)) for t in zip(*parts)], dtype=object)  # noqa: E731
    lab, cid, photo = lab[has], cids[has], same_photo[has]
    shared = photo >= 0
    pairs = _pairs_within(lab) - _pairs_within(key(lab[shared], photo[shared]))
    merged = _pairs_within(key(cid, lab)) - _pairs_within(key(cid[shared], lab[shared], photo[shared]))
    return {"style_pairs": pairs, "merged": merged, "rate": _r(merged / pairs if pairs else None)}


# --- timing -----------------------------------------------------------------------------
def timed_dedup(cat: D.Catalogue, method: str, threshold: float,
                greys=None) -> tuple[float, D.Pairs, np.ndarray]:
    """`dedup`'s links (D.link, the job's own) and clusters, timed."""
    t = time.perf_counter()
    pairs = D.link(cat, method, threshold, greys=greys)
    cids = D.cluster_ids(len(cat.ids), pairs)
    return time.perf_counter() - t, pairs, cids


def synthetic_catalogue(n: int, dim: int, seed: int, method: str) -> tuple[D.Catalogue, np.ndarray]:
    """A synthetic catalogue for `method`: photo and title vectors with planted near-copies
    (`synthetic`), and for photo+title a five-word title per row (from a 5,000-word
    vocabulary), a copy's title its source's with two words swapped."""
    x, groups, copies = synthetic(n, dim, seed)
    fields, _ = D.needs(method)
    vectors = {fields[0]: x}
    extra = {}
    if method == C.DEDUP_PHOTO_TITLE:
        rng = np.random.default_rng(seed + 1)
        t = rng.standard_normal((n, dim), dtype=np.float32)
        t[copies[:, 1]] = t[copies[:, 0]] + 0.25 * rng.standard_normal((len(copies), dim), dtype=np.float32)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        vectors[C.TEXT_VEC] = t
        words = rng.integers(0, 5000, (n, 5))
        words[copies[:, 1]] = words[copies[:, 0]][:, [1, 0, 2, 3, 4]]
        extra["title"] = [" ".join(f"w{w}" for w in row) for row in words.tolist()]
    ids = [str(i) for i in range(n)]
    return D.Catalogue(ids, vectors, groups.tolist(), None, extra), copies


def synthetic(n: int, dim: int, seed: int, copies: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n unit vectors in N_SYN_CATEGORIES categories, `copies` of them near-copies
    (cosine ~0.97) of another row of their category: (vectors, groups, copy pairs)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    groups = rng.integers(0, N_SYN_CATEGORIES, n)
    m = int(n * copies)
    dst = rng.choice(n, m, replace=False)
    src = np.empty(m, dtype=np.int64)
    taken = set(dst.tolist())
    for i, d in enumerate(dst):  # a source that is no copy itself; the copy joins its category
        src[i] = d
        while int(src[i]) in taken:
            src[i] = rng.integers(0, n)
        groups[d] = groups[src[i]]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    noise = rng.standard_normal((m, dim), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    x[dst] = x[src] + 0.25 * noise
    x[dst] /= np.linalg.norm(x[dst], axis=1, keepdims=True)
    return x, groups, np.stack([src, dst], axis=1)


def parse_sizes(text: str) -> list[int]:
    out = []
    for t in (p.strip().lower() for p in text.split(",") if p.strip()):
        mult = 1_000_000 if t.endswith("m") else 1_000 if t.endswith("k") else 1
        out.append(int(float(t.rstrip("mk")) * mult))
    return out


def synthetic_timing(sizes: list[int], dim: int, threshold: float, seed: int,
                     method: str = C.DEDUP_PHOTO_TITLE) -> list[dict]:
    out = []
    for n in sizes:
        _say(f"  synthetic {n:,} rows...")
        if out:
            _say(f"    previous: {json.dumps(out[-1])}")
        cat, copies = synthetic_catalogue(n, dim, seed, method)
        sec, pairs, cids = timed_dedup(cat, method, threshold)
        found = float(np.mean(cids[copies[:, 0]] == cids[copies[:, 1]])) if len(copies) else None
        out.append({"rows": n, "method": method, "seconds": round(sec, 2), "pairs": len(pairs),
                    "planted_copies": len(copies), "planted_recall": _r(found),
                    "largest_category": int(np.bincount(np.asarray(cat.groups)).max()), "exact_max": D.EXACT_MAX})
        del cat
    for a, b in zip(out, out[1:]):
        b["growth_exponent"] = round(math.log(b["seconds"] / a["seconds"]) / math.log(b["rows"] / a["rows"]), 2)
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sw = report["relisting"]["sweep"]
    ts = [s["threshold"] for s in sw]
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        axes[0].plot(ts, [s[key] for s in sw], marker="o", label=label)
    axes[0].plot(ts, [s["byte_identical_recall"] for s in sw], ls="--", label="byte-identical photos linked")
    axes[0].axvline(report["recommended_threshold"], color="grey", lw=0.8)
    axes[0].set_xlabel(f"threshold ({report['field']})")
    axes[0].set_title(f"{report['relisting']['relists']} re-listings among {report['products']:,} products", fontsize=9)
    axes[0].legend(fontsize=8)
    syn = report.get("synthetic") or []
    if syn:
        ns = [s["rows"] for s in syn]
        axes[1].loglog(ns, [s["seconds"] for s in syn], marker="o", label="dedup (pairs + clusters)")
        axes[1].loglog(ns, [syn[0]["seconds"] * (n / ns[0]) ** 2 for n in ns], ls=":", label="quadratic")
        axes[1].loglog(ns, [syn[0]["seconds"] * (n / ns[0]) for n in ns], ls="--", label="linear")
        axes[1].set_xlabel("rows (synthetic, 48 categories)")
        axes[1].set_ylabel("seconds")
        axes[1].legend(fontsize=8)
        axes[1].set_title("dedup time against catalogue size", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("dedup")
@click.option("--relists", type=click.IntRange(0, 100_000), default=2000, show_default=True,
              help="Products listed again (a third photo changes, a third title changes, a third both); "
                   "0: only the synthetic timing (no collection needed).")
@click.option("--thresholds", default=THRESHOLDS, show_default=True, help="Thresholds to score.")
@click.option("--field", "vector_field", type=click.Choice(list(C.DEDUP_METHODS)), default=C.DEDUP_PHOTO_TITLE,
              show_default=True, help="dedup's method: photo+title, or one vector field (as `dedup --field`).")
@click.option("--synthetic-sizes", default="42k,1M", show_default=True,
              help="Synthetic catalogue sizes to time dedup at ('' to skip).")
@click.option("--encoder", "encoder_kind", type=click.Choice(["triton", "onnx"]), default="triton", show_default=True)
@click.option("--registration/--no-registration", default=True, show_default=True,
              help="Give photo+title the photos for its crop registration, as `dedup` does with ingest's "
                   "thumbnails (--no-registration: the stored signature alone, as for a collection without them).")
@photo_dir_option
@collection_option
@run_options("Smoke run (30 re-listings, synthetic 2k and 20k); figures meaningless.", DEFAULT_PLOT)
def command(settings, relists, thresholds, vector_field, synthetic_sizes, encoder_kind, registration, photo_dir,
            collection, seed, quick, do_plot, plot_file, out_path, as_json):
    """Pair precision / recall / F1 of `samestyle dedup` against re-listed products,
    byte-identical photos apart, and its run time as the catalogue grows."""
    consts = C.preprocess_constants()
    if quick:
        relists, synthetic_sizes = min(relists, 30), "2k,20k"
    ts = sorted({float(t) for t in thresholds.split(",") if t.strip()} | {D.DEFAULT_THRESHOLD})
    if relists == 0:
        report = {"benchmark": "dedup", "quick": quick, "threshold": D.DEFAULT_THRESHOLD, "exact_max": D.EXACT_MAX,
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version()},
                  "field": vector_field,
                  "synthetic": synthetic_timing(parse_sizes(synthetic_sizes), 256, D.DEFAULT_THRESHOLD, seed,
                                                vector_field)}
        save_report(report, out_path)
        emit(report, as_json, lambda r: [click.echo(json.dumps(s)) for s in r["synthetic"]])
        return
    name = collection or settings.collection
    base_dir = photo_base(photo_dir)
    rng = random.Random(seed)
    _say(f"bench dedup: reading {name}...")
    with Store.open(settings) as store:
        described = store.describe(name)
        style_stored = described.get("enable_dynamic_field", True) or any(
            f.get("name") == STYLE_LABEL for f in described.get("fields", []))
        cat = D.load(store, name, method=vector_field, label_field=STYLE_LABEL if style_stored else None)
        model = store_reads.model_version(described)
        meta = store.fetch(name, cat.ids, ["title", "image_uri"])
    if not cat.ids:
        raise click.ClickException(f"collection [{name}] is empty")

    def path_of(pid: str) -> Path | None:
        uri = meta.get(pid, {}).get("image_uri") or ""
        if not uri or ":" in uri.split("/")[0]:
            return None
        p = Path(uri) if Path(uri).is_absolute() else base_dir / uri
        return p if p.is_file() else None

    _say("  photo hashes (byte-identical groups)...")
    digest = {}
    stored_hash = cat.extra.get(C.PHOTO_HASH)
    computed = 0
    for n, pid in enumerate(cat.ids):
        p = path_of(pid)
        if p is not None:
            data = p.read_bytes()
            digest[pid] = hashlib.sha1(data).hexdigest()
            if stored_hash is not None and not stored_hash[n]:
                stored_hash[n] = inspect_photo(data, consts)[1] or None
                computed += 1
    counts: dict[str, int] = {}
    for h in digest.values():
        counts[h] = counts.get(h, 0) + 1
    shared = {h: g for g, h in enumerate(h for h, c in counts.items() if c > 1)}
    unique = [pid for pid in cat.ids if pid in digest and counts[digest[pid]] == 1]
    pos = {pid: i for i, pid in enumerate(cat.ids)}
    style, cat.labels = cat.labels or [None] * len(cat.ids), None
    sources = [{**meta[pid], C.PRIMARY_KEY: pid, C.CATEGORY_FIELD: cat.groups[pos[pid]]}
               for pid in rng.sample(unique, min(relists, len(unique)))]
    _say(f"  re-listing {len(sources)} products...")
    rel = make_relists(sources, lambda s: path_of(s[C.PRIMARY_KEY]).read_bytes(), rng)
    if encoder_kind == "onnx":
        from ..export import ensure_onnx

        encoder = OnnxEncoder(ensure_onnx(settings.model_dir))
    else:
        encoder = serve.encoder_for(settings)
    try:
        if encoder.model_version != model:
            raise click.ClickException(f"collection [{name}] holds model [{model}], the encoder serves "
                                       f"[{encoder.model_version}]")
        t = time.perf_counter()
        enc = encoder.encode([ProductInput(r["id"], image=r["photo"], text=r["title"]) for r in rel])
        encode_s = time.perf_counter() - t
    finally:
        encoder.close()
    ok = [i for i, e in enumerate(enc.errors) if e is None]
    view_of = {f: v for v, f in C.VECTOR_FIELDS.items()}
    mixed = D.Catalogue(cat.ids + [rel[i]["id"] for i in ok],
                        {f: np.concatenate([x, enc.view(view_of[f])[ok]]).astype(np.float32)
                         for f, x in cat.vectors.items()},
                        list(cat.groups) + [rel[i]["category"] for i in ok], None,
                        {f: v + ([rel[i]["title"] for i in ok] if f == "title" else
                                 [inspect_photo(rel[i]["photo"], consts)[1] or None for i in ok]
                                 if f == C.PHOTO_HASH else
                                 [v[pos[rel[i]["source"]]] for i in ok]  # the seller fills in the same colour
                                 if f == C.DEDUP_COLOUR_FIELD else [None] * len(ok))
                         for f, v in cat.extra.items()})
    truth = [(pos[rel[i]["source"]], len(cat.ids) + n) for n, i in enumerate(ok)]
    kinds = [rel[i]["kind"] for i in ok]
    same_photo = np.array([shared.get(digest.get(pid, ""), -1) for pid in cat.ids] + [-1] * len(ok))
    greys: dict[int, np.ndarray | None] = {}

    def grey_of(row: int) -> np.ndarray | None:  # catalogue rows from their files, re-listings from their bytes
        if row not in greys:
            if row < len(cat.ids):
                p = path_of(cat.ids[row])
                data = None if p is None else p.read_bytes()
            else:
                data = rel[ok[row - len(cat.ids)]]["photo"]
            try:
                greys[row] = None if data is None else grey_thumb(data, consts)
            except PreprocessError:
                greys[row] = None
        return greys[row]

    def photos(rows: np.ndarray) -> np.ndarray:  # dedup's registration input, from the photo files
        out = np.zeros((len(rows), NEAR_SIZE[1], NEAR_SIZE[0]), np.uint8)
        for n, r in enumerate(rows.tolist()):
            g = grey_of(r)
            if g is not None:
                out[n] = g
        return out

    _say(f"  dedup over {len(mixed.ids):,} rows...")
    sec, pairs, _ = timed_dedup(mixed, vector_field, ts[0], greys=photos if registration else None)
    sweep, kind_recall, edit_recall, style_merges = [], {}, {}, {}
    edits = [rel[i]["how"] for i in ok]
    near_at = near_limit(truth, kinds, edits, grey_of)
    titles = [meta.get(pid, {}).get("title") for pid in cat.ids]
    colours = mixed.extra.get(C.DEDUP_COLOUR_FIELD) or [None] * len(mixed.ids)

    for th in ts:
        p = pairs.above(th)
        cids = D.cluster_ids(len(mixed.ids), p)
        link_kinds = catalogue_link_kinds(cids, len(cat.ids), same_photo, grey_of, near_at["min_ncc"],
                                          titles, colours)
        sweep.append({**score(cids, truth, same_photo, th, len(p), link_kinds["copies"],
                              link_kinds["same_listing_text"]), "catalogue_links": link_kinds})
        kind_recall[th] = by_kind(cids, truth, kinds)
        edit_recall[th] = by_photo_edit(cids, truth, kinds, edits)
        style_merges[th] = style_false_merges(cids, style + [None] * len(ok), same_photo)
    best = max(sweep, key=lambda s: s["f1"] or 0)
    at_default = next(s for s in sweep if s["threshold"] == D.DEFAULT_THRESHOLD)
    report = {"benchmark": "dedup", "collection": name, "model_version": model, "field": vector_field,
              "products": len(cat.ids), "quick": quick, "encoder": encoder_kind,
              "registration": {"on": registration, "min_title_overlap": C.DEDUP_REG_MIN_TITLE,
                               "min_cosine": C.DEDUP_REG_MIN_COSINE, "floor": C.DEDUP_REG_FLOOR,
                               "top": C.DEDUP_REG_TOP, "iterations": PR.ITERATIONS},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "recommended_threshold": D.DEFAULT_THRESHOLD,
              "relisting": {"relists": len(ok), "encode_errors": len(rel) - len(ok),
                            "kinds": {k: kinds.count(k) for k in KINDS}, "encode_seconds": round(encode_s, 2),
                            "byte_identical_groups": len(shared),
                            "byte_identical_products": sum(c for c in counts.values() if c > 1),
                            "near_identical": near_at,
                            "photo_hashes": {"stored": None if stored_hash is None else
                                             sum(1 for h in stored_hash if h) - computed,
                                             "computed_from_photo_files": computed},
                            "recall_by_photo_edit": {str(k): v for k, v in edit_recall.items()},
                            "style_group_false_merges": {str(k): v for k, v in style_merges.items()},
                            "dedup_seconds": round(sec, 2), "sweep": sweep,
                            "recall_by_kind": {str(k): v for k, v in kind_recall.items()},
                            "at_recommended": at_default, "best": best,
                            "examples": [{k: r[k] for k in ("source", "kind", "how", "title")} for r in rel[:6]]},
              "synthetic": synthetic_timing(parse_sizes(synthetic_sizes), next(iter(cat.vectors.values())).shape[1],
                                            D.DEFAULT_THRESHOLD, seed, vector_field) if synthetic_sizes.strip() else []}
    if do_plot:
        plot(report, plot_file)
        report["plot"] = str(plot_file)
        sheet = plot_file.with_name(plot_file.stem + "-false-links.png")
        at = pairs.above(D.DEFAULT_THRESHOLD)
        at_cids = D.cluster_ids(len(mixed.ids), at)
        drawn = false_links_sheet(at_cids, len(cat.ids), same_photo, grey_of, sheet, seed=seed,
                                  limit=near_at["min_ncc"])
        report["false_links_plot"] = {"file": str(sheet), "pairs": drawn, "threshold": D.DEFAULT_THRESHOLD}
        copies = plot_file.with_name(plot_file.stem + "-copies-apart.png")
        drawn = false_links_sheet(at_cids, len(cat.ids), same_photo, grey_of, copies, seed=seed,
                                  limit=near_at["min_ncc"], apart=True)
        report["copies_apart_plot"] = {"file": str(copies), "pairs": drawn, "threshold": D.DEFAULT_THRESHOLD}
    save_report(report, out_path)
    emit(report, as_json, _human)


def _human(r: dict) -> None:
    rel = r["relisting"]
    click.echo(f"{r['products']:,} products in {r['collection']} (model {r['model_version']}), {rel['relists']} "
               f"re-listings mixed in; dedup {rel['dedup_seconds']} s")
    click.echo(f"{'threshold':>9} {'pairs':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'byte-identical linked':>22}"
               f" | near-identical apart: {'linked':>6} {'precision':>9} {'F1':>6}"
               f" | same title+colour apart (bound): {'linked':>6} {'F1':>6}")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for s in rel["sweep"]:
        mark = " <- dedup default" if s["threshold"] == r["recommended_threshold"] else ""
        na, lb = s["near_identical_apart"], s.get("listing_text_apart", {})
        click.echo(f"{s['threshold']:>9} {s['predicted_pairs']:>9} {fmt(s['precision']):>9} {fmt(s['recall']):>7} "
                   f"{fmt(s['f1']):>6} {s['byte_identical_linked']:>10}/{s['byte_identical_pairs']:<11}"
                   f" | {'':>21} {na['near_identical_linked']:>6} {fmt(na['precision']):>9} {fmt(na['f1']):>6}"
                   f" | {'':>32} {lb.get('same_listing_text_linked', '-'):>6} {fmt(lb.get('f1')):>6}{mark}")
    for s in r["synthetic"]:
        click.echo(f"synthetic {s['rows']:>9,} rows: {s['seconds']} s, planted copies found {s['planted_recall']}"
                   + (f", growth exponent {s['growth_exponent']}" if "growth_exponent" in s else ""))

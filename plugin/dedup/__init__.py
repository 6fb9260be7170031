"""Near-duplicate listing detection: the same product listed twice (by two suppliers,
or re-uploaded with a re-cropped photo or a reworded title).

Within each category. The default method, photo+title, scores the photo and the title
apart: candidates are each product's nearest neighbours by image_vec and by text_vec;
a candidate pair scores DEDUP_IMAGE_WEIGHT x photo + the rest x the titles'
character-trigram overlap, the photo being the image_vec cosine blended with the
stored photo signatures' similarity (samestyle.photohash: copy detection) where both
products have one; titles carrying different numbers (two shades), and products
stored under two colours, never link; and a pair links only when it is the best match
of both its products (mutual best),
so lookalikes do not chain into one cluster. `samestyle bench dedup` tunes the
threshold against re-listed products. With one vector field instead (fused_vec,
image_vec, text_vec), every pair at or above the threshold cosine links and links are
transitive (union-find). Similarities come from numpy matrix products over blocks of
rows of one category at a time (an IVF index for a category of more than EXACT_MAX
rows), never from a Python loop over pairs of products.

When a label column is given (Myntra's `style_group`: same style, other colourway),
clusters are scored pairwise: a predicted pair is two products in one cluster, a
true pair two products with the same label; precision, recall and F1 over pairs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .. import contract as C
from .. import photoreg as PR
from ..query import filters as F
from ..query.search import Searcher
from ..store import search as store_reads
from .candidates import (ANN_NEIGHBOURS, ANN_NPROBE, EXACT_MAX, NEIGHBOURS, Pairs, _ann_nearest, _ann_pairs,
                         _unique, candidate_pairs, find_pairs, nearest, signature_nearest)
from .clusters import (MAX_EDGES_PER_CLUSTER, NO_LABEL, Scores, UnionFind, _pair_count, cluster_ids,
                       cluster_records, evaluate)
from .scoring import (HASH_WEIGHT, IMAGE_WEIGHT, Photos, _dot_pairs, kept_apart, mutual_best, pair_score,
                      photo_scores, photo_title_pairs, registration, registration_gate)
from .titles import (_NUMBER, COLOUR_WORDS, _title_grams_hashed, attributes_differ, colours_differ, normalised,
                     numbers_differ, title_grams, title_overlap)

__all__ = [  # the stages' names, re-exported: `dedup.X` as before the split (see each module)
    "ANN_NEIGHBOURS", "ANN_NPROBE", "EXACT_MAX", "NEIGHBOURS", "Pairs", "_ann_nearest", "_ann_pairs", "_unique",
    "candidate_pairs", "find_pairs", "nearest", "signature_nearest",
    "_NUMBER", "COLOUR_WORDS", "_title_grams_hashed", "attributes_differ", "colours_differ", "normalised",
    "numbers_differ", "title_grams", "title_overlap",
    "HASH_WEIGHT", "IMAGE_WEIGHT", "Photos", "_dot_pairs", "kept_apart", "mutual_best", "pair_score",
    "photo_scores", "photo_title_pairs", "registration", "registration_gate",
    "MAX_EDGES_PER_CLUSTER", "NO_LABEL", "Scores", "UnionFind", "_pair_count", "cluster_ids", "cluster_records",
    "evaluate",
    "Catalogue", "needs", "load", "link", "DEFAULT_THRESHOLD", "_no_bar", "run",
]

log = logging.getLogger(__name__)


@dataclass
class Catalogue:
    """What dedup needs of the collection, row-aligned: vectors by field name, the
    category, an optional label and other stored fields (`extra`, e.g. title)."""

    ids: list[str]
    vectors: dict[str, np.ndarray]
    groups: list
    labels: list | None = None
    extra: dict[str, list] = field(default_factory=dict)

    def subset(self, rows: np.ndarray) -> "Catalogue":
        rows = np.asarray(rows, dtype=np.int64)
        pick = lambda values: [values[r] for r in rows.tolist()]  # noqa: E731
        return Catalogue(pick(self.ids), {f: v[rows] for f, v in self.vectors.items()}, pick(self.groups),
                         pick(self.labels) if self.labels is not None else None,
                         {f: pick(v) for f, v in self.extra.items()})


def needs(method: str) -> tuple[list[str], list[str]]:
    """(vector fields, other stored fields) a method reads."""
    if method == C.DEDUP_PHOTO_TITLE:
        return [C.IMAGE_VEC, C.TEXT_VEC], ["title", C.PHOTO_HASH, C.DEDUP_COLOUR_FIELD]
    if method in C.VECTOR_FIELDS.values():
        return [method], []
    raise ValueError(f"dedup method must be one of {C.DEDUP_METHODS}, got [{method}]")


def load(store, collection: str, *, method: str = C.DEDUP_PHOTO_TITLE, group_field: str = C.CATEGORY_FIELD,
         label_field: str | None = None, extra_fields: Sequence[str] = (), expr: str = "", batch_size: int = 2000,
         progress: Callable[[int], None] | None = None) -> Catalogue:
    """Fetch ids, what `method` reads, the category, (optionally) a label and
    `extra_fields` from a `samestyle.store.Store`. The one loader of `dedup`, its
    benchmark and the page's duplicates view."""
    store.ensure_loaded(collection)
    fields, stored = needs(method)
    described = store.describe(collection)
    if not described.get("enable_dynamic_field", True):  # no dynamic field: what the schema holds
        schema = {f.get("name") for f in described.get("fields", [])}
        stored = [f for f in stored if f in schema]  # e.g. no hashes: cosine only
    extra_names = list(dict.fromkeys([*stored, *extra_fields]))
    out = list(dict.fromkeys([C.PRIMARY_KEY, *fields, group_field, *extra_names,
                              *([label_field] if label_field else [])]))
    ids, groups, labels = [], [], []
    vecs: dict[str, list] = {f: [] for f in fields}
    extra: dict[str, list] = {f: [] for f in extra_names}
    for batch in store.scan(collection, out, expr=expr, batch_size=batch_size):
        for r in batch:
            ids.append(str(r[C.PRIMARY_KEY]))
            for f in fields:
                vecs[f].append(r[f])
            for f in extra_names:
                extra[f].append(r.get(f))
            groups.append(r.get(group_field))
            if label_field:
                labels.append(r.get(label_field))
        if progress:
            progress(len(batch))
    arrays = {f: np.asarray(v, dtype=np.float32) if v else np.zeros((0, 1), np.float32) for f, v in vecs.items()}
    return Catalogue(ids, arrays, groups, labels if label_field else None, extra)


def link(cat: Catalogue, method: str, threshold: float, block: int = 1024,
         progress: Callable[[int], None] | None = None, greys: Photos | np.ndarray | None = None) -> Pairs:
    """The scored links of `method` at `threshold` or above (`.above(t)` for a higher t).
    `greys`: the rows' grey photos for photo+title's crop registration (none: signature only)."""
    if method == C.DEDUP_PHOTO_TITLE:
        return photo_title_pairs(cat.vectors[C.IMAGE_VEC], cat.vectors[C.TEXT_VEC], cat.extra["title"], cat.groups,
                                 block=block, progress=progress, hashes=cat.extra.get(C.PHOTO_HASH),
                                 greys=greys, colours=cat.extra.get(C.DEDUP_COLOUR_FIELD)).above(threshold)
    return find_pairs(cat.vectors[method], cat.groups, threshold, block=block, progress=progress)


DEFAULT_THRESHOLD = C.DEDUP_THRESHOLD


def _no_bar(desc: str, total: int | None):
    return contextlib.nullcontext(lambda n: None)


def run(store, collection: str, *, threshold: float = DEFAULT_THRESHOLD, vector_field: str = C.DEDUP_PHOTO_TITLE,
        label_field: str | None = None, labels: Mapping[str, str] | None = None, sweep: Iterable[float] = (),
        filters: Sequence[str] = (), block: int = 1024, out_path: Path | None = None,
        bar: Callable[[str, int | None], Any] = _no_bar, thumbnails=None) -> dict:
    """The dedup job behind `samestyle dedup`: near-duplicate clusters of `collection`
    (read through a `samestyle.store.Store`), scored against `label_field` (stored) or
    `labels` (id -> label, from elsewhere) when given, at `threshold` and every `sweep`
    value; the clusters written to `out_path` as JSONL when given. `vector_field` is
    the method: photo+title (default) or one vector field.

    `thumbnails` (a samestyle.thumbs.Thumbnails: the data dir's, written at ingest)
    gives photo+title the products' photos for its crop registration; without it, or for
    a product whose thumbnail is missing, the stored signature alone judges the photo.

    `filters` are `k=v` strings as `samestyle search --filter` takes them. `bar(desc,
    total)` returns a context manager yielding a progress callable (the CLI's progress
    bars; none by default). Returns the report as a dict (the CLI's --json)."""
    expr = ""
    if filters:
        schema = Searcher(store, collection).schema()
        expr = F.to_expr(F.parse_cli(list(filters), schema), schema)
    total = store.count(collection)
    model = store_reads.model_version(store.describe(collection))
    with bar("fetch", total) as update:
        cat = load(store, collection, method=vector_field, label_field=None if labels is not None else label_field,
                   extra_fields=("content_hash",) if thumbnails is not None else (), expr=expr, progress=update)
    greys, photos_read = None, {"n": 0}
    if thumbnails is not None and vector_field == C.DEDUP_PHOTO_TITLE:
        keys = cat.extra["content_hash"]

        def read_greys(rows: np.ndarray) -> np.ndarray:
            out = thumbnails.greys([keys[r] for r in rows.tolist()], PR.grey, PR.GREY_SIZE[::-1])
            photos_read["n"] += int(out.reshape(len(out), -1).any(1).sum())
            return out
        greys = read_greys
    if labels is not None:
        cat.labels = [labels.get(i) for i in cat.ids]
    thresholds = sorted({threshold, *sweep})
    with bar("compare", len(cat.ids)) as update:
        pairs = link(cat, vector_field, thresholds[0], block=block, progress=update, greys=greys)
    results = {}
    for t in thresholds:
        p = pairs.above(t)
        cids = cluster_ids(len(cat.ids), p)
        results[t] = evaluate(cids, cat.labels, len(p), t)
        if t == threshold:
            main_cids, main_pairs = cids, p
    records = list(cluster_records(cat.ids, cat.groups, main_cids, main_pairs, cat.labels))
    written = 0
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                written += 1
    return {"collection": collection, "model_version": model, "field": vector_field, "products": len(cat.ids),
            "threshold": threshold, "photos_registered": photos_read["n"] if greys is not None else None,
            "out": str(out_path) if out_path else None, "clusters_written": written,
            "label": label_field, **results[threshold].to_dict(),
            "sweep": [results[t].to_dict() for t in thresholds],
            "duplicates": records}

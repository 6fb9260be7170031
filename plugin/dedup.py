"""Near-duplicate listing detection: the same product listed twice (by two suppliers,
or re-uploaded with a reworded title).

Within each category, every pair of products whose vectors (fused_vec by default)
have a cosine at or above a threshold is linked; linked products form clusters
(union-find, so links are transitive). Similarities come from numpy matrix products
over blocks of rows of one category at a time, never from a Python loop over pairs
of products; memory stays at block x category-size floats.

When a label column is given (Myntra's `style_group`: same style, other colourway),
clusters are scored pairwise: a predicted pair is two products in one cluster, a
true pair two products with the same label; precision, recall and F1 over pairs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import contract as C

log = logging.getLogger(__name__)

NO_LABEL = {None, "", -1, "-1"}
MAX_EDGES_PER_CLUSTER = 200  # in the JSONL; a cluster of n has up to n(n-1)/2 links


@dataclass
class Pairs:
    """Links above the threshold: row indices i < j and their cosine."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def above(self, threshold: float) -> "Pairs":
        m = self.score >= threshold
        return Pairs(self.i[m], self.j[m], self.score[m])


EXACT_MAX = 4096  # rows of one group compared all-pairs; a larger group goes through an IVF index
ANN_NEIGHBOURS = 32  # candidates per row in a large group (a row's own near-duplicates, with room)
ANN_NPROBE = 8


def find_pairs(vectors: np.ndarray, groups: Sequence, threshold: float, block: int = 1024,
               progress: Callable[[int], None] | None = None, exact_max: int = EXACT_MAX) -> Pairs:
    """Pairs (i < j) in the same group with vectors[i] . vectors[j] >= threshold.

    A group of at most `exact_max` rows is compared all-pairs (exact). A larger one
    would cost its size squared, so its candidates come from an IVF index instead
    (faiss, inner product, 2 sqrt(n) lists, 8 probed; each row's 32 nearest): the
    cost grows as n^1.5, and a pair missed there can still join through the others
    (clusters are transitive). Measured against exact search by `bench dedup`."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    g = np.asarray(groups, dtype=object)
    out_i, out_j, out_s = [], [], []
    for value in _unique(g):
        idx = np.flatnonzero(g == value)
        if len(idx) > exact_max:
            a, b, sc = _ann_pairs(x[idx], threshold, block)
            out_i.append(idx[a])
            out_j.append(idx[b])
            out_s.append(sc)
        elif len(idx) > 1:
            xc = x[idx]
            for start in range(0, len(idx), block):
                sims = xc[start:start + block] @ xc.T  # [b, n_c]
                rows, cols = np.nonzero(sims >= threshold)
                rows_g = rows + start
                keep = cols > rows_g  # each unordered pair once, no self-pairs
                out_i.append(idx[rows_g[keep]])
                out_j.append(idx[cols[keep]])
                out_s.append(sims[rows[keep], cols[keep]])
        if progress:
            progress(len(idx))
    if not out_i:
        e = np.zeros(0, np.int64)
        return Pairs(e, e.copy(), np.zeros(0, np.float32))
    return Pairs(np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s).astype(np.float32))


def _ann_pairs(xc: np.ndarray, threshold: float, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a < b, positions in xc) at or above threshold among each row's
    ANN_NEIGHBOURS nearest by an IVF-Flat index (inner product)."""
    import faiss

    faiss.omp_set_num_threads(min(2, faiss.omp_get_max_threads()))
    n, d = xc.shape
    nlist = max(16, int(2 * np.sqrt(n)))  # ~sqrt(n)/2 rows a list: n^1.5 in all
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # coarse lists only bucket candidates; every pair is then scored exactly
    index.cp.min_points_per_centroid = 16
    rng = np.random.default_rng(0)
    index.train(xc[rng.choice(n, min(n, nlist * 16), replace=False)])
    index.add(xc)
    index.nprobe = min(ANN_NPROBE, nlist)
    k = min(n, ANN_NEIGHBOURS + 1)
    out_a, out_b, out_s = [], [], []
    for start in range(0, n, block * 8):
        dist, nn = index.search(xc[start:start + block * 8], k)
        rows, cols = np.nonzero((dist >= threshold) & (nn >= 0))
        a, b = rows + start, nn[rows, cols]
        keep = a != b
        a, b = a[keep], b[keep]
        out_a.append(np.minimum(a, b))
        out_b.append(np.maximum(a, b))
        out_s.append(dist[rows, cols][keep])
    a, b, sc = np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_s).astype(np.float32)
    _, first = np.unique(a.astype(np.int64) * n + b, return_index=True)  # a pair found from both ends, once
    return a[first], b[first], sc[first]


def _unique(values: np.ndarray) -> list:
    seen: dict = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return list(seen)


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return int(a)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def roots(self) -> np.ndarray:
        return np.array([self.find(a) for a in range(len(self.parent))], dtype=np.int64)


def cluster_ids(n: int, pairs: Pairs) -> np.ndarray:
    """Cluster id per row (the id of its root); singletons are their own cluster."""
    uf = UnionFind(n)
    for a, b in zip(pairs.i.tolist(), pairs.j.tolist()):
        uf.union(a, b)
    return uf.roots()


def _pair_count(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


@dataclass
class Scores:
    threshold: float
    clusters: int  # of 2 or more products
    clustered: int  # products in such clusters
    links: int  # pairs above the threshold
    predicted_pairs: int
    true_pairs: int | None = None
    tp: int | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(cids: np.ndarray, labels: Sequence | None, links: int, threshold: float) -> Scores:
    """Pairwise precision/recall/F1 of the clustering against labels, by counting
    (cluster, label) co-occurrences: no enumeration of pairs."""
    _, sizes = np.unique(cids, return_counts=True)
    s = Scores(threshold, int((sizes > 1).sum()), int(sizes[sizes > 1].sum()), links, _pair_count(sizes))
    if labels is None:
        return s
    lab = np.array(["" if v in NO_LABEL else str(v) for v in labels], dtype=object)
    has = lab != ""
    _, lab_sizes = np.unique(lab[has], return_counts=True)
    s.true_pairs = _pair_count(lab_sizes)
    joint = np.char.add(np.char.add(cids[has].astype(str), "\x1f"), lab[has].astype(str))
    _, joint_sizes = np.unique(joint, return_counts=True)
    s.tp = _pair_count(joint_sizes)
    s.precision = s.tp / s.predicted_pairs if s.predicted_pairs else None
    s.recall = s.tp / s.true_pairs if s.true_pairs else None
    if s.precision is not None and s.recall is not None and s.precision + s.recall > 0:
        s.f1 = 2 * s.precision * s.recall / (s.precision + s.recall)
    elif s.precision is not None and s.recall is not None:
        s.f1 = 0.0
    return s


def cluster_records(ids: Sequence[str], groups: Sequence, cids: np.ndarray, pairs: Pairs,
                    labels: Sequence | None = None) -> Iterable[dict]:
    """One JSON-ready record per cluster of 2+: members, the links that joined them
    (strongest first, capped) and their score range."""
    order = np.argsort(cids, kind="stable")
    sorted_c = cids[order]
    bounds = np.flatnonzero(np.diff(sorted_c)) + 1
    members_of = {int(cids[s[0]]): s for s in np.split(order, bounds) if len(s) > 1}
    edge_c = cids[pairs.i] if len(pairs) else np.zeros(0, np.int64)
    edge_order = np.lexsort((-pairs.score, edge_c)) if len(pairs) else np.zeros(0, np.int64)
    edges_by_c: dict[int, list[int]] = {}
    for e in edge_order.tolist():
        edges_by_c.setdefault(int(edge_c[e]), []).append(e)
    for n, (root, rows) in enumerate(sorted(members_of.items(), key=lambda kv: -len(kv[1]))):
        es = edges_by_c.get(root, [])
        sc = pairs.score[es] if es else np.zeros(0)
        rec = {
            "cluster": n, "category": groups[rows[0]], "size": len(rows),
            "members": [ids[r] for r in rows],
            "score_min": round(float(sc.min()), 4) if len(sc) else None,
            "score_max": round(float(sc.max()), 4) if len(sc) else None,
            "links": [[ids[pairs.i[e]], ids[pairs.j[e]], round(float(pairs.score[e]), 4)]
                      for e in es[:MAX_EDGES_PER_CLUSTER]],
        }
        if labels is not None:
            rec["labels"] = [None if labels[r] in NO_LABEL else labels[r] for r in rows]
        yield rec


@dataclass
class Catalogue:
    """What dedup needs of the collection, row-aligned."""

    ids: list[str]
    vectors: np.ndarray
    groups: list
    labels: list | None = None
    extra: dict = field(default_factory=dict)


def load(store, collection: str, *, vector_field: str = C.FUSED_VEC, group_field: str = C.CATEGORY_FIELD,
         label_field: str | None = None, expr: str = "", batch_size: int = 2000,
         progress: Callable[[int], None] | None = None) -> Catalogue:
    """Fetch ids, one vector field, the category and (optionally) a label from a
    `samestyle.store.Store`."""
    store.ensure_loaded(collection)
    out = [C.PRIMARY_KEY, vector_field, group_field] + ([label_field] if label_field else [])
    ids, vecs, groups, labels = [], [], [], []
    for batch in store.scan(collection, out, expr=expr, batch_size=batch_size):
        for r in batch:
            ids.append(str(r[C.PRIMARY_KEY]))
            vecs.append(r[vector_field])
            groups.append(r.get(group_field))
            if label_field:
                labels.append(r.get(label_field))
        if progress:
            progress(len(batch))
    x = np.asarray(vecs, dtype=np.float32) if vecs else np.zeros((0, 1), np.float32)
    return Catalogue(ids, x, groups, labels if label_field else None)


DEFAULT_THRESHOLD = C.DEDUP_THRESHOLD


def _no_bar(desc: str, total: int | None):
    return contextlib.nullcontext(lambda n: None)


def run(store, collection: str, *, threshold: float = DEFAULT_THRESHOLD, vector_field: str = C.FUSED_VEC,
        label_field: str | None = None, labels: Mapping[str, str] | None = None, sweep: Iterable[float] = (),
        filters: Sequence[str] = (), block: int = 1024, out_path: Path | None = None,
        bar: Callable[[str, int | None], Any] = _no_bar) -> dict:
    """The dedup job behind `samestyle dedup`: near-duplicate clusters of `collection`
    (read through a `samestyle.store.Store`), scored against `label_field` (stored) or
    `labels` (id -> label, from elsewhere) when given, at `threshold` and every `sweep`
    value; the clusters written to `out_path` as JSONL when given.

    `filters` are `k=v` strings as `samestyle search --filter` takes them. `bar(desc,
    total)` returns a context manager yielding a progress callable (the CLI's progress
    bars; none by default). Returns the report as a dict (the CLI's --json)."""
    from .query import filters as F
    from .query.search import Searcher
    from .store import search as store_reads

    expr = ""
    if filters:
        schema = Searcher(store, collection).schema()
        expr = F.to_expr(F.parse_cli(list(filters), schema), schema)
    total = store.count(collection)
    model = store_reads.model_version(store.describe(collection))
    with bar("fetch", total) as update:
        cat = load(store, collection, vector_field=vector_field, label_field=None if labels is not None else label_field,
                   expr=expr, progress=update)
    if labels is not None:
        cat.labels = [labels.get(i) for i in cat.ids]
    thresholds = sorted({threshold, *sweep})
    with bar("compare", len(cat.ids)) as update:
        pairs = find_pairs(cat.vectors, cat.groups, thresholds[0], block=block, progress=update)
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
            "threshold": threshold,
            "out": str(out_path) if out_path else None, "clusters_written": written,
            "label": label_field, **results[threshold].to_dict(),
            "sweep": [results[t].to_dict() for t in thresholds],
            "duplicates": records}

"""Dedup, stage 4: clusters from the links. Union-find over the linked pairs, pairwise
precision/recall/F1 against labels, and one JSON-ready record per cluster."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from .candidates import Pairs

NO_LABEL = {None, "", -1, "-1"}
MAX_EDGES_PER_CLUSTER = 200  # in the JSONL; a cluster of n has up to n(n-1)/2 links


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

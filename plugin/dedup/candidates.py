"""Dedup, stage 1: candidate pairs. Links at or above a cosine within each group
(`find_pairs`, all-pairs or through an IVF index) or each row's nearest neighbours
(`nearest`, `signature_nearest`) merged into unordered candidate pairs
(`candidate_pairs`); `Pairs` holds the scored links every later stage passes on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


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



NEIGHBOURS = 5  # candidates per row and per vector field (photo, title)


def nearest(x: np.ndarray, groups: Sequence, k: int = NEIGHBOURS, block: int = 1024,
            exact_max: int = EXACT_MAX) -> np.ndarray:
    """Each row's k nearest other rows of its group by inner product, as an [n, k]
    array of row indices (-1 where the group is smaller). A group of at most
    `exact_max` rows is searched exactly (numpy blocks); a larger one through an IVF
    index as `find_pairs` does (n^1.5)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    g = np.asarray(groups, dtype=object)
    out = np.full((len(x), k), -1, dtype=np.int64)
    for value in _unique(g):
        idx = np.flatnonzero(g == value)
        kk = min(k, len(idx) - 1)
        if kk < 1:
            continue
        xc = x[idx]
        if len(idx) > exact_max:
            out[idx, :kk] = idx[_ann_nearest(xc, kk, block)]
            continue
        for start in range(0, len(idx), block):
            sims = xc[start:start + block] @ xc.T
            rows = np.arange(len(sims))
            sims[rows, rows + start] = -np.inf  # not itself
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            out[idx[start:start + block], :kk] = idx[part]
    return out


def _ann_nearest(xc: np.ndarray, k: int, block: int) -> np.ndarray:
    """Positions in xc of each row's k nearest others through an IVF-Flat index."""
    import faiss

    faiss.omp_set_num_threads(min(2, faiss.omp_get_max_threads()))
    n, d = xc.shape
    nlist = max(16, int(2 * np.sqrt(n)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.cp.min_points_per_centroid = 16
    index.train(xc[np.random.default_rng(0).choice(n, min(n, nlist * 16), replace=False)])
    index.add(xc)
    index.nprobe = min(ANN_NPROBE, nlist)
    out = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, block * 8):
        _, nn = index.search(xc[start:start + block * 8], k + 1)
        rows = np.arange(start, start + len(nn))
        for r, cand in zip(rows.tolist(), nn):
            others = cand[(cand >= 0) & (cand != r)][:k]
            out[r, :len(others)] = others
    return out


def signature_nearest(sigs: np.ndarray, has: np.ndarray, groups: Sequence, k: int = NEIGHBOURS, block: int = 1024,
                      exact_max: int = EXACT_MAX) -> np.ndarray:
    """`nearest` by photo signature (samestyle.photohash) among the rows that have one;
    a row without one has no neighbours (-1)."""
    out = np.full((len(sigs), k), -1, dtype=np.int64)
    rows = np.flatnonzero(has)
    if len(rows) > 1:
        sub = nearest(sigs[rows], np.asarray(groups, dtype=object)[rows], k, block, exact_max)
        out[rows] = np.where(sub >= 0, rows[np.maximum(sub, 0)], -1)
    return out


def candidate_pairs(n: int, *neighbour_lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unordered pairs (i < j), each once, that any of the [n, k] lists holds."""
    keys = []
    for nn in neighbour_lists:
        rows = np.repeat(np.arange(n, dtype=np.int64), nn.shape[1])
        cols = nn.ravel()
        m = cols >= 0
        keys.append(np.minimum(rows[m], cols[m]) * n + np.maximum(rows[m], cols[m]))
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    return key // max(n, 1), key % max(n, 1)

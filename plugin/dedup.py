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
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import contract as C
from . import photohash as PH
from . import photoreg as PR
from .query import filters as F
from .query.search import Searcher
from .store import search as store_reads

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


# --- photo+title: the photo and the title scored apart, mutual best matches --------------
NEIGHBOURS = 5  # candidates per row and per vector field (photo, title)
IMAGE_WEIGHT = C.DEDUP_IMAGE_WEIGHT
HASH_WEIGHT = C.DEDUP_HASH_WEIGHT
_NUMBER = re.compile(r"\d+")
# Colour words a title may name (English colour names, as in Myntra's baseColour). Two
# titles naming colours and sharing none are two colourways, not one product twice.
COLOUR_WORDS = frozenset("""beige black blue bronze brown burgundy charcoal coffee copper cream gold green grey
    gray khaki lavender lime magenta maroon mauve melange multi mushroom mustard navy nude olive orange peach pink
    purple red rose rust silver skin steel tan taupe teal turquoise white yellow violet indigo""".split())


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


def title_grams(title: str | None) -> set[str]:
    """Character trigrams of each lower-cased word, padded (' re', 'red', 'ed '): a
    reordered title keeps them all, a typo or an abbreviation changes a few."""
    out: set[str] = set()
    for w in (title or "").lower().split():
        w = f" {w} "
        out.update(w[i:i + 3] for i in range(len(w) - 2))
    return out


def _title_grams_hashed(titles: Sequence[str | None]) -> list[frozenset]:
    """title_grams of each title as hashed ids (22 bits), built word by word with a
    cache: a catalogue's titles share most of their words."""
    by_word: dict[str, frozenset] = {}
    out = []
    for t in titles:
        grams: set[int] = set()
        for w in (t or "").lower().split():
            g = by_word.get(w)
            if g is None:
                g = by_word[w] = frozenset(zlib.crc32(x.encode()) & 0x3FFFFF for x in title_grams(w))
            grams |= g
        out.append(frozenset(grams))
    return out


def title_overlap(titles: Sequence[str | None], i: np.ndarray, j: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Jaccard overlap of title_grams for each pair (i[k], j[k]); 0 where a title is
    empty. One sparse 0/1 matrix of hashed trigrams, products of its rows in chunks."""
    from scipy import sparse

    grams = _title_grams_hashed(titles)
    counts = np.fromiter((len(g) for g in grams), dtype=np.int64, count=len(grams))
    cols = np.fromiter((c for g in grams for c in g), dtype=np.int64, count=int(counts.sum()))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    size = counts.astype(np.float32)
    m = sparse.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(titles), 0x400000))
    out = np.zeros(len(i), np.float32)
    for s in range(0, len(i), chunk):
        a, b = i[s:s + chunk], j[s:s + chunk]
        inter = np.asarray(m[a].multiply(m[b]).sum(axis=1), dtype=np.float32).ravel()
        union = size[a] + size[b] - inter
        out[s:s + chunk] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def numbers_differ(titles: Sequence[str | None], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True where both titles carry numbers and not the same ones ('Lipstick 63' and
    'Lipstick 10': two shades, not one product listed twice)."""
    ids: dict[frozenset, int] = {frozenset(): 0}
    nid = np.fromiter((ids.setdefault(frozenset(_NUMBER.findall(t or "")), len(ids)) for t in titles),
                      dtype=np.int64, count=len(titles))
    return (nid[i] != 0) & (nid[j] != 0) & (nid[i] != nid[j])


def colours_differ(titles: Sequence[str | None], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True where both titles name colours (COLOUR_WORDS) and share none ('Nike Men Blue
    Track Pants' and 'Nike Men Black Track Pants'). 'Navy Blue' against 'Blue' shares
    one; a typo'd colour names none."""
    ids: dict[frozenset, int] = {frozenset(): 0}
    cid = np.fromiter((ids.setdefault(frozenset(w for w in re.findall(r"[a-z]+", (t or "").lower())
                                                if w in COLOUR_WORDS), len(ids)) for t in titles),
                      dtype=np.int64, count=len(titles))
    sets = list(ids)  # insertion order: sets[k] has id k
    a, b = cid[i], cid[j]
    both = np.flatnonzero((a != 0) & (b != 0) & (a != b))
    out = np.zeros(len(i), dtype=bool)
    out[both] = [not (sets[x] & sets[y]) for x, y in zip(a[both].tolist(), b[both].tolist())]
    return out


def normalised(value) -> str:
    """A stored text value as dedup compares it: lower case, runs of spaces as one, "" for none."""
    return " ".join(str(value or "").lower().split())


def attributes_differ(values: Sequence | None, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True where both products have the attribute (e.g. the stored colour) and not the
    same value, compared case- and space-insensitively; all False without `values`."""
    if values is None:
        return np.zeros(len(i), dtype=bool)
    ids: dict[str, int] = {"": 0}
    vid = np.fromiter((ids.setdefault(normalised(v), len(ids)) for v in values),
                      dtype=np.int64, count=len(values))
    return (vid[i] != 0) & (vid[j] != 0) & (vid[i] != vid[j])


def _dot_pairs(x: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    out = np.empty(len(i), np.float32)
    for s in range(0, len(i), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", x[i[s:s + chunk]], x[j[s:s + chunk]])
    return out


Photos = Callable[[np.ndarray], np.ndarray]  # rows -> their grey photos [len, H, W] uint8 (all 0: none)


def photo_scores(image: np.ndarray, hashes: Sequence | None, i: np.ndarray, j: np.ndarray,
                 hash_weight: float = HASH_WEIGHT, greys: Photos | np.ndarray | None = None,
                 overlap: np.ndarray | None = None) -> np.ndarray:
    """Each pair's photo score: image_vec cosine, blended with how surely the two photos
    are one photo where both products have a signature: the signature similarity, or,
    with `greys` (each row's grey photo, samestyle.photoreg, as an array or a function
    of the rows; an all-zero photo counts as none), the registration similarity,
    whichever is higher. Registration costs ~10 ms a pair, so it runs only where the
    signature is short of 1 and the embeddings and the titles (`overlap`, title_overlap
    of the pairs) already agree (C.DEDUP_REG_MIN_COSINE, C.DEDUP_REG_MIN_TITLE)."""
    photo = _dot_pairs(np.asarray(image, np.float32), i, j)
    if hashes is None or hash_weight <= 0 or not len(i):
        return photo
    h, has = PH.parse(hashes)
    both = has[i] & has[j]
    same = PH.similarity(h, i[both], j[both], C.DEDUP_HASH_FLOOR)
    if greys is not None:
        gate = (same < 1) & (photo[both] >= C.DEDUP_REG_MIN_COSINE)
        if overlap is not None:
            gate &= overlap[both] >= C.DEDUP_REG_MIN_TITLE
        same = np.maximum(same, registration(greys, i[both], j[both], gate))
    photo[both] = (1 - hash_weight) * photo[both] + hash_weight * same
    return photo


def registration(greys: Photos | np.ndarray, i: np.ndarray, j: np.ndarray,
                 gate: np.ndarray | None = None) -> np.ndarray:
    """How surely one photo is a (re-cropped) copy of the other, in [0, 1], for the
    pairs in `gate` whose two grey photos exist (0 for the rest): the band NCC at the
    best crop alignment (samestyle.photoreg) stretched from C.DEDUP_REG_FLOOR. Only the
    photos of gated pairs are read."""
    out = np.zeros(len(i), np.float32)
    m = np.ones(len(i), bool) if gate is None else gate.copy()
    if not m.any():
        return out
    rows, inv = np.unique(np.concatenate([i[m], j[m]]), return_inverse=True)
    photos = greys[rows] if isinstance(greys, np.ndarray) else greys(rows)
    has = photos.reshape(len(photos), -1).any(1)
    a, b = inv[: m.sum()], inv[m.sum():]
    ok = has[a] & has[b]
    m[np.flatnonzero(m)[~ok]] = False
    if m.any():
        log.info("photo registration: %d pairs (about 5-10 ms each)", int(m.sum()))
        ncc = PR.register(PR.Prepared(photos), a[ok], b[ok])
        out[m] = PR.similarity(ncc, C.DEDUP_REG_FLOOR, C.DEDUP_REG_TOP)
    return out


def mutual_best(n: int, i: np.ndarray, j: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Mask of the pairs that are each end's best-scoring pair (ties kept)."""
    best = np.full(n, -np.inf, dtype=np.float64)
    np.maximum.at(best, i, score)
    np.maximum.at(best, j, score)
    return (score >= best[i] - 1e-6) & (score >= best[j] - 1e-6)


def photo_title_pairs(image: np.ndarray, text: np.ndarray, titles: Sequence[str | None], groups: Sequence,
                      k: int = NEIGHBOURS, image_weight: float = IMAGE_WEIGHT, block: int = 1024,
                      exact_max: int = EXACT_MAX, progress: Callable[[int], None] | None = None,
                      hashes: Sequence | None = None, hash_weight: float = HASH_WEIGHT,
                      greys: Photos | np.ndarray | None = None, colours: Sequence | None = None,
                      signature_candidates: bool = True) -> Pairs:
    """Candidate duplicates for `dedup`'s photo+title method, scored; `.above(t)` keeps
    the links at threshold t.

    A re-listed product keeps a near-identical photo or a near-identical title (usually
    both); another colourway of its style has a similar title and a different photo,
    and one fused vector blurs the two. So: each row's k nearest of its category by
    image_vec and by text_vec are the candidates; a candidate pair scores
    image_weight x photo cosine + (1 - image_weight) x title trigram overlap; pairs
    whose titles carry different numbers or name different colours, or whose stored
    `colours` (the colour attribute, None where a product has none) differ, are
    dropped; and a pair is kept only when it is the best-scoring pair of both its
    products (mutual best match), so no chain of lookalikes joins a cluster. With `hashes` (stored photo signatures, samestyle.photohash;
    None where a product has none), a pair whose two products both have one scores its
    photo as (1 - hash_weight) x cosine + hash_weight x signature similarity (stretched
    from C.DEDUP_HASH_FLOOR): it tells a copy of the photo from another photo of the
    same style. With hashes and `signature_candidates`, each row's k nearest by photo
    signature are candidates too: a re-cropped or watermarked copy whose image_vec sits
    behind k other photos of its style (the model pulls a style's photos together) still
    meets its source. Cost: two k-nearest searches (three with signatures; n x category
    size per group up to exact_max rows, n^1.5 beyond) and O(n k) pair scoring."""
    n = len(image)
    near = [nearest(image, groups, k, block, exact_max)]
    if progress:
        progress(n // 2)
    near.append(nearest(text, groups, k, block, exact_max))
    if hashes is not None and hash_weight > 0 and signature_candidates:
        sigs, has = PH.parse(hashes)
        near.append(signature_nearest(sigs, has, groups, k, block, exact_max))
    i, j = candidate_pairs(n, *near)
    ok = ~(numbers_differ(titles, i, j) | colours_differ(titles, i, j) | attributes_differ(colours, i, j))
    i, j = i[ok], j[ok]
    overlap = title_overlap(titles, i, j)
    photo = photo_scores(image, hashes, i, j, hash_weight, greys, overlap)
    score = image_weight * photo + (1 - image_weight) * overlap
    keep = mutual_best(n, i, j, score)
    if progress:
        progress(n - n // 2)
    return Pairs(i[keep], j[keep], score[keep].astype(np.float32))


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

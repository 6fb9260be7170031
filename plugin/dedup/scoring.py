"""Dedup, stage 3: scoring candidate pairs (photo+title). The photo score (image_vec
cosine blended with photo-signature and crop-registration similarity), the title
overlap beside it, and the mutual-best filter; `photo_title_pairs` chains stages 1-3."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from .. import contract as C
from .. import photohash as PH
from .. import photoreg as PR
from .candidates import EXACT_MAX, NEIGHBOURS, Pairs, candidate_pairs, nearest, signature_nearest
from .titles import attributes_differ, colours_differ, numbers_differ, title_overlap

log = logging.getLogger(__package__)  # the package's logger ("samestyle.dedup"), as before the split

# --- photo+title: the photo and the title scored apart, mutual best matches --------------
IMAGE_WEIGHT = C.DEDUP_IMAGE_WEIGHT
HASH_WEIGHT = C.DEDUP_HASH_WEIGHT


def _dot_pairs(x: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    out = np.empty(len(i), np.float32)
    for s in range(0, len(i), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", x[i[s:s + chunk]], x[j[s:s + chunk]])
    return out


Photos = Callable[[np.ndarray], np.ndarray]  # rows -> their grey photos [len, H, W] uint8 (all 0: none)


def kept_apart(titles: Sequence[str | None], colours: Sequence | None, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True where a rule keeps a pair from linking: titles with other numbers or other
    colour words, or other stored `colours` (None: no stored colour)."""
    return numbers_differ(titles, i, j) | colours_differ(titles, i, j) | attributes_differ(colours, i, j)


def pair_score(photo: np.ndarray, overlap: np.ndarray, image_weight: float = IMAGE_WEIGHT) -> np.ndarray:
    """photo+title's score of a pair: image_weight x its photo score + the rest x its title overlap."""
    return image_weight * photo + (1 - image_weight) * overlap


def registration_gate(cosine: np.ndarray, overlap: np.ndarray | None) -> np.ndarray:
    """The pairs crop registration may run on: image cosine and (where given) title
    overlap already agree (C.DEDUP_REG_MIN_COSINE, C.DEDUP_REG_MIN_TITLE)."""
    gate = cosine >= C.DEDUP_REG_MIN_COSINE
    return gate if overlap is None else gate & (overlap >= C.DEDUP_REG_MIN_TITLE)


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
        gate = (same < 1) & registration_gate(photo[both], None if overlap is None else overlap[both])
        same = np.maximum(same, registration(greys, i[both], j[both], gate))
    photo[both] = (1 - hash_weight) * photo[both] + hash_weight * same
    return photo


def registration(greys: Photos | np.ndarray, i: np.ndarray, j: np.ndarray,
                 gate: np.ndarray | None = None) -> np.ndarray:
    """How surely one photo is a (re-cropped) copy of the other, in [0, 1], for the
    pairs in `gate` whose two grey photos exist (0 for the rest): the band NCCs at the
    best crop alignment (samestyle.photoreg), each stretched from its C.DEDUP_REG_FLOOR,
    the best band taken. Only the photos of gated pairs are read."""
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
    ok = ~kept_apart(titles, colours, i, j)
    i, j = i[ok], j[ok]
    overlap = title_overlap(titles, i, j)
    photo = photo_scores(image, hashes, i, j, hash_weight, greys, overlap)
    score = pair_score(photo, overlap, image_weight)
    keep = mutual_best(n, i, j, score)
    if progress:
        progress(n - n // 2)
    return Pairs(i[keep], j[keep], score[keep].astype(np.float32))

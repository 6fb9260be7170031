"""Dedup, stage 2: title and attribute comparisons of candidate pairs. Character-trigram
overlap of the titles, and the vetoes: titles carrying different numbers or naming
different colours, products stored under different attribute values."""

from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

_NUMBER = re.compile(r"\d+")
# Colour words a title may name (English colour names, as in Myntra's baseColour). Two
# titles naming colours and sharing none are two colourways, not one product twice.
COLOUR_WORDS = frozenset("""beige black blue bronze brown burgundy charcoal coffee copper cream gold green grey
    gray khaki lavender lime magenta maroon mauve melange multi mushroom mustard navy nude olive orange peach pink
    purple red rose rust silver skin steel tan taupe teal turquoise white yellow violet indigo""".split())


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

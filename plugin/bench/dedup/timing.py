"""`samestyle bench dedup`, the time: `dedup`'s links and clusters timed (`timed_dedup`)
over the collection and over synthetic catalogues of unit vectors in N_SYN_CATEGORIES
categories with planted near-copies (`synthetic`, `synthetic_catalogue`) at the sizes
of --synthetic-sizes (`parse_sizes`), with the growth exponent between sizes and the
planted copies' recall (`synthetic_timing`); `_say` is the benchmark's progress line on
stderr."""

from __future__ import annotations

import json
import math
import time

import click
import numpy as np

from ... import contract as C
from ... import dedup as D
from .scoring import _r

N_SYN_CATEGORIES = 48  # as bench scale


def _say(msg: str) -> None:
    click.echo(msg, err=True)


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

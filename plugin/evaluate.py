"""The paper's retrieval table on a labelled catalogue.

Directions q->g: the query product's view q against every product's stored field g
(i = image_vec, t = text_vec, m = fused_vec), over the whole catalogue, the query
product itself excluded. A hit is another product with the same label. Metrics per
direction: MRR of the first relevant hit and R@K = share of queries with at least
one relevant product in the top K (the paper's recall).

Also: title->own-photo and photo->own-title (the relevant item is the product
itself; no label needed), and the raw pretrained backbones side by side (photo
features alone, MiniLM alone).

Pure numpy over arrays; producing the views (Triton, ONNX, cached features) is the
caller's business.
"""

from __future__ import annotations

import numpy as np

DIRECTIONS = ("i2i", "i2t", "i2m", "t2i", "t2t", "t2m", "m2m")
SHORT = {"i": "image", "t": "text", "m": "fused"}
KS = (1, 5, 10, 20)


def first_relevant_ranks(q: np.ndarray, gallery: np.ndarray, q_idx: np.ndarray, relevant, block: int = 512) -> np.ndarray:
    """Rank (1-based) of the best-scoring relevant item for each query, the query's
    own row excluded; ties count against the query (pessimistic). `relevant(i)`
    returns gallery indices relevant to query product i."""
    ranks = np.empty(len(q_idx), dtype=np.int64)
    for s in range(0, len(q_idx), block):
        rows = q_idx[s : s + block]
        scores = q[s : s + block] @ gallery.T  # [b, N]
        scores[np.arange(len(rows)), rows] = -np.inf
        for j, i in enumerate(rows):
            rel = relevant(i)
            rel = rel[rel != i]
            if len(rel) == 0:
                ranks[s + j] = np.iinfo(np.int64).max
                continue
            rs = scores[j, rel]
            best = rs.max()
            # ties with non-relevant items count against the query (pessimistic)
            ties = int((scores[j] == best).sum()) - int((rs == best).sum())
            ranks[s + j] = int((scores[j] > best).sum()) + ties + 1
    return ranks


def metrics(ranks: np.ndarray) -> dict:
    ok = ranks < np.iinfo(np.int64).max
    r = ranks[ok].astype(np.float64)
    out = {"queries": int(ok.sum()), "mrr": round(float((1.0 / r).mean()), 4) if len(r) else None}
    for k in KS:
        out[f"r@{k}"] = round(float((r <= k).mean()), 4) if len(r) else None
    return out


def same_label_index(labels: np.ndarray):
    groups: dict[int, np.ndarray] = {}
    order = np.argsort(labels, kind="stable")
    sl = labels[order]
    bounds = np.flatnonzero(np.diff(sl)) + 1
    for chunk in np.split(order, bounds):
        if len(chunk) and labels[chunk[0]] >= 0:
            groups[int(labels[chunk[0]])] = chunk
    empty = np.zeros(0, dtype=np.int64)
    return lambda i: groups.get(int(labels[i]), empty)


def table(views: dict[str, np.ndarray], labels: np.ndarray, queries: np.ndarray,
          directions: tuple[str, ...] = DIRECTIONS, query_views: dict[str, np.ndarray] | None = None) -> dict:
    """The 7-direction table (or the `directions` named). views: image/text/fused [N, D]
    (those the directions use), the stored fields; `query_views`: the same views as
    queries, where a search sends other vectors than it stores (a query's colour part
    scaled, samestyle.query.requests.with_colour); queries: indices."""
    rel = same_label_index(labels)
    qviews = query_views or views
    out = {}
    for d in directions:
        qv, gv = qviews[SHORT[d[0]]], views[SHORT[d[2]]]
        out[d] = metrics(first_relevant_ranks(qv[queries], gv, queries, rel))
    return out


def own_pair(query_view: np.ndarray, gallery_view: np.ndarray, queries: np.ndarray) -> dict:
    """A product's own photo from its title (or back): the product itself is the
    only relevant item, so its own row is not excluded here."""
    ranks = np.empty(len(queries), dtype=np.int64)
    for s in range(0, len(queries), 512):
        rows = queries[s : s + 512]
        scores = query_view[rows] @ gallery_view.T
        own = scores[np.arange(len(rows)), rows]
        ranks[s : s + len(rows)] = (scores > own[:, None]).sum(1) + 1
    return metrics(ranks)


def own_pair_queries(has_image: np.ndarray, titles: list[str], candidates: np.ndarray, n: int | None,
                     seed: int = 0) -> np.ndarray:
    """Own-pair query products: candidates with both halves, a photo and a title that
    is not blank (a blank title still tokenises to [CLS] [SEP], so the tokens cannot
    tell); a seeded sample of `n` when there are more."""
    has_title = np.array([bool(t.strip()) for t in titles], dtype=bool)
    pool = np.intersect1d(candidates, np.flatnonzero(np.asarray(has_image, dtype=bool) & has_title))
    if n is not None and n < len(pool):
        pool = np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))
    return pool


def label_queries(labels: np.ndarray, candidates: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Query products: candidates whose label has at least one other member."""
    counts = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=np.int64)
    ok = [i for i in candidates if labels[i] >= 0 and counts[labels[i]] > 1]
    ok = np.asarray(ok, dtype=np.int64)
    if n is not None and n < len(ok):
        ok = np.sort(np.random.default_rng(seed).choice(ok, size=n, replace=False))
    return ok


# --- photo + colour modifier (the paper's interactive query) ------------------------

def modifier_queries(labels: np.ndarray, colours: list[str], candidates: np.ndarray, has_image: np.ndarray,
                     n: int | None = None, seed: int = 0) -> list[tuple[int, str, np.ndarray]]:
    """(query product a, target colour c, relevant products) for every candidate a
    with a photo and every other colour c in a's style group: the relevant products
    are a's group members of colour c."""
    rel = same_label_index(labels)
    out = []
    for a in candidates:
        if labels[a] < 0 or not has_image[a]:
            continue
        members = rel(a)
        by_colour: dict[str, list[int]] = {}
        for m in members:
            if m != a and colours[m] and colours[m] != colours[a]:
                by_colour.setdefault(colours[m], []).append(int(m))
        for c in sorted(by_colour):
            out.append((int(a), c, np.asarray(by_colour[c], dtype=np.int64)))
    if n is not None and n < len(out):
        keep = np.sort(np.random.default_rng(seed).choice(len(out), size=n, replace=False))
        out = [out[i] for i in keep]
    return out


def hits(q: np.ndarray, gallery: np.ndarray, relevant: list[np.ndarray], exclude: np.ndarray | None = None,
         ks=(1, 10), block: int = 512) -> dict:
    """Share of queries with a relevant product in the top K (ties count against
    the query); `exclude[r]` is a gallery row to leave out for query r (its own
    product), or -1."""
    ranks = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), block):
        sc = q[s : s + block] @ gallery.T
        if exclude is not None:
            ex = exclude[s : s + block]
            ok = ex >= 0
            sc[np.flatnonzero(ok), ex[ok]] = -np.inf
        for j in range(len(sc)):
            best = sc[j, relevant[s + j]].max()
            ranks[s + j] = int((sc[j] >= best).sum()) - int((sc[j, relevant[s + j]] == best).sum()) + 1
    return {"queries": int(len(q)), **{f"hit@{k}": round(float((ranks <= k).mean()), 4) if len(q) else None
                                       for k in ks}}

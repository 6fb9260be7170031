"""Pure builders of Milvus search requests for every same-style search type.

Importable by other services that query the collection themselves: give them query
vectors (from any `samestyle.encoders` encoder, or fetched from the collection) and
they return a plan of plain data (field, query vectors, search params, limit, filter;
ranker kind and weights). The store turns a plan into pymilvus objects at call time
(`samestyle.store.requests.hybrid_args(plan)` gives the `AnnSearchRequest`s and the
ranker for `MilvusClient.hybrid_search`), so this module does not import pymilvus.
No I/O here; see docs/collection-contract.md for the contract they implement.

Which query vector goes against which field. A query has up to three views (photo
only, title only, both fused; a view it cannot have is absent or all-zero). A field
is searched with the query's view of the same name when it has one, and otherwise
with the nearest view it does have (`VIEW_FALLBACK`): a text-only query searched
against `image_vec` is the cross-modal text->photo search; a product without a photo
searched against `image_vec` uses its title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .. import contract as C
from ..errors import InputError

FIELDS: tuple[str, ...] = tuple(C.VECTOR_FIELDS.values())  # image_vec, text_vec, fused_vec
FIELD_VIEW = {f: v for v, f in C.VECTOR_FIELDS.items()}
VIEW_FALLBACK = {
    "image": ("image", "fused", "text"),
    "text": ("text", "fused", "image"),
    "fused": ("fused", "image", "text"),
}
RANKERS = C.RANKERS
RRF_K = C.RRF_K
SEARCH_TYPES = ("product", "text", "photo", "photo_text", "hybrid")
DEFAULT_FIELDS = {
    "product": (C.FUSED_VEC,),
    "text": (C.TEXT_VEC,),
    # A photo alone is compared with photos; fused_vec (photo + title) can be added
    # per request, but a query without a title sits off the stored fused vectors.
    "photo": (C.IMAGE_VEC,),
    "photo_text": (C.MODIFIER_FIELD,),
    "hybrid": FIELDS,
}
# How much a query's colour counts, per search type, for a model that keeps colour apart
# (its last `colour_dims` dimensions, `samestyle train --colour-dims`): 0 = the same style
# in any colour (the colour part of the query vector is zeroed), 1 = as the model encodes
# it. A product, a photo or a phrase asks for the same style; a photo + modifier ("but in
# white") asks for a colour. SearchOptions.colour overrides it per request.
DEFAULT_COLOUR = {"product": 0.0, "text": 0.0, "photo": 0.0, "photo_text": 1.0, "hybrid": 0.0}
TEXT_TARGETS = {t: (C.VECTOR_FIELDS[t],) if t in C.VECTOR_FIELDS else FIELDS for t in C.TEXT_TARGETS}  # "all": FIELDS
# How many candidates each sub-request of a hybrid search brings to the ranker, as a
# multiple of what the page needs: a hit ranked low in one view but high in another
# must be among both candidate lists for its fused score to be right.
CANDIDATE_FACTOR = 2
CANDIDATE_EXTRA = 50
MAX_CANDIDATES = 16_384  # Milvus's cap on limit (+ offset) per request


def with_colour(vectors: np.ndarray, colour_dims: int, weight: float) -> np.ndarray:
    """Query vectors [.., D] with their last `colour_dims` dimensions (the colour part)
    scaled by `weight` in [0, 1], then divided by their inner product with the vector they
    came from, so a product still scores exactly 1 against itself (the per-query factor
    changes no ranking); unchanged (the same array) when the model keeps no colour apart
    or the weight is 1. Stored vectors are never scaled: against a stored vector, a
    scaled query scores (style score + weight x colour score) / (style + weight x colour
    share of its own vector)."""
    if not colour_dims or weight == 1.0:
        return vectors
    out = np.array(vectors, dtype=np.float32, copy=True)
    k = out.shape[-1] - colour_dims
    out[..., k:] *= weight
    own = (out * np.asarray(vectors, dtype=np.float32)).sum(-1, keepdims=True)
    return np.divide(out, own, out=np.zeros_like(out), where=own > 1e-12)


def candidates(limit: int) -> int:
    """Candidates per sub-request of a hybrid search returning `limit` hits."""
    return min(MAX_CANDIDATES, max(limit * CANDIDATE_FACTOR, limit + CANDIDATE_EXTRA))
_EPS = 1e-6


@dataclass(frozen=True)
class AnnRequest:
    """One vector search of a plan, as plain data: the same parts as pymilvus'
    `AnnSearchRequest` (samestyle.store.requests builds that from it)."""

    field: str  # the vector field searched (anns_field)
    data: list[list[float]]  # one query vector per query (nq)
    params: dict  # search params: metric_type and the index's params
    limit: int
    expr: str | None = None  # the filter; None for none


@dataclass
class SearchPlan:
    """Everything a same-style search sends to Milvus, as plain data. `requests` has
    one AnnRequest per field; with a single field a plain `search` on `requests[0]` is
    equivalent (and what samestyle.store.search does). Several requests are fused by
    the ranker `ranker_kind` (with `weights` for 'weighted')."""

    fields: tuple[str, ...]
    vectors: dict[str, list[float]]  # field -> query vector
    views_used: dict[str, str]  # field -> which query view was used
    weights: tuple[float, ...]  # one per field, sum 1 (for RRF: reporting only)
    ranker_kind: str
    requests: list[AnnRequest]
    limit: int  # hits to ask for (offset + k)
    expr: str = ""
    search_params: dict = field(default_factory=dict)
    # A weighted multi-field search on a collection with a composite field (see
    # samestyle.store.spec.CompositeSpec): `requests` is then one request on that field
    # with the weighted query views side by side, and its score is the exact weighted sum.
    composite: str | None = None

    @property
    def anns_field(self) -> str | None:
        """The one field a plain `search` runs on; None for a hybrid search."""
        if self.composite:
            return self.composite
        return self.fields[0] if len(self.fields) == 1 else None

    @property
    def single_vector(self) -> list[float]:
        return self.requests[0].data[0] if self.composite else self.vectors[self.fields[0]]


# --- small pure helpers -------------------------------------------------------------------
def check_fields(fields: Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """Validated, de-duplicated field names in contract order of first mention.
    Accepts views ('image') as well as field names ('image_vec')."""
    if not fields:
        return tuple(default)
    out: list[str] = []
    for f in fields:
        name = C.VECTOR_FIELDS.get(f, f)
        if name not in FIELDS:
            raise InputError(f"unknown vector field [{f}]", field="fields",
                             fix=f"use some of {', '.join(FIELDS)} (or image, text, fused)")
        if name not in out:
            out.append(name)
    return tuple(out)


def normalise_weights(fields: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None,
                      profile: Mapping[str, float] | None = None) -> tuple[float, ...]:
    """One non-negative weight per field, summing to 1. Explicit weights (a list in
    field order, or field -> weight) win over the profile; missing ones get 0 when a
    mapping is given. Equal weights when neither is given."""
    if weights is not None and not isinstance(weights, Mapping):
        ws = list(weights)
        if len(ws) != len(fields):
            raise InputError(f"{len(ws)} weights for {len(fields)} fields {list(fields)}", field="weights",
                             fix="give one weight per field, in the same order")
    else:
        src = weights if weights is not None else profile
        if src:
            keys = {C.VECTOR_FIELDS.get(k, k) for k in src}
            unknown = keys - set(FIELDS)
            if unknown and weights is not None:
                raise InputError(f"weights for unknown fields {sorted(unknown)}", field="weights")
            norm = {C.VECTOR_FIELDS.get(k, k): v for k, v in src.items()}
            ws = [norm.get(f, 0.0) for f in fields]
        else:
            ws = [1.0] * len(fields)
    try:
        ws = [float(w) for w in ws]
    except (TypeError, ValueError):
        raise InputError(f"weights must be numbers, got {ws!r}", field="weights") from None
    if any(not np.isfinite(w) or w < 0 for w in ws):
        raise InputError(f"weights must be finite and >= 0, got {ws}", field="weights")
    total = sum(ws)
    if total <= 0:
        if weights is not None:
            raise InputError(f"weights {ws} sum to 0", field="weights", fix="give at least one positive weight")
        ws, total = [1.0] * len(fields), float(len(fields))
    return tuple(w / total for w in ws)


def check_ranker(kind: str) -> str:
    """The ranker kind, checked against RANKERS. 'weighted' is Milvus's WeightedRanker
    without score normalisation: with normalised weights and L2-normalised vectors the
    fused score is then the weighted mean cosine, on the same scale as a single-field
    search. 'rrf' is RRFRanker(RRF_K) and ignores the weights."""
    if kind not in RANKERS:
        raise InputError(f"unknown ranker [{kind}]", field="ranker", fix=f"use one of {', '.join(RANKERS)}")
    return kind


def search_params(limit: int, extra: Mapping | None = None) -> dict:
    """The metric from the contract plus the index profile's params (`extra`, see
    samestyle.store.search_params), with an HNSW `ef` raised to at least `limit`
    (Milvus requires ef >= limit)."""
    params = dict(extra or {})
    if not params or "ef" in params:  # HNSW (the default profiles); other indexes have their own knobs
        params["ef"] = max(int(params.get("ef", 64)), int(limit))
    return {"metric_type": C.METRIC, "params": params}


def _as_vec(v) -> np.ndarray | None:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    return a if a.size and float(np.linalg.norm(a)) > _EPS else None


def query_vectors(views: Mapping[str, object], fields: Sequence[str]) -> tuple[dict[str, list[float]], dict[str, str]]:
    """field -> query vector (and field -> view used), per VIEW_FALLBACK. `views` maps
    view names ('image', 'text', 'fused') or field names to vectors; absent or zero
    vectors count as missing."""
    have: dict[str, np.ndarray] = {}
    for k, v in views.items():
        view = FIELD_VIEW.get(k, k)
        if view not in C.VIEWS:
            raise InputError(f"unknown view [{k}]", field="views", fix=f"use {', '.join(C.VIEWS)}")
        a = _as_vec(v)
        if a is not None:
            have[view] = a
    if not have:
        raise InputError("the query has no usable vector (every view is missing or zero)", field="query",
                         fix="give a photo, a text, or a product that has one")
    dims = {a.shape[0] for a in have.values()}
    if len(dims) != 1:
        raise InputError(f"query views have different dimensions {sorted(dims)}", field="query")
    vecs, used = {}, {}
    for f in fields:
        view = next(v for v in VIEW_FALLBACK[FIELD_VIEW[f]] if v in have)
        vecs[f] = have[view].tolist()
        used[f] = view
    return vecs, used


def composite_query(vectors: Mapping[str, Sequence[float]], fields: Sequence[str],
                    weights: Sequence[float]) -> list[float]:
    """[w_image q_image, w_text q_text, w_fused q_fused]: its inner product with a stored
    composite [v_image, v_text, v_fused] is the weighted sum of the per-field cosines;
    a field not searched contributes zeros."""
    w = dict(zip(fields, weights))
    dim = len(next(iter(vectors.values())))
    parts = [np.asarray(vectors[f], np.float32) * np.float32(w[f]) if f in w else np.zeros(dim, np.float32)
             for f in FIELDS]
    return np.concatenate(parts).tolist()


def plan(views: Mapping[str, object], fields: Sequence[str], *, k: int = 10, offset: int = 0, expr: str = "",
         weights: Mapping[str, float] | Sequence[float] | None = None, profile: Mapping[str, float] | None = None,
         ranker: str = "weighted", params: Mapping | None = None, reserve: int = 0,
         composite: str | None = None, composite_params: Mapping | None = None) -> SearchPlan:
    """The general builder: any set of fields as one (hybrid) search. `reserve` more
    hits are fetched, in total and in each sub-request, for hits the caller will drop
    itself (a batch's query products, which a shared filter cannot exclude).

    `composite` names the collection's composite field (None: it has none): a weighted
    search over several fields then becomes one search on it (`composite_params`: its
    index's search params), exact for any weights; RRF still needs hybrid_search."""
    fields = check_fields(fields, FIELDS)
    if k < 1 or offset < 0:
        raise InputError(f"k must be >= 1 and offset >= 0, got k={k} offset={offset}", field="k")
    vecs, used = query_vectors(views, fields)
    ws = normalise_weights(fields, weights, profile)
    check_ranker(ranker)
    limit = offset + k
    if composite and ranker == "weighted" and len(fields) > 1:
        limit += reserve
        sp = search_params(limit, composite_params if composite_params is not None else params)
        cq = composite_query(vecs, fields, ws)
        req = AnnRequest(composite, [cq], sp, limit, expr or None)
        return SearchPlan(fields, vecs, used, ws, ranker, [req], limit, expr, sp, composite=composite)
    per_req = (candidates(limit) if len(fields) > 1 else limit) + reserve
    limit += reserve
    sp = search_params(per_req, params)
    reqs = [AnnRequest(f, [vecs[f]], sp, per_req, expr or None) for f in fields]
    return SearchPlan(fields, vecs, used, ws, ranker, reqs, limit, expr, sp)


@dataclass
class BatchPlan:
    """Plans that differ only in their query vectors, as one set of requests: each
    AnnRequest carries every plan's vector for its field (nq = len(plans)), so
    one Milvus call answers them all. Milvus Lite makes a pass over every stored row
    per call, so this is what makes many queries cheap there (docs/benchmarks)."""

    plans: tuple[SearchPlan, ...]
    data: dict[str, list[list[float]]]  # field -> one query vector per plan
    requests: list[AnnRequest]

    @property
    def head(self) -> SearchPlan:
        return self.plans[0]


def batch_key(p: SearchPlan) -> tuple:
    """Plans with equal keys can share a call (same fields, ranking, page and filter).
    RRF ignores the weights, so they do not split an RRF batch."""
    if p.composite:  # the weights live in the query vector: any weights share a call
        return (p.composite, p.limit, p.expr, repr(sorted(p.search_params.items())))
    weights = None if p.ranker_kind == "rrf" else p.weights
    return (p.fields, weights, p.ranker_kind, p.limit, p.expr, repr(sorted(p.search_params.items())))


def batch(plans: Sequence[SearchPlan]) -> BatchPlan:
    if not plans:
        raise ValueError("batch() needs at least one plan")
    key = batch_key(plans[0])
    if any(batch_key(p) != key for p in plans[1:]):
        raise ValueError("plans in one batch must share fields, weights, ranker, limit, filter and params "
                         "(group them by batch_key first)")
    head = plans[0]
    if head.composite:
        data = {head.composite: [p.single_vector for p in plans]}
        reqs = [AnnRequest(head.composite, data[head.composite], head.search_params, head.limit, head.expr or None)]
        return BatchPlan(tuple(plans), data, reqs)
    data = {f: [p.vectors[f] for p in plans] for f in head.fields}
    per_req = head.requests[0].limit
    reqs = [AnnRequest(f, data[f], head.search_params, per_req, head.expr or None) for f in head.fields]
    return BatchPlan(tuple(plans), data, reqs)


# --- one builder per search type --------------------------------------------------------------
def product_plan(stored: Mapping[str, object], fields: Sequence[str] | None = None, **kw) -> SearchPlan:
    """Search with a stored product's vectors (field name -> vector, as fetched):
    fused -> fused by default; a field whose view the product lacks uses one it has."""
    vectors = {f: stored.get(f) for f in FIELDS}  # a fetched row also holds scalars
    return plan(vectors, check_fields(fields, DEFAULT_FIELDS["product"]), **kw)


def text_plan(text_vec, target: str = "text", fields: Sequence[str] | None = None, **kw) -> SearchPlan:
    """A phrase (its encoder `text` view) against text_vec, image_vec (cross-modal),
    fused_vec, or all three (`target`); explicit `fields` override the target."""
    if target not in TEXT_TARGETS:
        raise InputError(f"unknown text target [{target}]", field="target",
                         fix=f"use one of {', '.join(TEXT_TARGETS)}")
    return plan({"text": text_vec}, check_fields(fields, TEXT_TARGETS[target]), **kw)


def photo_plan(image_vec, fields: Sequence[str] | None = None, fused_vec=None, **kw) -> SearchPlan:
    """A photo (its encoder `image` view; for a photo alone the `fused` view may be
    given too) against image_vec and/or fused_vec."""
    return plan({"image": image_vec, "fused": fused_vec}, check_fields(fields, DEFAULT_FIELDS["photo"]), **kw)


def photo_text_plan(query_vec, fields: Sequence[str] | None = None, **kw) -> SearchPlan:
    """A photo plus modifier words ("this dress, but white") encoded jointly as one
    product (the encoder's `fused` output): that one vector against every field asked,
    by default C.MODIFIER_FIELD (the field the shipped model trained the modifier for)."""
    return plan({"fused": query_vec}, check_fields(fields, DEFAULT_FIELDS["photo_text"]), **kw)

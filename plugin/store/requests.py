"""pymilvus objects from the query layer's plans, built at call time.

`samestyle.query.requests` builds plans as plain data (fields, query vectors, search
params, limits, filter, ranker kind and weights) so that it stays free of pymilvus;
this module, part of the store (the one owner of pymilvus), turns them into the
`AnnSearchRequest`s and ranker that `MilvusClient.hybrid_search` takes. Pure: no I/O.
"""

from __future__ import annotations

from typing import Sequence

from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

from .. import contract as C
from ..errors import InputError


def ann_request(req) -> AnnSearchRequest:
    """One `samestyle.query.requests.AnnRequest` as a pymilvus AnnSearchRequest."""
    return AnnSearchRequest(data=req.data, anns_field=req.field, param=req.params, limit=req.limit,
                            expr=req.expr or None)


def ann_requests(plan) -> list[AnnSearchRequest]:
    """The AnnSearchRequests of a SearchPlan or BatchPlan (one per field)."""
    return [ann_request(r) for r in plan.requests]


def ranker(kind: str, weights: Sequence[float]) -> WeightedRanker | RRFRanker:
    """WeightedRanker without score normalisation: with normalised weights and
    L2-normalised vectors the fused score is then the weighted mean cosine, on the
    same scale as a single-field search. RRF ignores the weights."""
    if kind == "weighted":
        return WeightedRanker(*weights, norm_score=False)
    if kind == "rrf":
        return RRFRanker(C.RRF_K)
    raise InputError(f"unknown ranker [{kind}]", field="ranker", fix=f"use one of {', '.join(C.RANKERS)}")


def hybrid_args(plan) -> tuple[list[AnnSearchRequest], WeightedRanker | RRFRanker]:
    """(requests, ranker) for `MilvusClient.hybrid_search(collection, *hybrid_args(plan), ...)`;
    `plan` is a SearchPlan or a BatchPlan (whose plans share ranker and weights)."""
    head = getattr(plan, "head", plan)
    return ann_requests(plan), ranker(head.ranker_kind, head.weights)

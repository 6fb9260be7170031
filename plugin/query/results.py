"""What a search returns: `Hit`, `SearchResult`, `BatchResult`, and the per-field
scores computed from the vectors a search returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError


@dataclass
class Hit:
    id: str
    rank: int  # 1-based, across pages
    score: float
    similarity: float
    scores: dict[str, float]
    matched: str
    entity: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    search_type: str
    hits: list[Hit]
    fields: tuple[str, ...]
    weights: dict[str, float]
    ranker: str
    profile: str
    views_used: dict[str, str]
    k: int
    offset: int
    filter: str
    took_ms: float
    query: dict = field(default_factory=dict)
    # The colour weight the query used (SearchOptions.colour or the search type's default);
    # None when the collection's model keeps no colour apart.
    colour: float | None = None

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BatchResult:
    """What `Searcher.by_products` returns: a result per product found, in request
    order, and an error per id that could not be searched."""

    results: dict[str, SearchResult] = field(default_factory=dict)
    errors: dict[str, InputError] = field(default_factory=dict)
    calls: int = 0  # Milvus search calls made
    took_ms: float = 0.0

    def to_dict(self) -> dict:
        return {"results": {k: v.to_dict() for k, v in self.results.items()},
                "errors": {k: e.to_dict() for k, e in self.errors.items()},
                "calls": self.calls, "took_ms": round(self.took_ms, 1)}


def field_scores(query: Mapping[str, Sequence[float]], entity: Mapping) -> dict[str, float]:
    """Cosine (IP of L2-normalised vectors) of each field's query vector against the
    hit's stored vector; a stored zero vector (a view the product lacks) scores 0."""
    out = {}
    for f, q in query.items():
        v = entity.get(f)
        if v is None:
            continue
        out[f] = float(np.dot(np.asarray(q, dtype=np.float32), np.asarray(v, dtype=np.float32)))
    return out

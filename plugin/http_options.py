"""The search options of the HTTP request models, generated from their one declaration:
the fields of `samestyle.query.options.SearchOptions` (default, description, JSON type,
bounds; choices are the names in samestyle.contract). The OpenAPI document shows what
is declared there, pydantic enforces it at the edge, and the options reach the searcher
as `SearchOptions.validated`, so they are not checked a second time."""

from __future__ import annotations

from dataclasses import fields as dc_fields
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, create_model

from .query.options import SearchOptions

# NaN/Infinity are valid to Python's JSON parser, never a valid option
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
OPTIONS = {f.name: f for f in dc_fields(SearchOptions) if f.metadata.get("wire") is not None}
"""The options an HTTP request may carry: every SearchOptions field with a JSON type."""
SERVER_SIDE = {f.name for f in dc_fields(SearchOptions)} - set(OPTIONS)
"""Options the server sets itself (`timeout`: the request's time limit)."""


def option_fields(names: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    """`create_model` field definitions of the named options."""
    out = {}
    for name in names:
        f = OPTIONS[name]
        m = f.metadata
        default = {"default_factory": list} if isinstance(f.default, tuple) else {"default": f.default}
        out[name] = (m["wire"], Field(**default, description=m["doc"], ge=m.get("ge"), le=m.get("le"),
                                      max_length=m.get("max_len")))
    return out


def options_model(name: str, *, omit: Iterable[str] = (), only: Iterable[str] | None = None,
                  doc: str | None = None) -> type[BaseModel]:
    """A request model holding the HTTP options (`only` those named, or all), but those in
    `omit` (the ones that mean nothing to its search type); endpoints subclass it to add
    their query fields."""
    names = [n for n in (OPTIONS if only is None else only) if n not in set(omit)]
    return create_model(name, __config__=STRICT, __doc__=doc, **option_fields(names))


def options_of(model: BaseModel, **extra) -> SearchOptions:
    """The SearchOptions of a validated request model (its option fields, plus `extra`)."""
    values = {n: getattr(model, n) for n in OPTIONS if n in type(model).model_fields}
    return SearchOptions.validated(**values, **extra)

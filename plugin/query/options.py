"""Search options, declared once: `SearchOptions` (what every search type accepts, with
each option's default, meaning, JSON type and bounds), their checks, and the error for an
unknown product. samestyle.http_options generates the HTTP request models from the same
declarations."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields as dc_fields
from typing import Any, Literal, Mapping, Sequence

from .. import contract as C
from ..errors import InputError
from . import requests as R


class ProductNotFound(InputError):
    code = "not_found"

    def __init__(self, message: str, **kw):
        kw.setdefault("fix", "check the id (ids are matched exactly), or the collection searched "
                             "(--collection / SAMESTYLE_COLLECTION); a product must be ingested first")
        super().__init__(message, **kw)


FieldName = Literal[(*C.VECTOR_FIELDS.values(), *C.VIEWS)]  # image_vec, text_vec, fused_vec, image, text, fused


def _option(default, doc: str, wire=None, **bounds):
    """A `SearchOptions` field, declared once: its default, what it means (`doc`), its
    JSON type (`wire`: the type an HTTP request gives it; None for an option the HTTP API
    does not take) and its `bounds` (ge, le, max_len, choices). `SearchOptions.check`
    enforces the bounds; samestyle.http_options generates the HTTP request models (their
    pydantic fields, hence the OpenAPI document) from the same declaration."""
    return field(default=default, metadata={"doc": doc, "wire": wire, **bounds})


@dataclass
class SearchOptions:
    """What every search type accepts (all optional). Values that depend on the
    collection (filters, group_by, fields, weights) are checked when a search is planned."""

    k: int = _option(10, "hits per page", int, ge=1, le=C.MAX_SEARCH_K)
    offset: int = _option(0, "hits to skip (pagination)", int, ge=0, le=C.MAX_SEARCH_OFFSET)
    fields: Sequence[str] | None = _option(
        None, "vector fields (or views); several = one hybrid search; default: the search type's",
        list[FieldName] | None, max_len=len(C.VECTOR_FIELDS))
    weights: Mapping[str, float] | Sequence[float] | None = _option(
        None, "one weight per field (list, in `fields` order) or field -> weight; default: category profile",
        list[float] | dict[str, float] | None)
    ranker: str = _option("weighted", "how the hits of several fields are fused: weighted (by `weights`) or rrf "
                                      "(reciprocal rank, ignores the weights)", Literal[C.RANKERS], choices=C.RANKERS)
    filters: object = _option(  # also a list of samestyle.query.filters objects (Python API)
        None, 'JSON form: {"brand": "Puma"}, {"brand": ["Puma", "Nike"]}, {"price": {"gte": 100, "lt": 999}}, '
              '{"brand": {"ne": "X"}} / {"prefix": "Pu"} / {"not_in": [...]}, values are literals; or the CLI '
              'form: ["brand=Puma", "price<=999", "brand^=Pu"]', dict[str, Any] | list[str] | None)
    group_by: str | None = _option(None, "one hit per value of this stored attribute (e.g. brand)", str | None,
                                   max_len=C.MAX_NAME_CHARS)
    floor: float | None = _option(None, "drop hits whose similarity is below this", float | None, ge=-1.0, le=1.0)
    colour: float | None = _option(
        None, "how much the query's colour counts: 0 = the same style in any colour, 1 = as the model encodes it; "
              "default per search type (photo + modifier 1, the others 0); no effect for a model that keeps no "
              "colour apart", float | None, ge=0.0, le=1.0)
    exclude: Sequence[str] = _option((), "ids never returned", list[str], max_len=C.MAX_SEARCH_K)
    exclude_self: bool = _option(True, "product search: leave the query product out of its hits", bool)
    category: str | None = _option(None, "weight profile to use (default: the product's category, or the one a "
                                         "category filter names)", str | None, max_len=C.MAX_NAME_CHARS)
    target: str = _option("text", "text search: the vector fields a phrase is searched on (its text view against "
                                  "text_vec, image_vec or fused_vec, or all three)", Literal[C.TEXT_TARGETS],
                          choices=C.TEXT_TARGETS)
    timeout: float | None = _option(None, "seconds, per Milvus call (HTTP: the server's request limit applies)")

    def check(self) -> "SearchOptions":
        """Raise an InputError naming the first option outside its declared bounds. Options
        checked before (here or by `validated`) and not changed since are not checked again,
        so a search validates its options once however many layers it passes through."""
        state = self._state()
        if self.__dict__.get("_checked") == state:
            return self
        for f in _BOUNDED:
            _check_option(f.name, getattr(self, f.name), f.metadata)
        self._checked = state
        return self

    @classmethod
    def validated(cls, **values) -> "SearchOptions":
        """Options whose values were validated against these same declarations elsewhere:
        the HTTP request models are generated from them (samestyle.http_options) and
        pydantic enforced them, so the searcher does not check them again."""
        o = cls(**values)
        o._checked = o._state()
        return o

    def _state(self) -> str:
        return repr([getattr(self, f.name) for f in _BOUNDED])  # a copy: lists can change in place


_BOUNDED = tuple(f for f in dc_fields(SearchOptions) if {"ge", "choices", "max_len"} & set(f.metadata))


def _check_option(name: str, value, meta: Mapping) -> None:
    if value is None:
        return
    ge, le = meta.get("ge"), meta.get("le")
    if ge is not None:
        kind = int if meta["wire"] is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not ge <= value <= le:
            what = "an integer" if kind is int else "a number"
            raise InputError(f"{name} is [{value}], must be {what} in {ge}..{le}", field=name)
    if "choices" in meta and value not in meta["choices"]:
        raise InputError(f"unknown {name} [{value}]", field=name, fix=f"use one of {', '.join(meta['choices'])}")
    if "max_len" in meta and len(value) > meta["max_len"]:
        raise InputError(f"{name} has {len(value)} {'characters' if isinstance(value, str) else 'items'}, over the "
                         f"limit of {meta['max_len']}", field=name)


def _opts(opts: SearchOptions | None, kw: dict) -> SearchOptions:
    """A copy of `opts` (or of the defaults) with the keyword options applied, checked:
    a copy of options checked before and not changed is not checked again."""
    names = {f.name for f in dc_fields(SearchOptions)}
    unknown = set(kw) - names
    if unknown:
        raise TypeError(f"unknown search option(s) {sorted(unknown)}; known: {sorted(names)}")
    o = copy.copy(opts) if opts is not None else SearchOptions()
    for name, value in kw.items():
        setattr(o, name, value)
    return o.check()


def _text_target(target: str | None, o: SearchOptions) -> str:
    """The target of a text search: the argument, else the options' (checked with them)."""
    target = target or o.target
    if target not in R.TEXT_TARGETS:
        raise InputError(f"unknown text target [{target}]", field="target",
                         fix=f"use one of {', '.join(R.TEXT_TARGETS)}")
    return target

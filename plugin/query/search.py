"""Same-style search, the Python API behind `samestyle search` and the HTTP API.

    searcher = Searcher(Store.open(settings), "products", encoder=encoder)
    searcher.by_product("P00012")                      # fused -> fused, minus itself
    searcher.by_text("red striped t-shirt", target="image")   # cross-modal
    searcher.by_photo(Path("dress.jpg"), fields=["image_vec"])
    searcher.by_photo_text(photo_bytes, "but white")   # one fused query, as in the paper
    searcher.hybrid(text="puma tee", photo=b"...", fields=["image_vec", "text_vec"], weights=[0.7, 0.3])

Every search takes the same options (`SearchOptions` fields as keywords): typed
filters, group-by, a similarity floor, pagination, exclusions, weights or the
category's weight profile, and returns hits with per-field scores.

Scores. `score` is Milvus's ranking score (the weighted mean cosine for one field or
the weighted ranker; a rank-based number for RRF). `scores` holds the exact cosine
of each field's query vector against the hit's stored vector, computed here from the
vectors the search returns, and `similarity` their weighted mean over the searched
fields; `matched` names the field that scored highest. The floor applies to
`similarity`, so it means the same under either ranker.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import contract as C
from ..encoders.base import Encoder, ProductInput
from ..errors import EncodeError, InputError, InputTooLarge, SchemaMismatch
from ..store import Store
from ..store import search as store_reads
from ..store.spec import index_profile, search_params
from . import filters as F
from . import requests as R
# SearchOptions, ProductNotFound and the result types live in .options and .results; importing
# them from here stays supported.
from .options import ProductNotFound, SearchOptions, _opts, _text_target  # noqa: F401
from .profiles import Profiles
from .results import BatchResult, Hit, SearchResult, field_scores  # noqa: F401

log = logging.getLogger(__name__)

CATEGORY_FIELD = C.CATEGORY_FIELD
PK = store_reads.PK
VIEW_FLAG = {C.IMAGE_VEC: "has_image", C.TEXT_VEC: "has_text"}
TIE_SLACK = 10  # extra hits fetched so that ties at a page boundary sort the same way
GROUP_OVERFETCH = 10  # candidates per hit when grouping on a dynamic attribute
GROUP_MAX_CANDIDATES = 16384  # Milvus's largest limit
MAX_BATCH = 64  # products per Milvus call in by_products
# The views of an encoded query that are searched: a phrase's text view; a photo's photo
# view and its fused view (the photo with the title masked).
QUERY_VIEWS = {"text": ("text",), "photo": ("image", "fused")}


def _stored_views(row: Mapping) -> dict:
    """A fetched product's vectors as query views. The stored flags are authoritative:
    a view the product cannot have is zero anyway, but a stale row must not make a
    missing photo look present."""
    views = {f: row.get(f) for f in R.FIELDS}
    if row.get("has_image") is False:
        views.pop(C.IMAGE_VEC)
    if row.get("has_text") is False:
        views.pop(C.TEXT_VEC)
    return views


def _read_photo(photo: bytes | str | Path) -> bytes:
    if isinstance(photo, (bytes, bytearray, memoryview)):
        data = bytes(photo)
    elif isinstance(photo, (str, Path)):
        p = Path(photo)
        if not p.is_file():
            raise InputError(f"photo [{p}] is not a file", field="photo")
        size = p.stat().st_size
        if size > C.MAX_PHOTO_BYTES:
            raise InputTooLarge(f"photo [{p}] is {size} bytes, over the limit of {C.MAX_PHOTO_BYTES}",
                                field="photo")
        data = p.read_bytes()
    else:
        raise InputError(f"photo must be bytes or a path, got [{type(photo).__name__}]", field="photo")
    if not data:
        raise InputError("photo is empty", field="photo")
    if len(data) > C.MAX_PHOTO_BYTES:
        raise InputError(f"photo is {len(data)} bytes, over the limit of {C.MAX_PHOTO_BYTES}", field="photo")
    return data


def _query_text(text, record: str | None = None) -> str:
    """A search phrase, or the InputError saying why it is none: empty, or over the title
    limit (`record`: its position in a batch)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("text is empty", field="text", record=record)
    if len(text) > C.MAX_TITLE_CHARS:
        raise InputError(f"text has {len(text)} characters, over the limit of {C.MAX_TITLE_CHARS}", field="text",
                         record=record)
    return text


class Searcher:
    """Same-style search over one collection (or alias). `encoder` is needed for text
    and photo queries only; product searches use the stored vectors."""

    def __init__(self, store: Store, collection: str = C.COLLECTION_ALIAS, encoder: Encoder | None = None,
                 profiles: Profiles | None = None, timeout: float | None = None,
                 index_params: Mapping | None = None, composite_params: Mapping | None = None,
                 use_composite: bool = True):
        # Every Milvus call goes through the Store, the one owner of pymilvus calls (its
        # error mapping and retry policy); the searcher never holds a client of its own.
        if not isinstance(store, Store):
            raise TypeError(f"Searcher takes a samestyle.store.Store (Store.open(settings)), not {type(store).__name__}")
        self.store = store
        self.collection = collection
        self.encoder = encoder
        self.profiles = profiles or Profiles.load()
        self.timeout = timeout
        self.index_params = dict(index_params or {})  # search params of the index profile (ef, ...)
        # A weighted multi-field search runs as one call on the collection's composite
        # field when it has one (samestyle.store.spec.CompositeSpec); False forces
        # hybrid_search (benchmarks compare the two).
        self.use_composite = use_composite
        self.composite_params = dict(composite_params) if composite_params is not None else None
        self._composite: str | None = None
        self._schema: F.FilterSchema | None = None
        self._scalars: list[str] | None = None
        self._model_version: str | None = None
        self._colour_dims = 0

    @classmethod
    def from_settings(cls, settings, encoder: Encoder | None = None, collection: str | None = None) -> "Searcher":
        params = search_params(settings.resolved_profile)["params"]
        comp = index_profile(settings.resolved_profile).composite
        return cls(Store.open(settings, collection), collection or settings.collection, encoder,
                   Profiles.load(settings.search_profiles),
                   index_params=params, composite_params=dict(comp.search_params) if comp else None)

    def close(self) -> None:
        self.store.close()

    # -- schema -----------------------------------------------------------------------
    def schema(self) -> F.FilterSchema:
        if self._schema is None:
            self.store.ensure_loaded(self.collection)
            desc = self.store.describe(self.collection)
            self._model_version = store_reads.model_version(desc)
            self._composite = store_reads.composite_field(desc)
            self._colour_dims = store_reads.colour_dims(desc)
            base = F.FilterSchema.from_description(desc)
            self._scalars = list(base.fields)
            fields = dict(base.fields)
            if base.dynamic:
                # Names outside the schema are checked against the attributes rows
                # actually carry, so a typo is an error rather than zero hits.
                known = [*fields, self._composite] if self._composite else list(fields)
                for k, kind in self.store.dynamic_keys(self.collection, known).items():
                    fields.setdefault(k, kind)
            self._schema = F.FilterSchema(fields, dynamic=False)
        return self._schema

    @property
    def composite(self) -> str | None:
        """The composite field weighted multi-field searches run on (None: hybrid_search)."""
        self.schema()
        return self._composite if self.use_composite else None

    def _filters(self, raw) -> list:
        schema = self.schema()
        if raw is None:
            return []
        if isinstance(raw, Mapping):
            return F.from_json(raw, schema)
        items = list(raw)
        if all(isinstance(x, str) for x in items):
            return F.parse_cli(items, schema)
        for x in items:
            if not isinstance(x, (F.Eq, F.Ne, F.In, F.Range, F.Prefix)):
                raise InputError(f"not a filter: {x!r}", field="filters")
        return items

    def check(self, opts: SearchOptions) -> None:
        """Validate options and filters against the collection without searching (the
        CLI calls this before it starts an encoder)."""
        self._collection_options(opts.check(), R.FIELDS)

    def _collection_options(self, o: SearchOptions, default_fields: Sequence[str]) -> tuple[list, tuple[str, ...]]:
        """The options that depend on the collection, checked against it: the filters
        (parsed, once a search), the vector fields (or `default_fields`) and group_by."""
        filters = self._filters(o.filters)
        fields = R.check_fields(o.fields, default_fields)
        if o.group_by is not None and o.group_by not in self.schema().fields:
            raise InputError(f"cannot group by [{o.group_by}]: no stored attribute has that name",
                             field="group_by", fix=f"use one of {', '.join(sorted(self.schema().fields))}")
        return filters, fields

    # -- group-by ---------------------------------------------------------------------
    # Milvus groups on schema fields only; an attribute of the dynamic field (any
    # catalogue column: style_group, supplier...) is grouped here, over GROUP_OVERFETCH
    # times more candidates, keeping each value's best hit.
    def _server_group(self, o: SearchOptions) -> str | None:
        return o.group_by if o.group_by in (self._scalars or ()) else None

    def _group_reserve(self, o: SearchOptions) -> int:
        if o.group_by is None or o.group_by in (self._scalars or ()):
            return 0
        want = o.offset + o.k + TIE_SLACK
        return min(GROUP_MAX_CANDIDATES - want, want * (GROUP_OVERFETCH - 1))

    def _client_group(self, o: SearchOptions, raw: list[dict]) -> list[dict]:
        if o.group_by is None or o.group_by in (self._scalars or ()):
            return raw
        seen: set = set()
        out = []
        for h in sorted(raw, key=lambda h: (-round(h["score"], 5), h["id"])):
            v = h["entity"].get(o.group_by)
            key = repr(v) if not isinstance(v, (str, int, float, bool, type(None))) else (type(v).__name__, v)
            if key not in seen:
                seen.add(key)
                out.append(h)
        return out

    # -- encoding ---------------------------------------------------------------------
    def _encode_many(self, inputs: Sequence[ProductInput]) -> list[dict[str, np.ndarray] | InputError]:
        """Views of many queries from one encoder call (batches of the encoder's
        max_batch: one Triton request per 64 queries); a query that fails to encode
        gets its error, the others their views."""
        self._check_encoder()
        enc = self.encoder.encode(inputs)
        out: list[dict[str, np.ndarray] | InputError] = []
        for i, err in enumerate(enc.errors):
            if err is not None:
                fld = {"image": "photo"}.get(err.field or "", err.field)
                out.append(InputError(f"cannot encode the query: {err.message}", field=fld, record=inputs[i].id))
            else:
                out.append({v: enc.view(v)[i] for v in C.VIEWS})
        return out

    def _check_encoder(self) -> None:
        if self.encoder is None:
            raise InputError("this search needs an encoder (text or photo query) but none was given",
                             fix="pass encoder=... (samestyle.serve.encoder_for(settings))")
        self.schema()
        if self._model_version and self.encoder.model_version != self._model_version:
            # Vectors of two models live in different spaces: comparing them returns noise.
            raise SchemaMismatch(
                f"collection [{self.collection}] holds vectors of model [{self._model_version}], the encoder "
                f"serves [{self.encoder.model_version}]",
                fix="point SAMESTYLE_TRITON_URL / SAMESTYLE_MODEL at the collection's model, or reindex")

    def _encode(self, *, photo: bytes | None = None, text: str | None = None) -> dict[str, np.ndarray]:
        self._check_encoder()
        if text is not None and len(text) > C.MAX_TITLE_CHARS:
            raise InputError(f"text has {len(text)} characters, over the limit of {C.MAX_TITLE_CHARS}", field="text")
        try:
            enc = self.encoder.encode_one(ProductInput("query", image=photo, text=text))
        except EncodeError as exc:
            fld = {"image": "photo"}.get(exc.field or "", exc.field)
            # A photo over its byte or pixel limit is told apart here, once, so callers
            # choose by class (the HTTP API: 413); the encoder says so (EncodeError.too_large).
            cls = InputTooLarge if fld == "photo" and exc.too_large else InputError
            raise cls(f"cannot encode the query: {exc.message}", field=fld) from None
        return {v: enc.view(v)[0] for v in C.VIEWS}

    # -- the search types ---------------------------------------------------------------
    def by_product(self, product_id: str, opts: SearchOptions | None = None, **kw) -> SearchResult:
        o = _opts(opts, kw)
        if not isinstance(product_id, str) or not product_id or len(product_id) > C.MAX_ID_CHARS:
            raise InputError(f"product id [{product_id!r}] is not a non-empty string of at most {C.MAX_ID_CHARS} chars",
                             field="product_id")
        self.schema()
        row = self.store.fetch(self.collection, [product_id], ["*"], timeout=o.timeout or self.timeout).get(product_id)
        if row is None:
            raise ProductNotFound(f"product [{product_id}] is not in collection [{self.collection}]",
                                  record=product_id, field="product_id")
        exclude = [*o.exclude, product_id] if o.exclude_self else list(o.exclude)
        category = o.category or row.get(CATEGORY_FIELD)
        return self._run("product", _stored_views(row), R.DEFAULT_FIELDS["product"], o, exclude, category,
                         {"product_id": product_id})

    def by_products(self, product_ids: Sequence[str], opts: SearchOptions | None = None, **kw) -> "BatchResult":
        """`by_product` for many products, with the same options and the same hits,
        in as few Milvus calls as possible: products whose searches share fields and
        weights (their category's profile) go `MAX_BATCH` to a call (with group_by, or
        RRF while excluding the product itself, one call each). On Milvus Lite a call
        costs a pass over every stored row: batched, this is 4.4x the throughput of one
        call each at 42k products, and 50 raw queries to a call are 41x cheaper each at
        1M (docs/benchmarks). An id that is malformed or not in the collection is
        reported in `errors` and never stops the others."""
        o = _opts(opts, kw)
        t0 = time.perf_counter()
        out = BatchResult()
        wanted: list[str] = []
        for pid in product_ids:
            if not isinstance(pid, str) or not pid or len(pid) > C.MAX_ID_CHARS:
                out.errors[str(pid)] = InputError(
                    f"product id [{pid!r}] is not a non-empty string of at most {C.MAX_ID_CHARS} chars",
                    record=str(pid), field="product_id")
            elif pid not in wanted:
                wanted.append(pid)
        if o.group_by is not None or (o.ranker == "rrf" and o.exclude_self):
            # One call each: grouping would fold the query product into its own group, and
            # RRF scores by rank, which the query product (first in every list) would shift.
            for pid in wanted:
                try:
                    out.results[pid] = self.by_product(pid, o)
                except ProductNotFound as exc:
                    out.errors[pid] = exc
                out.calls += 1
            out.took_ms = (time.perf_counter() - t0) * 1000
            return out
        self.schema()
        rows: dict[str, dict] = {}
        for i in range(0, len(wanted), MAX_BATCH):
            rows.update(self.store.fetch(self.collection, wanted[i:i + MAX_BATCH], ["*"],
                                         timeout=o.timeout or self.timeout))
        groups: dict[tuple, list[tuple[str, R.SearchPlan, str, dict, dict]]] = {}
        for pid in wanted:
            row = rows.get(pid)
            if row is None:
                out.errors[pid] = ProductNotFound(f"product [{pid}] is not in collection [{self.collection}]",
                                                  record=pid, field="product_id")
                continue
            views = self._coloured("product", _stored_views(row), o)
            # Self-exclusion cannot sit in a filter shared by the batch: one more hit is
            # fetched instead and the product dropped from its own list.
            plan, profile_name = self._plan(views, R.DEFAULT_FIELDS["product"], o, list(o.exclude),
                                            o.category or row.get(CATEGORY_FIELD), extra_hits=int(o.exclude_self))
            groups.setdefault(R.batch_key(plan), []).append((pid, plan, profile_name, views, {"product_id": pid}))
        self._search_groups("product", groups, o, out, drop_self=o.exclude_self)
        out.results = {pid: out.results[pid] for pid in wanted if pid in out.results}  # request order
        out.took_ms = (time.perf_counter() - t0) * 1000
        log.info("batch product search: %d products, %d errors, %d calls in %.1f ms", len(out.results),
                 len(out.errors), out.calls, out.took_ms)
        return out

    def by_texts(self, texts: Sequence[str], target: str | None = None, opts: SearchOptions | None = None,
                 **kw) -> "BatchResult":
        """`by_text` for many phrases: encoded together (one Triton request per 64) and
        searched in as few Milvus calls as their plans allow (`MAX_BATCH` to a call),
        each with the hits `by_text` gives it. Results and errors are keyed by the
        phrase's position ("0", "1", ...); a phrase that fails never stops the others."""
        o = _opts(opts, kw)
        target = _text_target(target, o)

        def parse(i: int, text) -> tuple[ProductInput, dict]:
            return ProductInput(str(i), text=_query_text(text, str(i))), {"text": text, "target": target}

        return self._search_many("text", texts, parse, R.TEXT_TARGETS[target], o)

    def by_photos(self, photos: Sequence[bytes | str | Path], opts: SearchOptions | None = None,
                  **kw) -> "BatchResult":
        """`by_photo` for many photos (bytes or paths), encoded together and searched in
        as few Milvus calls as their plans allow; keyed by position like `by_texts`."""
        return self._search_many("photo", photos, lambda i, photo: (ProductInput(str(i), image=_read_photo(photo)),
                                                                    {"photo": True}),
                                 R.DEFAULT_FIELDS["photo"], _opts(opts, kw))

    def _search_many(self, kind: str, items: Sequence, parse: Callable[[int, Any], tuple[ProductInput, dict]],
                     default_fields: Sequence[str], o: SearchOptions) -> "BatchResult":
        """The batch searches of one `kind` ("text", "photo"): each item made into an
        encoder input and its query echo by `parse(position, item)` (an InputError is that
        item's error), the good ones encoded together, the views QUERY_VIEWS[kind] of each
        searched with `_run_many`; results and errors keyed by position."""
        t0 = time.perf_counter()
        out = BatchResult()
        good: list[tuple[ProductInput, dict]] = []
        for i, item in enumerate(items):
            try:
                good.append(parse(i, item))
            except InputError as exc:
                exc.record = str(i)
                out.errors[str(i)] = exc
        views = self._encode_many([p for p, _ in good]) if good else []
        queries = []
        for (p, query), v in zip(good, views):
            if isinstance(v, InputError):
                out.errors[p.id] = v
            else:
                queries.append((p.id, {name: v[name] for name in QUERY_VIEWS[kind]}, query))
        self._run_many(kind, queries, default_fields, o, out)
        return self._finish(out, len(items), t0)

    def _run_many(self, kind: str, queries: Sequence[tuple[str, Mapping, dict]], default_fields: Sequence[str],
                  o: SearchOptions, out: "BatchResult") -> None:
        """Search encoded queries (key, views, query echo) sharing options: plans with
        one batch_key go MAX_BATCH to a Milvus call; with group_by, one call each."""
        groups: dict[tuple, list[tuple[str, R.SearchPlan, str, Mapping, dict]]] = {}
        for key, views, query in queries:
            views = self._coloured(kind, views, o)
            try:
                plan, profile_name = self._plan(views, default_fields, o, list(o.exclude), o.category)
            except InputError as exc:
                out.errors[key] = exc
                continue
            if o.group_by is not None:
                t1 = time.perf_counter()
                raw = self.store.search(self.collection, plan, offset=0, group_by=self._server_group(o),
                                        output_fields=["*"], timeout=o.timeout or self.timeout)
                out.calls += 1
                out.results[key] = self._result(kind, plan, profile_name, self._client_group(o, raw), views, o,
                                                query, t1)
                continue
            groups.setdefault(R.batch_key(plan), []).append((key, plan, profile_name, views, query))
        self._search_groups(kind, groups, o, out)

    def _search_groups(self, kind: str, groups: dict, o, out: "BatchResult", drop_self: bool = False) -> None:
        """One Milvus call per MAX_BATCH plans that share a batch key; each member is
        (key, plan, profile name, views, query). With drop_self, a member's key (its
        product id) is dropped from its own hits."""
        for members in groups.values():
            for i in range(0, len(members), MAX_BATCH):
                chunk = members[i:i + MAX_BATCH]
                t1 = time.perf_counter()
                raws = self.store.search_batch(self.collection, R.batch([m[1] for m in chunk]),
                                               output_fields=["*"], timeout=o.timeout or self.timeout)
                out.calls += 1
                for (key, plan, profile_name, views, query), raw in zip(chunk, raws):
                    out.results[key] = self._result(kind, plan, profile_name, raw, views, o, query, t1,
                                                    drop=key if drop_self else None)

    @staticmethod
    def _finish(out: "BatchResult", n: int, t0: float) -> "BatchResult":
        out.results = {str(i): out.results[str(i)] for i in range(n) if str(i) in out.results}  # request order
        out.errors = {str(i): out.errors[str(i)] for i in range(n) if str(i) in out.errors}
        out.took_ms = (time.perf_counter() - t0) * 1000
        log.info("batch search: %d queries, %d errors, %d calls in %.1f ms", len(out.results), len(out.errors),
                 out.calls, out.took_ms)
        return out

    def by_text(self, text: str, target: str | None = None, opts: SearchOptions | None = None, **kw) -> SearchResult:
        o = _opts(opts, kw)
        target = _text_target(target, o)
        views = self._encode(text=_query_text(text))
        # Only the text view is the query; dropping the rest keeps every field on it.
        return self._run("text", {v: views[v] for v in QUERY_VIEWS["text"]}, R.TEXT_TARGETS[target], o,
                         list(o.exclude), o.category, {"text": text, "target": target})

    def by_photo(self, photo: bytes | str | Path, opts: SearchOptions | None = None, **kw) -> SearchResult:
        o = _opts(opts, kw)
        views = self._encode(photo=_read_photo(photo))
        return self._run("photo", {v: views[v] for v in QUERY_VIEWS["photo"]}, R.DEFAULT_FIELDS["photo"], o,
                         list(o.exclude), o.category, {"photo": True})

    def by_photo_text(self, photo: bytes | str | Path, modifier: str, opts: SearchOptions | None = None,
                      **kw) -> SearchResult:
        o = _opts(opts, kw)
        if not isinstance(modifier, str) or not modifier.strip():
            raise InputError("modifier text is empty", field="modifier")
        views = self._encode(photo=_read_photo(photo), text=modifier)
        # one query vector, the joint encoding, whichever fields are searched
        return self._run("photo_text", {"fused": views["fused"]},
                         R.DEFAULT_FIELDS["photo_text"], o, list(o.exclude), o.category,
                         {"photo": True, "modifier": modifier})

    def hybrid(self, *, text: str | None = None, photo: bytes | str | Path | None = None,
               product_id: str | None = None, opts: SearchOptions | None = None, **kw) -> SearchResult:
        """Any set of fields as one hybrid search, for a product, or for a text and/or
        a photo encoded together (all three views of that query are used)."""
        o = _opts(opts, kw)
        if product_id is not None:
            if text is not None or photo is not None:
                raise InputError("give a product id, or a text and/or a photo, not both", field="query")
            o.fields = o.fields or R.FIELDS
            o.colour = o.colour if o.colour is not None else R.DEFAULT_COLOUR["hybrid"]
            res = self.by_product(product_id, o)
            res.search_type = "hybrid"
            return res
        if text is None and photo is None:
            raise InputError("a hybrid search needs a text, a photo or a product id", field="query")
        views = self._encode(photo=_read_photo(photo) if photo is not None else None, text=text)
        return self._run("hybrid", views, R.DEFAULT_FIELDS["hybrid"], o, list(o.exclude), o.category,
                         {"text": text, "photo": photo is not None})

    # -- the common path ------------------------------------------------------------------
    def _run(self, kind: str, views: Mapping, default_fields: Sequence[str], o: SearchOptions,
             exclude: Sequence[str], category: str | None, query: dict) -> SearchResult:
        t0 = time.perf_counter()
        views = self._coloured(kind, views, o)
        plan, profile_name = self._plan(views, default_fields, o, exclude, category)
        # "*" brings the vectors (for per-field scores) and any dynamic attributes.
        raw = self.store.search(self.collection, plan, offset=0, group_by=self._server_group(o),
                                output_fields=["*"], timeout=o.timeout or self.timeout)
        return self._result(kind, plan, profile_name, self._client_group(o, raw), views, o, query, t0)

    def _colour_weight(self, kind: str, o: SearchOptions) -> float | None:
        """How much the query's colour counts: the request's `colour`, else the search
        type's default (R.DEFAULT_COLOUR); None when the collection keeps no colour apart."""
        if not self._colour_dims:
            return None
        return float(o.colour if o.colour is not None else R.DEFAULT_COLOUR[kind])

    def _coloured(self, kind: str, views: Mapping, o: SearchOptions) -> Mapping:
        """The query views with their colour part scaled by `_colour_weight` (R.with_colour),
        the same views for the search and for the per-field scores of its hits, so what
        is ranked and what is shown agree. Unchanged for a collection without colour apart."""
        self.schema()
        weight = self._colour_weight(kind, o)
        if weight is None:
            return views
        return {name: None if v is None else R.with_colour(np.asarray(v, dtype=np.float32), self._colour_dims, weight)
                for name, v in views.items()}

    def _plan(self, views: Mapping, default_fields: Sequence[str], o: SearchOptions, exclude: Sequence[str],
              category: str | None, extra_hits: int = 0) -> tuple[R.SearchPlan, str]:
        schema = self.schema()
        filters, fields = self._collection_options(o, default_fields)  # `o` itself was checked by _opts
        if category is None:
            category = F.category_of(filters, CATEGORY_FIELD)
        profile_name, profile = self.profiles.for_category(category)
        extra = [F.exclude_ids(exclude, PK)]
        if len(fields) == 1 and fields[0] in VIEW_FLAG and VIEW_FLAG[fields[0]] in (self._scalars or ()):
            # A product without that view stores a zero vector: it scores 0 and would only
            # take a slot from a real match. (In a hybrid search its other views count.)
            extra.append(f"({VIEW_FLAG[fields[0]]} == true)")
        expr = F.to_expr(filters, schema, extra=extra)
        # Milvus orders equal scores arbitrarily (segments, partitions), so one hit could
        # land on two pages. Pages are therefore cut here from one stable order (score,
        # then id) over offset + k + TIE_SLACK hits, not with Milvus's own offset.
        plan = R.plan(views, fields, k=o.offset + o.k + TIE_SLACK, offset=0, expr=expr, weights=o.weights,
                      profile=profile, ranker=o.ranker, params=self.index_params,
                      reserve=extra_hits + self._group_reserve(o),
                      composite=self._composite if self.use_composite else None,
                      composite_params=self.composite_params)
        return plan, profile_name

    def _result(self, kind: str, plan: R.SearchPlan, profile_name: str, raw: list[dict], views: Mapping,
                o: SearchOptions, query: dict, t0: float, drop: str | None = None) -> SearchResult:
        if drop is not None:
            raw = [h for h in raw if h["id"] != drop]
        raw.sort(key=lambda h: (-round(h["score"], 5), h["id"]))
        raw = raw[o.offset:o.offset + o.k]
        # Per-field scores for all three fields, each against the query view it would use.
        all_q, _ = R.query_vectors(views, R.FIELDS)
        w = dict(zip(plan.fields, plan.weights))
        hits = []
        for i, h in enumerate(raw):
            ent = h["entity"]
            scores = field_scores(all_q, ent)
            for f in (*R.FIELDS, self._composite):
                ent.pop(f, None)
            sim = float(sum(w[f] * scores.get(f, 0.0) for f in plan.fields))
            if o.floor is not None and sim < o.floor:
                continue
            matched = max(plan.fields, key=lambda f: scores.get(f, -2.0))
            hits.append(Hit(h["id"], o.offset + i + 1, h["score"], sim, scores, matched, ent))
        took = (time.perf_counter() - t0) * 1000
        log.info("%s search: %d hits in %.1f ms (fields=%s, profile=%s)", kind, len(hits), took, plan.fields,
                 profile_name)
        return SearchResult(kind, hits, plan.fields, w, o.ranker, profile_name if len(plan.fields) > 1 else "-",
                            plan.views_used, o.k, o.offset, plan.expr, took, query, self._colour_weight(kind, o))

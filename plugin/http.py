"""The HTTP API: JSON endpoints for the same searches as `samestyle search`.

`create_app(settings)` returns a FastAPI app; `samestyle serve` runs it with uvicorn.
The OpenAPI spec is at /openapi.json (interactive docs at /docs).

    POST /v1/search/product  {"id": "15970", "k": 10, ...options}
    POST /v1/search/text     {"text": "red polo", "target": "all", ...options}
    POST /v1/search/photo    JSON {"image_b64": "...", "modifier": "but white", ...options}
                             or multipart: file `photo`, fields `modifier`, `options` (JSON)
    POST /v1/search/hybrid   {"text": ..., "image_b64": ..., "product_id": ..., "fields": [...], ...}
    GET  /healthz            the process answers
    GET  /readyz             Milvus reachable and the collection loaded (503 otherwise)

Every error is {"error": {"code", "message", "field"?, "fix"?}} with a 4xx status
when the request was at fault (400 bad input, 404 unknown product, 413 photo too
large, 422 malformed body), 503/502 when Milvus or Triton failed, 504 on timeout.

A Triton outage fails only the searches that need an encoder (text, photo, hybrid with
either), and fast: 503 with Retry-After and a message naming Triton, after at most
ENCODER_RETRY_S of retries (well inside the request's time limit), then at once for
ENCODER_COOLDOWN_S; searches by product need no encoder and keep answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
import typing
from contextlib import asynccontextmanager
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from . import contract as C
from . import serve
from .config import Settings
from .errors import (EncodeError, InputError, InputTooLarge, SamestyleError, SchemaMismatch, ServerUnavailable,
                     StoreError)
from .health import readiness
from .http_guard import (MAX_BODY_BYTES, ERROR_RESPONSES, BodyLimit, install_error_handlers, photo_b64,
                         read_json, safe, secure, validate)
from .http_guard import error as _guard_error
from .http_lifecycle import mount as mount_lifecycle
from .http_options import options_model, options_of
from .query.search import Hit, ProductNotFound, Searcher, SearchResult
from .store import CollectionNotFound
from .web import mount as mount_web

log = logging.getLogger(__name__)

# How long a request waits for an unavailable Triton (capped at a third of the request's
# time limit), and how long after that requests needing it fail at once (Retry-After).
ENCODER_RETRY_S = 3.0
ENCODER_COOLDOWN_S = 5.0
RETRY_AFTER_S = 5


Options = options_model("Options", omit=("exclude_self", "target"), doc="Options every search accepts.")


class ProductQuery(options_model("ProductOptions", omit=("target",))):
    id: str = Field(..., min_length=1, max_length=C.MAX_ID_CHARS, description="stored product id")


class ProductsQuery(options_model("ProductsOptions", omit=("target",))):
    ids: list[str] = Field(..., min_length=1, max_length=C.MAX_BATCH_IDS,
                           description="stored product ids; searched together in as few Milvus calls as possible")


class TextsQuery(options_model("TextsOptions", omit=("exclude_self",))):
    texts: list[str] = Field(..., min_length=1, max_length=C.MAX_BATCH_IDS,
                             description="phrases; encoded together and searched in as few Milvus calls as possible")


class PhotosQuery(Options):
    images_b64: list[str] = Field(..., min_length=1, max_length=C.MAX_BATCH,
                                  description="photos, base64; the whole body obeys the one-photo size limit")


class TextQuery(options_model("TextOptions", omit=("exclude_self",))):
    text: str = Field(..., min_length=1, max_length=C.MAX_TITLE_CHARS)


class PhotoQuery(Options):
    image_b64: str = Field(..., min_length=1, description="the photo, base64 (a data: URI prefix is accepted)")
    modifier: str | None = Field(None, max_length=C.MAX_TITLE_CHARS, description='words changing it ("but white")')


class HybridQuery(Options):
    product_id: str | None = Field(None, max_length=C.MAX_ID_CHARS)
    text: str | None = Field(None, max_length=C.MAX_TITLE_CHARS)
    image_b64: str | None = None


def _response_model(name: str, dc, docs: Mapping[str, str], types: Mapping[str, Any] = {}) -> type[BaseModel]:
    """The response model of the query layer's result dataclass `dc`: its fields (the one
    source of the schema), each required, typed from its annotations unless `types` says
    otherwise (a nested result's own model); `docs` describes some of them."""
    hints = typing.get_type_hints(dc)
    return create_model(name, **{f.name: (types.get(f.name, hints[f.name]), Field(description=docs.get(f.name)))
                                 for f in dataclasses.fields(dc)})


HitOut = _response_model("HitOut", Hit, {
    "score": "Milvus ranking score",
    "similarity": "weighted mean cosine over the searched fields",
    "scores": "cosine per vector field (which view matched)"})
SearchOut = _response_model("SearchOut", SearchResult, {
    "colour": "how much the query's colour counted (the `colour` option, or the search type's default); "
              "null when the collection's model keeps no colour apart"}, {"hits": list[HitOut]})


class ErrorOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class BatchOut(BaseModel):
    results: dict[str, SearchOut] = Field(description="one result per product found, in request order")
    errors: dict[str, ErrorOut] = Field(description="ids (or batch positions) that could not be searched")
    calls: int = Field(description="Milvus search calls made")
    took_ms: float


def _status(exc: SamestyleError) -> int:
    if isinstance(exc, ProductNotFound):
        return 404
    if isinstance(exc, InputError):
        return 413 if isinstance(exc, InputTooLarge) else 400
    if isinstance(exc, (ServerUnavailable, CollectionNotFound, SchemaMismatch)):
        return 503
    return 502 if isinstance(exc, (StoreError, EncodeError)) else 500


def _error(status: int, code: str, message: str, **extra) -> JSONResponse:
    return _guard_error(status, code, message, **extra)


class _Backend:
    """The searcher and encoder, created on first use (Milvus may start after the app).

    The encoder (a Triton client) is made to give up on an unavailable Triton within
    ENCODER_RETRY_S (the TritonEncoder default, 120 s, suits ingest, not a request with a
    10 s limit) and to fail at once for ENCODER_COOLDOWN_S after that; a Triton that
    cannot be reached when the encoder is first needed is remembered the same way."""

    def __init__(self, settings: Settings, searcher=None, timeout: float | None = None):
        self.settings = settings
        self.timeout = timeout
        self.searcher = searcher
        self.owned = searcher is None
        self.lock = threading.Lock()
        self.retry_s = min(ENCODER_RETRY_S, (timeout or C.SEARCH_TIMEOUT_S) / 3)
        self._encoder_down: tuple[float, ServerUnavailable] | None = None  # (until, error)

    @property
    def collection(self) -> str:
        return self.searcher.collection if self.searcher is not None else self.settings.collection

    def get(self, need_encoder: bool):
        s = self.searcher
        if s is not None and (not need_encoder or s.encoder is not None):
            return s  # never waits behind a request that is connecting to Triton
        with self.lock:
            if self.searcher is None:
                self.searcher = Searcher.from_settings(self.settings)
                self.searcher.timeout = self.timeout  # Milvus calls give up with the request
            if need_encoder and self.searcher.encoder is None:
                self.searcher.encoder = self._encoder()
            return self.searcher

    def _encoder(self):
        if self._encoder_down is not None and time.monotonic() < self._encoder_down[0]:
            e = self._encoder_down[1]
            raise ServerUnavailable(e.message, fix=e.fix, **e.data)
        try:
            enc = serve.encoder_for(self.settings, retry_s=self.retry_s, cooldown_s=ENCODER_COOLDOWN_S)
        except ServerUnavailable as exc:
            self._encoder_down = (time.monotonic() + ENCODER_COOLDOWN_S, exc)
            raise
        self._encoder_down = None
        return enc

    def close(self):
        if self.owned and self.searcher is not None:
            if self.searcher.encoder is not None:
                self.searcher.encoder.close()
            self.searcher.close()


def create_app(settings: Settings, *, searcher=None, timeout: float | None = None) -> FastAPI:
    """The API over `settings` (Milvus at SAMESTYLE_MILVUS_URI, encoder from
    samestyle.serve.encoder_for). Tests and embedders may pass a ready `searcher`."""
    limit_s = timeout or C.SEARCH_TIMEOUT_S
    backend = _Backend(settings, searcher, limit_s)

    @asynccontextmanager
    async def lifespan(app):
        yield
        backend.close()

    app = FastAPI(title="samestyle", version="1", lifespan=lifespan, responses=ERROR_RESPONSES, docs_url=None,  # /docs: web.mount, offline
                  description="Same-style product search over Milvus: by product, text, photo, photo + modifier.")

    install_error_handlers(app)  # 404/405, deep JSON, last-resort 500: all in the error shape
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # chunked bodies too, and JSON depth
    secure(app)  # SAMESTYLE_API_KEY, SAMESTYLE_CORS_ORIGINS

    @app.exception_handler(SamestyleError)
    async def _samestyle(request, exc: SamestyleError):
        status = _status(exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return JSONResponse(safe({"error": exc.to_dict()}), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        if first.get("type") == "json_invalid":  # its loc is a character position, not a field
            loc = ""
        detail = [{k: v for k, v in e.items() if k not in ("input", "url")} for e in errs[:20]]  # no echo of megabytes
        return _error(422, "invalid_request", f"{loc or 'body'}: {first.get('msg', 'invalid request')}",
                      field=loc or None, detail=detail)

    async def run(fn, *args, need_encoder: bool = False):
        def call():
            return fn(backend.get(need_encoder), *args).to_dict()

        try:
            return await asyncio.wait_for(asyncio.to_thread(call), limit_s)
        except asyncio.TimeoutError:
            return _error(504, "timeout", f"the search took longer than {limit_s:g} s",
                          fix="retry, narrow the filters, or lower k")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        # Milvus, the collection's load state, Triton: each named
        r = await readiness(lambda: backend.get(False).store, backend.collection, backend.settings.triton_url)
        if r["ready"]:
            return {"status": "ready", "collection": backend.collection, "checks": r["checks"]}
        why = "; ".join(f"{k}: {r['checks'][k].get('error', 'failed')}" for k in r["failed"] or ["collection"])
        return _error(503, "not_ready", f"not ready ({why})", headers={"Retry-After": str(RETRY_AFTER_S)},
                      failed=r["failed"] or ["collection"], checks=r["checks"])

    @app.post("/v1/search/product", response_model=SearchOut)
    async def search_product(q: ProductQuery):
        return await run(lambda s: s.by_product(q.id, options_of(q)))

    @app.post("/v1/search/products", response_model=BatchOut)
    async def search_products(q: ProductsQuery):
        """Same-style search for many stored products at once; an id that fails is
        reported under `errors` and never fails the request."""
        return await run(lambda s: s.by_products(q.ids, options_of(q)))

    @app.post("/v1/search/texts", response_model=BatchOut)
    async def search_texts(q: TextsQuery):
        """Many phrases at once (one encoder batch, few Milvus calls); results and
        errors keyed by position ("0", "1", ...); one that fails never fails the rest."""
        return await run(lambda s: s.by_texts(q.texts, q.target, options_of(q)), need_encoder=True)

    @app.post("/v1/search/photos", response_model=BatchOut)
    async def search_photos(q: PhotosQuery):
        """Many photos at once, like /v1/search/texts; a photo that is not valid base64
        is reported under its position."""
        photos: list = []
        bad: dict = {}
        for i, b in enumerate(q.images_b64):
            try:
                photos.append(photo_b64(b))
            except InputError as exc:
                photos.append(b"")  # keeps positions; reported below instead of "photo is empty"
                bad[str(i)] = exc

        def search(s):
            res = s.by_photos(photos, options_of(q))
            res.errors.update(bad)
            res.errors = {k: res.errors[k] for k in sorted(res.errors, key=int)}
            return res

        return await run(search, need_encoder=True)

    @app.post("/v1/search/text", response_model=SearchOut)
    async def search_text(q: TextQuery):
        return await run(lambda s: s.by_text(q.text, q.target, options_of(q)), need_encoder=True)

    photo_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": PhotoQuery.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "required": ["photo"], "properties": {
            "photo": {"type": "string", "format": "binary"},
            "modifier": {"type": "string"},
            "options": {"type": "string", "description": "JSON object of search options (k, filters, ...)"}}}},
    }}}

    @app.post("/v1/search/photo", response_model=SearchOut, openapi_extra=photo_body)
    async def search_photo(request: Request):
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            q, photo = await _multipart(request)
        elif ctype.startswith("application/json"):
            q = validate(PhotoQuery, await read_json(request))
            photo = photo_b64(q.image_b64)
        else:
            return _error(415, "unsupported_media_type", f"content type [{ctype}] is not supported",
                          fix="send application/json with image_b64, or multipart/form-data with a `photo` file")
        if q.modifier:
            return await run(lambda s: s.by_photo_text(photo, q.modifier, options_of(q)), need_encoder=True)
        return await run(lambda s: s.by_photo(photo, options_of(q)), need_encoder=True)

    @app.post("/v1/search/hybrid", response_model=SearchOut)
    async def search_hybrid(q: HybridQuery):
        photo = photo_b64(q.image_b64) if q.image_b64 else None
        need = q.text is not None or photo is not None
        return await run(lambda s: s.hybrid(text=q.text, photo=photo, product_id=q.product_id, opts=options_of(q)),
                         need_encoder=need)

    mount_web(app, settings, backend, limit_s)  # the search page at /, thumbnails, facets, dedup, offline /docs
    mount_lifecycle(app, settings, backend, limit_s)  # /v1/search, /v1/products, /v1/collections
    return app


async def _multipart(request: Request):
    form = await request.form(max_files=1, max_fields=8, max_part_size=C.MAX_PHOTO_BYTES + 1)
    upload = form.get("photo")
    if upload is None or isinstance(upload, str):
        raise InputError("multipart request has no `photo` file", field="photo",
                         fix="send the photo as a file part named `photo`")
    data = await upload.read(C.MAX_PHOTO_BYTES + 1)
    if len(data) > C.MAX_PHOTO_BYTES:
        raise InputTooLarge(f"photo is over the limit of {C.MAX_PHOTO_BYTES} bytes", field="photo")
    raw_opts = form.get("options") or "{}"
    try:
        opts = json.loads(raw_opts)
    except json.JSONDecodeError as exc:
        raise InputError(f"`options` is not valid JSON ({exc})", field="options") from None
    if not isinstance(opts, dict):
        raise InputError("`options` must be a JSON object", field="options")
    modifier = form.get("modifier")
    q = validate(PhotoQuery, {**opts, "image_b64": "x", "modifier": modifier or opts.get("modifier")})
    return q, data

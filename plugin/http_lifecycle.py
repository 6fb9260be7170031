"""HTTP endpoints beyond the typed searches of samestyle.http: the product lifecycle
and one search endpoint in the CLI's own vocabulary. Mounted by http.create_app.

    POST   /v1/search              {"type": "product"|"products"|"text"|"photo"|"hybrid", ...,
                                    "options": {k, filters (JSON form or ["brand=Puma", "price<=999"]), ...},
                                    "collection": optional}; what `samestyle search` sends to a running
                                    `samestyle serve` and samestyle.connect(url=...) uses
    POST   /v1/products            upsert: {"products": [{"id", "title", "image" (http(s) URL or data: URI),
                                    "category", attributes...}], "collection"?} or multipart (`products` JSON
                                    + photo files named by each record's "image": "upload:<part name>"),
                                    "force"?, "allow_blanking"? (an empty title/photo clears the stored one)
    GET    /v1/products/{id}       one stored product (404 when absent)
    POST   /v1/products/get        {"ids": [...], "vectors": false} -> {"products": {id: row}, "missing": [...]}
    DELETE /v1/products/{id}       delete one (404 when absent)
    POST   /v1/products/delete     {"ids": [...]} -> {"deleted": [...], "missing": [...]}
    GET    /v1/collections         every collection: version, aliases, rows, model version
    (POST /v1/dedup, near-duplicate clusters, is mounted by samestyle.web)

Same limits and error shape as the search endpoints: {"error": {"code", "message", ...}},
400 bad input, 404 unknown product or a `collection` named in the request that does not
exist (the server's own collection missing is 503: not ready), 413 too large, 422
malformed body, 503/502 Milvus or Triton, 504 time limit. An upsert answers 200 with per-record rejections (the same
`kind`s as ingest's dead-letter file); it fails as a whole only when nothing can be
stored (collection missing, Milvus or Triton down)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from . import contract as C
from . import products as P
from .errors import InputError
from .http_guard import error as _error
from .http_guard import photo_b64, read_json, safe, validate
from .http_options import options_model, options_of
from .query.search import Searcher
from .store import CollectionNotFound

MAX_UPSERT_RECORDS = 256


SearchOptionsIn = options_model("SearchOptionsIn", omit=("target",), doc="The search options (`target`: beside them).")


class SearchIn(options_model("SearchTarget", only=("target",))):  # `target` beside the options, as in the CLI
    """One search of any type, in the CLI's vocabulary."""

    type: Literal["product", "products", "text", "photo", "hybrid"]
    id: str | None = Field(None, min_length=1, max_length=C.MAX_ID_CHARS, description="type product")
    ids: list[str] | None = Field(None, min_length=1, max_length=C.MAX_BATCH_IDS, description="type products")
    text: str | None = Field(None, max_length=C.MAX_TITLE_CHARS, description="type text or hybrid")
    image_b64: str | None = Field(None, description="type photo or hybrid: the photo, base64")
    modifier: str | None = Field(None, max_length=C.MAX_TITLE_CHARS, description="type photo: words changing it")
    product_id: str | None = Field(None, max_length=C.MAX_ID_CHARS, description="type hybrid")
    collection: str | None = Field(None, max_length=255, description="collection or alias (default: the server's)")
    options: SearchOptionsIn = Field(default_factory=SearchOptionsIn)


class UpsertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    products: list[dict[str, Any]] = Field(..., min_length=1, max_length=MAX_UPSERT_RECORDS)
    collection: str | None = Field(None, max_length=255)
    force: bool = Field(False, description="re-encode and write even products whose content is unchanged")
    allow_blanking: bool = Field(False, description="let a product with an empty title or no photo clear the title or "
                                                    "photo (and its vectors) of the stored product with its id "
                                                    "(default: such a product is rejected, kind would_blank, and "
                                                    "the stored one kept)")


class IdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(..., min_length=1, max_length=C.MAX_BATCH_IDS)
    collection: str | None = Field(None, max_length=255)
    vectors: bool = False


def _searcher_for(base, collection: str | None):
    """The app's Searcher, or one over the same store for another collection."""
    if not collection or collection == base.collection:
        return base
    return Searcher(base.store, collection, base.encoder, base.profiles, index_params=base.index_params,
                    composite_params=base.composite_params)


def run_search(searcher, q: SearchIn) -> dict:
    """Execute a SearchIn with a Searcher (pure dispatch; the CLI's direct path does the same)."""
    opts = options_of(q.options, target=q.target)
    s = _searcher_for(searcher, q.collection)
    need = {"product": ("id",), "products": ("ids",), "text": ("text",), "photo": ("image_b64",)}.get(q.type, ())
    for name in need:
        if getattr(q, name) in (None, "", []):
            raise InputError(f"a {q.type} search needs `{name}`", field=name)
    if q.type == "product":
        return s.by_product(q.id, opts).to_dict()
    if q.type == "products":
        s.check(opts)
        return s.by_products(q.ids, opts).to_dict()
    if q.type == "text":
        return s.by_text(q.text, q.target, opts).to_dict()
    if q.type == "photo":
        photo = photo_b64(q.image_b64)
        if q.modifier:
            return s.by_photo_text(photo, q.modifier, opts).to_dict()
        return s.by_photo(photo, opts).to_dict()
    photo = photo_b64(q.image_b64) if q.image_b64 else None
    return s.hybrid(text=q.text, photo=photo, product_id=q.product_id, opts=opts).to_dict()


def mount(app: FastAPI, settings, backend, limit_s: float) -> None:
    """Add the lifecycle endpoints to `app`; `backend.get(need_encoder)` gives the
    app's Searcher (http._Backend)."""
    async def call(fn, what: str, limit: float | None = None, collection: str | None = None):
        """`collection`: the one the request named, if any (a missing one is the
        caller's 404; the server's own collection missing is a 503, not ready)."""
        limit = limit or limit_s
        try:
            out = await asyncio.wait_for(asyncio.to_thread(fn), limit)
        except asyncio.TimeoutError:
            return _error(504, "timeout", f"{what} took longer than {limit:g} s",
                          fix="retry, or send fewer products per call")
        except CollectionNotFound as exc:
            if not collection or collection == settings.collection:
                raise
            return _error(404, exc.code, f"collection [{collection}] does not exist", field="collection",
                          fix="GET /v1/collections lists them; leave `collection` out for the server's own")
        return JSONResponse(safe(out))

    @app.post("/v1/search", tags=["search"])
    async def search_any(q: SearchIn):
        """Any search type in one endpoint, with the CLI's option names (filters as
        `k=v` strings or the JSON form); the answer is the typed endpoints' answer."""
        need = q.type == "text" or q.type == "photo" or (q.type == "hybrid" and (q.text or q.image_b64))
        return await call(lambda: run_search(backend.get(bool(need)), q), "the search", collection=q.collection)

    @app.get("/v1/collections", tags=["lifecycle"])
    async def list_collections():
        """Every collection: name, version, aliases, row count, model version, state."""
        return await call(lambda: {"collections": P.collections(store=backend.get(False).store,
                                                                 settings=settings),
                                   "alias": settings.collection}, "listing collections")

    @app.get("/v1/products/{product_id}", tags=["lifecycle"])
    async def get_product(product_id: str, collection: str | None = None, vectors: bool = False):
        """One stored product: its fields and attributes (and vectors with ?vectors=true)."""
        def make():
            rows = P.get([product_id], store=backend.get(False).store, settings=settings,
                         collection=collection, vectors=vectors)
            return rows.get(product_id)

        res = await call(make, "reading the product", collection=collection)
        if res.body == b"null":
            return _error(404, "product_not_found", f"product [{product_id}] is not in the collection",
                          field="id", fix="check the id (ids are case-sensitive)")
        return res

    @app.post("/v1/products/get", tags=["lifecycle"])
    async def get_products(q: IdsIn):
        def make():
            rows = P.get(q.ids, store=backend.get(False).store, settings=settings, collection=q.collection,
                         vectors=q.vectors)
            return {"products": rows, "missing": [i for i in dict.fromkeys(q.ids) if i not in rows]}

        return await call(make, "reading the products", collection=q.collection)

    @app.delete("/v1/products/{product_id}", tags=["lifecycle"])
    async def delete_product(product_id: str, collection: str | None = None):
        def make():
            return P.delete([product_id], store=backend.get(False).store, settings=settings,
                            collection=collection)

        res = await call(make, "deleting the product", collection=collection)
        if isinstance(res, JSONResponse) and res.status_code == 200 and json.loads(res.body).get("missing"):
            return _error(404, "product_not_found", f"product [{product_id}] is not in the collection", field="id")
        return res

    @app.post("/v1/products/delete", tags=["lifecycle"])
    async def delete_products(q: IdsIn):
        return await call(lambda: P.delete(q.ids, store=backend.get(False).store, settings=settings,
                                           collection=q.collection), "deleting the products",
                          collection=q.collection)

    upsert_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": UpsertIn.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "required": ["products"], "properties": {
            "products": {"type": "string", "description": 'JSON: {"products": [...]} or a list; a record\'s '
                                                          '"image": "upload:<part>" names a file part'},
            "photos": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    }}}

    @app.post("/v1/products", tags=["lifecycle"], openapi_extra=upsert_body)
    async def upsert_products(request: Request):
        """Upsert products: checked, photos loaded and encoded as by `samestyle ingest`
        (unchanged ones skipped); per-record rejections come back with ingest's reasons.
        A product with an empty title or no photo whose stored product has one is
        rejected (`would_blank`) and the stored one kept, unless `allow_blanking`."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            q = await _upsert_multipart(request)
        elif ctype.startswith("application/json"):
            q = validate(UpsertIn, await read_json(request))
        else:
            return _error(415, "unsupported_media_type", f"content type [{ctype}] is not supported",
                          fix="send application/json, or multipart/form-data with a `products` part")
        for rec in q.products:  # over HTTP a photo is a URL, a data: URI or an upload, never a server path
            img = rec.get("image")
            if isinstance(img, str) and img and not img.lower().startswith(("http://", "https://", "data:")):
                raise InputError(f"product [{rec.get('id')}]: photo [{img[:80]}] is not an http(s) URL, a data: "
                                 "URI or an upload", field="image",
                                 fix='use a URL, a data: URI, or multipart with "image": "upload:<part name>"')

        def make():
            s = backend.get(True)
            return P.upsert(q.products, store=s.store, settings=settings, encoder=s.encoder,
                            collection=q.collection, force=q.force, allow_blanking=q.allow_blanking).to_dict()

        return await call(make, "the upsert", max(limit_s, 120.0), collection=q.collection)


async def _upsert_multipart(request: Request) -> UpsertIn:
    form = await request.form(max_files=MAX_UPSERT_RECORDS, max_fields=8, max_part_size=C.MAX_PHOTO_BYTES + 1)
    raw = form.get("products")
    if raw is None or not isinstance(raw, str):
        raise InputError("multipart upsert has no `products` field (JSON)", field="products")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"`products` is not valid JSON ({exc})", field="products") from None
    if isinstance(body, list):
        body = {"products": body}
    q = validate(UpsertIn, body)
    uploads = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            data = await value.read(C.MAX_PHOTO_BYTES + 1)
            if len(data) > C.MAX_PHOTO_BYTES:
                raise InputError(f"photo [{value.filename}] is over the limit of {C.MAX_PHOTO_BYTES} bytes",
                                 field="photo")
            uploads[value.filename or key] = data
            uploads.setdefault(key, data)
    for rec in q.products:
        img = rec.get("image")
        if isinstance(img, str) and img.startswith("upload:"):
            name = img[len("upload:"):]
            if name not in uploads:
                raise InputError(f"product [{rec.get('id')}] names the upload [{name}], which the request lacks",
                                 field="image")
            rec["image"] = uploads[name]
    return q

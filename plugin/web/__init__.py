"""The search page of `samestyle serve`: a self-contained HTML/JS/CSS page at `/`
over the JSON API, plus what only the page needs:

    GET  /                      the page (static/index.html; app.js and app.css beside it)
    GET  /static/...            its assets, and Swagger UI's (from the fastapi-offline wheel)
    GET  /docs                  Swagger UI on the bundled assets: works offline
    GET  /v1/thumbs/{hash}      a hit's thumbnail, by its `content_hash` (written at ingest)
    GET  /v1/ui/facets          filterable attributes and their most common values
    POST /v1/dedup              near-duplicate clusters at a threshold, with what the page shows

`mount(app, settings, backend)` adds them to the app of `http.create_app`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from .. import contract as C
from .. import dedup as D
from ..errors import InputError
from ..thumbs import Thumbnails

STATIC = Path(__file__).resolve().parent / "static"
# Stored fields that are bookkeeping, not catalogue attributes: never offered as filters.
INTERNAL = {C.PRIMARY_KEY, "title", "image_uri", "content_hash", "model_version", "has_image", "has_text",
            *C.VECTOR_FIELDS.values()}
MAX_FACET_VALUES = 60  # per attribute, most common first
FACET_SCAN_ROWS = 50_000  # rows read to count attribute values
CACHE_S = 60.0  # facets and dedup vectors are re-read after this (a running ingest adds rows)
MAX_CLUSTERS = 200
MAX_MEMBERS = 24  # photos per cluster strip


class DedupQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(C.DEDUP_THRESHOLD, ge=-1.0, le=1.0,
                             description="link two products of one category at this score (as `samestyle dedup`)")
    field: Literal[C.DEDUP_METHODS] = Field(C.DEDUP_PHOTO_TITLE, description="dedup's method or one vector field")
    category: str | None = Field(None, max_length=256, description="only this category")
    max_clusters: int = Field(50, ge=1, le=MAX_CLUSTERS)


class _Cache:
    """Per-key values recomputed after CACHE_S; one computation at a time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: dict = {}

    def get(self, key, make):
        with self.lock:
            hit = self.items.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                return hit[1]
            value = make()
            self.items[key] = (time.monotonic(), value)
            return value


def facets(searcher) -> dict:
    """Filterable attributes (schema and dynamic), the scalar fields group-by accepts,
    and the most common values of each text attribute."""
    schema = searcher.schema()
    scalars = [f for f in (searcher._scalars or []) if f not in INTERNAL]
    attrs = {name: kind for name, kind in schema.fields.items() if name not in INTERNAL}
    text_attrs = [n for n, k in attrs.items() if k in ("str", None)]
    counts: dict[str, Counter] = {n: Counter() for n in text_attrs}
    rows = 0
    if text_attrs:
        for batch in searcher.store.scan(searcher.collection, text_attrs, batch_size=5000):
            for r in batch:
                for n in text_attrs:
                    v = r.get(n)
                    if isinstance(v, str) and v:
                        counts[n][v] += 1
            rows += len(batch)
            if rows >= FACET_SCAN_ROWS:
                break
    values = {n: [v for v, _ in c.most_common(MAX_FACET_VALUES)] for n, c in counts.items() if c}
    return {"collection": searcher.collection, "rows_read": rows, "attributes": attrs, "group_by": scalars,
            "values": values, "model_version": searcher._model_version}


PAGE_FIELDS = ("title", "content_hash", "has_image")  # what a cluster strip shows of each member


def load_dedup(searcher, method: str):
    """The catalogue the duplicates view clusters: dedup's own loader (`dedup.load`, as
    `samestyle dedup` reads it) plus what the page shows of each member."""
    searcher.schema()
    return D.load(searcher.store, searcher.collection, method=method, extra_fields=PAGE_FIELDS)


def dedup_clusters(cat, q: DedupQuery) -> dict:
    """Clusters at `q.threshold` over a catalogue loaded once (`load_dedup`), linked by
    the same code as `samestyle dedup` (`dedup.link`), without its crop registration:
    that reads thumbnails and costs milliseconds a pair, minutes for a whole catalogue,
    so the page judges photos by their stored signatures alone (docs/web.md)."""
    if q.category is not None:
        cat = cat.subset(np.flatnonzero(np.asarray([g == q.category for g in cat.groups], dtype=bool)))
    t0 = time.perf_counter()
    pairs = D.link(cat, q.field, q.threshold)
    cids = D.cluster_ids(len(cat.ids), pairs)
    scores = D.evaluate(cids, None, len(pairs), q.threshold)
    pos = {pid: n for n, pid in enumerate(cat.ids)}
    clusters = []
    for rec in D.cluster_records(cat.ids, cat.groups, cids, pairs):
        if len(clusters) >= q.max_clusters:
            break
        rec["members"] = [{"id": m, **{f: cat.extra[f][pos[m]] for f in PAGE_FIELDS}}
                          for m in rec["members"][:MAX_MEMBERS]]
        rec.pop("links", None)
        clusters.append(rec)
    return {"threshold": q.threshold, "field": q.field, "category": q.category, "products": len(cat.ids),
            "clusters": scores.clusters, "clustered": scores.clustered, "links": scores.links,
            "shown": clusters, "took_ms": round((time.perf_counter() - t0) * 1000, 1)}


def _swagger_assets() -> Path | None:
    """Swagger UI 5 (reads OpenAPI 3.1) from the fastapi-offline wheel, which ships
    the assets FastAPI's /docs would fetch from a CDN."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def mount(app: FastAPI, settings, backend, limit_s: float) -> None:
    """Add the page and its endpoints to `app`. `backend.get(need_encoder)` gives the
    app's Searcher (see http._Backend)."""
    thumbs = Thumbnails(settings.data_dir)
    cache = _Cache()

    async def call(fn, what: str):
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), limit_s)
        except asyncio.TimeoutError:
            return JSONResponse({"error": {"code": "timeout", "message": f"{what} took longer than {limit_s:g} s"}},
                                status_code=504)

    # the page's defaults come from the contract, the one source of the numbers
    page_html = (STATIC / "index.html").read_text(encoding="utf-8").replace(
        "__DEDUP_THRESHOLD__", f"{C.DEDUP_THRESHOLD:g}")

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(page_html, headers={"Cache-Control": "no-cache"})

    swagger = _swagger_assets()
    if swagger is not None:  # before /static, which would otherwise take its paths
        app.mount("/static/swagger", StaticFiles(directory=swagger), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if swagger is None:
            return HTMLResponse("<p>Swagger UI assets are not installed (pip install fastapi-offline); "
                                "the spec is at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="samestyle API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.svg")

    @app.get("/v1/thumbs/{key}", tags=["page"], responses={200: {"content": {"image/jpeg": {}}}})
    async def thumbnail(key: str):
        """The thumbnail of a hit, named by its `content_hash` (64 hex digits)."""
        key = key.removesuffix(".jpg")
        path = thumbs.path(key)
        if path is None:
            raise InputError(f"thumbnail name [{key[:80]}] is not a content hash (64 hex digits)", field="key")
        if not path.is_file():
            return JSONResponse({"error": {"code": "not_found", "message": f"no thumbnail for [{key}]",
                                           "fix": "re-run `samestyle ingest` on the catalogue: it writes the "
                                                  "thumbnails that are missing"}}, status_code=404)
        # The name is the content: it never changes under a URL.
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/v1/ui/facets", tags=["page"])
    async def ui_facets():
        """Filterable attributes, group-by fields and the common values of each attribute."""
        def make():
            s = backend.get(False)
            return cache.get(("facets", s.collection), lambda: facets(s))

        return await call(make, "reading the attributes")

    @app.post("/v1/dedup", tags=["page"])
    async def dedup(q: DedupQuery):
        """Near-duplicate clusters (as `samestyle dedup`), largest first, with members' titles and thumbnails."""
        def make():
            s = backend.get(False)
            loaded = cache.get(("dedup", s.collection, q.field), lambda: load_dedup(s, q.field))
            return dedup_clusters(loaded, q)

        return await call(make, "finding duplicates")

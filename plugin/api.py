"""The Python API for services: `samestyle.connect(...)` returns a `Client` over one
collection (alias) with every search type and the product lifecycle. Documented, with
a worked example that a test runs, in docs/python-api.md.

    import samestyle

    with samestyle.connect(milvus_uri="http://milvus:19530", triton_url="triton:8001") as ss:
        res = ss.search_product("15970", k=5, filters={"gender": "Men"})
        for hit in res.hits:
            print(hit.id, hit.similarity, hit.entity["title"])

Results are typed (samestyle.SearchResult / Hit / BatchResult / UpsertReport, each
with .to_dict() giving the HTTP API's JSON); errors are the CLI's
(samestyle.errors.SamestyleError and its subclasses: InputError for the caller's
input, with `.field` and `.fix`; ServerUnavailable for Milvus or Triton down...)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import products as P
from .config import Settings, from_env
from .encoders.onnx import OnnxEncoder
from .errors import ConfigError
from .query.search import Searcher, SearchOptions
from .serve import advert
from .serve.stack import onnx_bundle, encoder_for


class Client:
    """Searches and lifecycle over one collection. The encoder (needed by text and
    photo searches and by upsert) is opened on first use; product searches, get and
    delete never start one. Close it (or use `with`) to release Milvus and any Triton
    started for it."""

    def __init__(self, settings: Settings, *, encoder: str | Any = "triton"):
        self.settings = settings
        self._encoder_kind = encoder
        self._searcher = None
        self._encoder = None
        self._owns_encoder = False

    # -- plumbing ---------------------------------------------------------------------
    @property
    def collection(self) -> str:
        return self.settings.collection

    @property
    def searcher(self):
        """The underlying samestyle.query.search.Searcher (its samestyle.store.Store at .store)."""
        if self._searcher is None:
            self._searcher = Searcher.from_settings(self.settings)
        return self._searcher

    @property
    def encoder(self):
        """The encoder, opened now if it is not: an Encoder object passed to connect(),
        in-process ONNX Runtime (encoder="onnx"), or Triton at triton_url (else the one a
        running `samestyle serve` advertises, else a local one started for this client)."""
        if self._encoder is None:
            kind = self._encoder_kind
            if not isinstance(kind, str):
                self._encoder = kind
            elif kind == "onnx":
                self._encoder, self._owns_encoder = OnnxEncoder(onnx_bundle(self.settings.model_dir)), True
            elif kind == "triton":
                self._encoder, self._owns_encoder = encoder_for(self.settings), True
            else:
                raise ConfigError(f"unknown encoder [{kind}]", fix='use encoder="triton", "onnx" or an Encoder')
            self.searcher.encoder = self._encoder
        return self._encoder

    def _with_encoder(self):
        s = self.searcher
        if s.encoder is None:
            s.encoder = self.encoder
        return s

    @staticmethod
    def _opts(opts, kw):
        if opts is not None and kw:
            return replace(opts, **kw)
        return opts if opts is not None else SearchOptions(**kw)

    def close(self) -> None:
        if self._encoder is not None and self._owns_encoder:
            self._encoder.close()
        self._encoder = None
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- search -----------------------------------------------------------------------
    # Options, as keywords or a SearchOptions: k, offset, fields, weights, ranker,
    # filters ({"brand": "Puma"} / ["brand=Puma", "price<=999"]), group_by, floor,
    # colour, exclude, exclude_self, category, target.
    def search_product(self, product_id: str, opts=None, **kw):
        """Same style as a stored product (its stored vectors; no encoder)."""
        return self.searcher.by_product(product_id, self._opts(opts, kw))

    def by_products(self, product_ids: Sequence[str], opts=None, **kw):
        """Same style as each of many stored products, batched into few Milvus calls;
        a BatchResult whose `.errors` holds the ids that failed."""
        o = self._opts(opts, kw)
        self.searcher.check(o)
        return self.searcher.by_products(list(product_ids), o)

    def search_text(self, text: str, target: str = "text", opts=None, **kw):
        """Products matching a phrase: target text (titles), image (photos), fused or all."""
        return self._with_encoder().by_text(text, target, self._opts(opts, kw))

    def search_photo(self, photo: bytes | str | Path, modifier: str | None = None, opts=None, **kw):
        """Products that look like a photo (bytes or a path); with `modifier` ("but in
        white") the photo and the words are encoded as one fused query."""
        s = self._with_encoder()
        o = self._opts(opts, kw)
        return s.by_photo_text(photo, modifier, o) if modifier else s.by_photo(photo, o)

    def hybrid(self, *, text: str | None = None, photo: bytes | str | Path | None = None,
               product_id: str | None = None, opts=None, **kw):
        """One multi-field search mixing any of a phrase, a photo and a stored product."""
        s = self._with_encoder() if (text is not None or photo is not None) else self.searcher
        return s.hybrid(text=text, photo=photo, product_id=product_id, opts=self._opts(opts, kw))

    # -- lifecycle ----------------------------------------------------------------------
    def upsert(self, products: Sequence[Mapping[str, Any]], *, force: bool = False,
               photo_base: str | Path | None = ".", photo_options=None, allow_blanking: bool = False):
        """Check, encode and upsert products (dicts with id, title, image, category and
        attributes); unchanged ones are skipped unless `force`. Bad records do not
        raise: they are in the returned UpsertReport's `.rejected`, with ingest's
        reasons. `image` may be a URL, a data: URI, bytes, or a path inside
        `photo_base` (None refuses local paths). A product with an empty title or no
        photo whose stored product has one is rejected (`would_blank`) and the stored
        one kept, unless `allow_blanking`."""
        return P.upsert(products, store=self.searcher.store, settings=self.settings, encoder=self.encoder,
                        photo_base=photo_base, photo_options=photo_options, force=force,
                        allow_blanking=allow_blanking)

    def get(self, product_ids: str | Sequence[str], *, vectors: bool = False) -> dict[str, dict] | dict | None:
        """Stored products by id: {id: row} for a list (missing ids absent), the row
        (or None) for one id."""
        one = isinstance(product_ids, str)
        rows = P.get([product_ids] if one else list(product_ids), store=self.searcher.store,
                     settings=self.settings, vectors=vectors)
        return rows.get(product_ids) if one else rows

    def delete(self, product_ids: str | Sequence[str]) -> dict:
        """Delete by id: {"deleted": [...], "missing": [...]}."""
        ids = [product_ids] if isinstance(product_ids, str) else list(product_ids)
        return P.delete(ids, store=self.searcher.store, settings=self.settings)

    def collections(self) -> list[dict]:
        """Every collection: name, version, aliases, rows, model version, state."""
        return P.collections(store=self.searcher.store, settings=self.settings)


def connect(milvus_uri: str | None = None, triton_url: str | None = None, *, collection: str | None = None,
            milvus_token: str | None = None, data_dir: str | Path | None = None, model_dir: str | Path | None = None,
            encoder: str | Any = "triton", settings: Settings | None = None, use_env: bool = True) -> Client:
    """A Client. Anything not passed comes from the SAMESTYLE_* environment (unless
    `use_env=False`), then from a stack `samestyle serve` advertises in the data
    directory, then the defaults (embedded Milvus Lite under ./.samestyle; a local
    Triton started on first need). `encoder`: "triton", "onnx" (in-process ONNX
    Runtime, no server) or an Encoder object."""
    base = settings or (from_env() if use_env else Settings())
    s = base.with_(milvus_uri=milvus_uri, triton_url=triton_url, collection=collection, milvus_token=milvus_token,
                   data_dir=Path(data_dir) if data_dir is not None else None,
                   model_dir=Path(model_dir) if model_dir is not None else None)
    s, _ = advert.apply(s)
    return Client(s, encoder=encoder)

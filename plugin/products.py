"""Single products in and out of the collection, for services: upsert a batch of
records (the same checks, photo loading and dead-letter reasons as `samestyle ingest`,
one record at a time instead of a catalogue file), get by id, delete by id.

Used by the Python API (samestyle.api) and the HTTP API (samestyle.http_lifecycle).
A record is a mapping with the catalogue's columns: `id`, `title`, `image` (a URL, a
data: URI, raw bytes, or a local path where the caller allows one), `category`, and any
other key as an attribute (declared attribute fields such as brand, or the dynamic field)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import contract as C
from .errors import InputError
from .loaders.photos import PhotoError, PhotoLoader, PhotoOptions
from .loaders.pipeline import refuse_blanking, stored_content_fields, upsert_isolating
from .loaders.sources import RawRecord
from .loaders.transform import ColumnMap, Parsed, Product, Rejected, Transformer
from .store.collections import CollectionNotFound

MAX_UPSERT = 256  # records per call (each may carry a photo)


@dataclass
class UpsertReport:
    """What one upsert call did. `rejected` holds one entry per record that was not
    stored: {"line": index in the request (1-based), "id", "field", "kind", "reason"}
    with the same `kind`s as ingest's dead-letter file."""

    collection: str
    model_version: str
    received: int = 0
    upserted: int = 0
    unchanged: int = 0
    rejected: list[dict] = field(default_factory=list)
    took_ms: float = 0.0

    def to_dict(self) -> dict:
        return {"collection": self.collection, "model_version": self.model_version, "received": self.received,
                "upserted": self.upserted, "unchanged": self.unchanged, "failed": len(self.rejected),
                "rejected": self.rejected, "took_ms": round(self.took_ms, 1)}


def _store(store, settings, collection: str | None):
    """`store` (a samestyle.store.Store, the one owner of Milvus calls) for the collection
    the call names, else the settings' one."""
    return store.for_alias(collection or settings.collection)


def _target(store) -> str:
    """The physical collection behind the store's alias (or the name itself)."""
    name = store.alias_target() or store.alias
    if not store.exists(name):
        raise CollectionNotFound(f"collection [{store.alias}] does not exist", collection=store.alias,
                                 fix="create it with `samestyle ingest CATALOGUE` first")
    return name


def upsert(records: Sequence[Mapping[str, Any]], *, store, settings, encoder, collection: str | None = None,
           photo_base: str | Path | None = None, photo_options=None, columns=None,
           force: bool = False, allow_blanking: bool = False) -> UpsertReport:
    """Check, encode and upsert `records` into the collection (alias; created as
    `<alias>_v1` when missing, as ingest does) — unchanged products (same content
    hash) are skipped unless `force`. Bad records never raise:
    they come back in `report.rejected`. Raises for an infrastructure failure or a
    missing collection. `photo_base`: folder local photo paths are confined to (None:
    local paths are refused, as over HTTP). A record with an empty title (or no photo)
    for a stored product that has one is rejected (`would_blank`, as by ingest) and the
    stored product kept, unless `allow_blanking`. `store`: a samestyle.store.Store."""
    if len(records) > MAX_UPSERT:
        raise InputError(f"{len(records)} records in one call, over the limit of {MAX_UPSERT}", field="products",
                         fix=f"send at most {MAX_UPSERT} per call")
    t0 = time.perf_counter()
    store = _store(store, settings, collection)
    # as ingest: the alias's collection (checked against the model), else a new version
    name, alias_pending = store.resolve_target({"model_version": encoder.model_version, "embed_dim": int(encoder.dim)})
    report = UpsertReport(store.alias, encoder.model_version, received=len(records))
    tr = Transformer(store.spec, columns or ColumnMap(category="category"), encoder.model_version, getattr(encoder, "consts", None))
    opts = photo_options or PhotoOptions()
    loader = PhotoLoader(photo_base if photo_base is not None else _NOWHERE, opts)

    products: list[Product] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for i, rec in enumerate(records, 1):
        raw = RawRecord(i, dict(rec) if isinstance(rec, Mapping) else None,
                        None if isinstance(rec, Mapping) else ("record", "a product must be a JSON object"))
        item = tr.parse(raw)
        if isinstance(item, Parsed):
            if item.id in seen:
                item = Rejected(i, item.id, tr.cols.id, "duplicate_id", "duplicate id in this request (the first wins)")
            else:
                seen.add(item.id)
        if isinstance(item, Parsed):
            if item.image_ref is None:
                item = tr.finish(item, None, "")
            else:
                try:
                    data = loader.load(item.image_ref)
                    item = tr.finish(item, data, loader.uri(item.image_ref, data))
                except PhotoError as exc:
                    item = tr.reject_photo(item, exc.kind, exc.reason)
        (products if isinstance(item, Product) else rejected).append(item)

    # One look-up of the stored ids: content hash (skip unchanged) and has_text/has_image
    # (a record must not blank what is stored: the ingest pipeline's own check).
    fields = stored_content_fields(store.spec)
    stored = store.fetch(name, [p.id for p in products], fields) if products and not (force and allow_blanking) else {}
    if stored and not allow_blanking:
        blanking = refuse_blanking(products, stored, store.spec, tr.cols, where="field", allow="set allow_blanking")
        rejected += blanking.values()
        products = [p for p in products if p.line not in blanking]
    todo = products if force else [p for p in products if (stored.get(p.id) or {}).get(fields[0]) != p.content_hash]
    report.unchanged = len(products) - len(todo)
    rows = []
    if todo:
        enc = encoder.encode([p.input for p in todo], batch_size=min(len(todo), encoder.max_batch))
        for i, p in enumerate(todo):
            err = enc.errors[i]
            if err is None:
                rows.append(tr.row(p, enc, i))
            else:
                col = {"image": tr.cols.image, "text": tr.cols.title}.get(err.field or "", err.field or "product")
                rejected.append(Rejected(p.line, p.id, col, "encode_failed", err.message))
    refused = upsert_isolating(store, name, rows, todo)
    rejected += refused
    report.upserted = len(rows) - len(refused)
    if rows or alias_pending:
        store.flush_and_load(name)
    if alias_pending:
        store.set_state(name, "complete")
        store.switch_alias(name)
    report.rejected = [r.to_dict() for r in sorted(rejected, key=lambda r: r.line)]
    report.took_ms = (time.perf_counter() - t0) * 1000
    return report


_NOWHERE = Path("/nonexistent/samestyle-no-local-photos")


def _check_ids(ids: Iterable[str]) -> list[str]:
    out = []
    for pid in ids:
        if not isinstance(pid, str) or not pid:
            raise InputError(f"product id [{pid!r}] is not a non-empty string", field="ids")
        if len(pid.encode("utf-8")) > C.MAX_ID_CHARS:
            raise InputError(f"product id [{pid[:40]}...] is over {C.MAX_ID_CHARS} bytes", field="ids")
        out.append(pid)
    if not out:
        raise InputError("no product ids given", field="ids")
    return list(dict.fromkeys(out))


def get(ids: Sequence[str], *, store, settings, collection: str | None = None,
        vectors: bool = False) -> dict[str, dict]:
    """{id: stored product} for the ids that exist (scalars and attributes; the three
    vectors too with `vectors`). Missing ids are absent."""
    ids = _check_ids(ids)
    store = _store(store, settings, collection)
    name = _target(store)
    rows = store.fetch(name, ids, ["*"])  # every field, the dynamic attributes too
    drop = set() if vectors else {*store.spec.vector_fields.values(), store.composite_field(name)}
    out = {}
    for pid in ids:
        if pid in rows:
            row = {k: v for k, v in rows[pid].items() if k not in drop}
            for k, v in list(row.items()):
                if hasattr(v, "tolist"):
                    row[k] = v.tolist()
                elif isinstance(v, (list, tuple)) and v and hasattr(v[0], "item"):
                    row[k] = [float(x) for x in v]
            out[pid] = row
    return out


def delete(ids: Sequence[str], *, store, settings, collection: str | None = None) -> dict:
    """Delete products by id: {"deleted": [ids that existed], "missing": [the rest]}."""
    ids = _check_ids(ids)
    store = _store(store, settings, collection)
    present = set(store.delete(_target(store), ids))
    return {"collection": store.alias, "deleted": [i for i in ids if i in present],
            "missing": [i for i in ids if i not in present]}


def collections(*, store, settings) -> list[dict]:
    """Every collection with its version, aliases, row count and model version."""
    return [c.to_dict() for c in _store(store, settings, None).list()]

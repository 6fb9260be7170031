"""read -> check -> encode -> upsert, with bounded queues end to end.

Stages and what bounds them (so memory stays flat whatever the catalogue size):

  reader thread   source records -> parse/duplicate check -> photo pool (N threads:
                  load, verify, hash)          --q_products (2 x batch items)-->
  batch thread    batches of products -> content-hash look-up in Milvus -> encode
                  pool (W workers)             --q_batches (W + 1 batches)-->
  writer (caller) upsert -> dead letters -> checkpoint -> progress

Every queue has a fixed size and every stage blocks when its output is full, so at
most ~ (3 x batch + W + 1 batches) products are in flight. The only state that grows
with the catalogue is the set of ids seen (duplicate detection): ~100 bytes per product.

Order is kept end to end (futures are queued in reading order), so the writer can
advance the checkpoint to "everything before line L is done" after each batch.

Duplicate ids within one file: the first record carrying an id claims it (whether or
not that record loads); every later record with that id is dead-lettered with the
line of the first. This is decided while reading, so it is the same on a resumed run.

Blanking: a record with an empty title (or no photo) for an id whose stored product has
one is dead-lettered (would_blank) unless IngestOptions.allow_blanking; the batch's one
look-up of stored content hashes also reads has_image/has_text for this.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from samestyle.encoders.base import EncodedBatch, Encoder
from samestyle.errors import ServerUnavailable, StoreError
from samestyle.store.collections import Store
from samestyle.store.spec import CollectionSpec
from samestyle.thumbs import Thumbnails

from .checkpoint import Checkpoint
from .photos import PhotoError, PhotoLoader
from .sources import Source
from .transform import ColumnMap, Parsed, Product, Rejected, Transformer

log = logging.getLogger(__name__)
_END = object()


@dataclass
class IngestOptions:
    batch_size: int = 32
    limit: int | None = None
    encode_workers: int = 1  # batches encoding at once (>1 helps a remote Triton)
    # A record with an empty title (or no photo) for an id whose stored product has one
    # would blank the stored title (or photo) and its vectors: dead-lettered unless this is set.
    allow_blanking: bool = False


@dataclass
class IngestReport:
    catalogue: str
    collection: str
    model_version: str
    read: int = 0
    loaded: int = 0
    unchanged: int = 0
    failed: int = 0
    reasons: dict = field(default_factory=dict)
    dead_letter: str | None = None
    seconds: float = 0.0
    resumed_from_line: int | None = None
    complete: bool = False
    # Counts carried over from the interrupted runs a resumed run continues: the
    # counters above are cumulative, the rates below are this run's alone.
    carried: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # what the column check said (e.g. no category column)

    @property
    def products_per_s(self) -> float:
        """Records handled per second by this run (not the runs it resumed)."""
        n = self.read - int(self.carried.get("read", 0))
        return round(n / self.seconds, 2) if self.seconds else 0.0

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["products_per_s"] = self.products_per_s
        n = self.loaded - int(self.carried.get("loaded", 0))
        d["encoded_per_s"] = round(n / self.seconds, 2) if self.seconds else 0.0
        d["read_this_run"] = self.read - int(self.carried.get("read", 0))
        return d


class _IdSet:
    """First line of each id, keyed by an 8-byte digest (about 100 B per id)."""

    def __init__(self):
        self._first: dict[int, int] = {}

    def claim(self, pid: str, line: int) -> int | None:
        k = int.from_bytes(hashlib.blake2b(pid.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
        first = self._first.setdefault(k, line)
        return None if first == line else first


@dataclass
class _Batch:
    items: list  # (line, Product | Rejected), in line order
    to_encode: list[Product]
    unchanged: int
    encoded: Future | None
    last_line: int


class _DeadLetters:
    """Append-only JSONL, cut back to the checkpoint's length on resume."""

    def __init__(self, path: Path, offset: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = path.open("r+b" if offset and path.exists() else "wb")
        self.f.truncate(offset if offset and path.exists() else 0)
        self.f.seek(0, 2)

    def write(self, rejected: list[Rejected]) -> int:
        for r in rejected:
            self.f.write(json.dumps(r.to_dict(), ensure_ascii=False).encode("utf-8") + b"\n")
        self.f.flush()
        return self.f.tell()

    def close(self):
        self.f.close()


class _Stages:
    def __init__(self):
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, which re-raises
                if self.error is None:
                    self.error = exc
                self.stop.set()

        t = threading.Thread(target=run, name=f"ingest-{name}", daemon=True)
        t.start()
        self.threads.append(t)

    def put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue):
        while True:
            if self.error is not None:
                raise self.error
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue


def stored_content_fields(spec: CollectionSpec) -> list[str]:
    """What is read of a stored product before writing over it: its content hash (an
    unchanged record is skipped) and has_image/has_text (for `would_blank`)."""
    return [spec.by_role(r).name for r in ("content_hash", "has_image", "has_text")]


def would_blank(p: Product, row: Mapping | None, spec: CollectionSpec, cols: ColumnMap, *, where: str = "column",
                allow: str = "pass --allow-blanking") -> Rejected | None:
    """The would_blank rejection when `p` would clear the title or photo (and its vectors)
    of its stored product `row` (read with `stored_content_fields`), else None. `where`
    and `allow` word the fix for the caller: ingest's columns and flag, the APIs' fields
    and option."""
    if row is None or row.get(spec.by_role("content_hash").name) == p.content_hash:
        return None  # not stored, or stored as it is: nothing changes
    what = []
    if row.get(spec.by_role("has_text").name) and not p.title:
        what.append(("title", cols.title))
    if row.get(spec.by_role("has_image").name) and p.photo is None:
        what.append(("photo", cols.image))
    if not what:
        return None
    names = " and ".join(w for w, _ in what)
    two = len(what) > 1
    return Rejected(p.line, p.id, ",".join(c for _, c in what), "would_blank",
                    f"product [{p.id}]: {names} {'are' if two else 'is'} empty but the stored product has "
                    f"{'them' if two else 'one'}; storing the record would clear the stored {names} and "
                    f"{'their' if two else 'its'} vectors, so the stored product was kept as it is; fill the "
                    f"{where} [{'], ['.join(c for _, c in what)}] or {allow} to clear it")


def refuse_blanking(products: list[Product], stored: Mapping[str, Mapping], spec: CollectionSpec,
                    cols: ColumnMap, **wording: str) -> dict[int, Rejected]:
    """line -> would_blank rejection for each of `products` that would blank its stored
    product (`stored`: id -> row, as `Store.fetch(..., stored_content_fields(spec))`)."""
    out = {}
    for p in products:
        r = would_blank(p, stored.get(p.id), spec, cols, **wording)
        if r is not None:
            out[p.line] = r
    return out


def upsert_isolating(store: Store, collection: str, rows: list[dict], products: list[Product]) -> list[Rejected]:
    """Upsert a batch; if Milvus refuses it (not unavailable: refuses), upsert row by
    row so one row it will not take cannot keep the rest of the batch out. A retriable
    error (Milvus unavailable) is raised instead: row by row would fail the same way,
    and the checkpoint resumes the batch."""
    try:
        store.upsert(collection, rows)
        return []
    except (ServerUnavailable, StoreError) as exc:
        if exc.retriable:
            raise
        log.warning("batch upsert refused (%s); retrying row by row", exc.message)
    by_id = {p.id: p for p in products}
    pk = store.spec.by_role("id").name
    out = []
    for row in rows:
        try:
            store.upsert(collection, [row])
        except (ServerUnavailable, StoreError) as exc:
            if exc.retriable:
                raise
            p = by_id[row[pk]]
            out.append(Rejected(p.line, p.id, "record", "store_rejected", exc.message))
    return out


def run_pipeline(source: Source, transformer: Transformer, photos: PhotoLoader, encoder: Encoder, store: Store,
                 collection: str, checkpoint: Checkpoint, dead_letter: Path, options: IngestOptions | None = None,
                 progress: Callable[[IngestReport, int], None] | None = None,
                 thumbs: Thumbnails | None = None) -> IngestReport:
    """Ingest `source` into `collection`; returns the report. Raises on infrastructure
    failure (Milvus or the encoder down); bad records never raise. With `thumbs`, the
    photo stage also writes each product's thumbnail (for the search page)."""
    opts = options or IngestOptions()
    bs = max(1, opts.batch_size)
    report = IngestReport(str(source.path), collection, encoder.model_version, dead_letter=str(dead_letter))
    for k in ("read", "loaded", "unchanged", "failed"):
        setattr(report, k, int(checkpoint.counts.get(k, 0)))
    report.carried = {k: getattr(report, k) for k in ("read", "loaded", "unchanged", "failed")}
    report.reasons = dict(checkpoint.reasons)
    if checkpoint.resumed:
        report.resumed_from_line = checkpoint.next_line
    resume_line = checkpoint.next_line
    store.ensure_loaded(collection)

    st = _Stages()
    q_products: queue.Queue = queue.Queue(maxsize=2 * bs)
    q_batches: queue.Queue = queue.Queue(maxsize=max(1, opts.encode_workers) + 1)
    photo_pool = ThreadPoolExecutor(max(1, photos.options.concurrency), thread_name_prefix="ingest-photo")
    encode_pool = ThreadPoolExecutor(max(1, opts.encode_workers), thread_name_prefix="ingest-encode")

    def load_photo(p: Parsed) -> Product | Rejected:
        if p.image_ref is None:
            return transformer.finish(p, None, "")
        try:
            data = photos.load(p.image_ref)
        except PhotoError as exc:
            return transformer.reject_photo(p, exc.kind, exc.reason)
        prod = transformer.finish(p, data, photos.uri(p.image_ref, data))
        if thumbs is not None and isinstance(prod, Product):
            thumbs.save(prod.content_hash, data)  # skips one that exists; never rejects
        return prod

    def done(value) -> Future:
        f: Future = Future()
        f.set_result(value)
        return f

    def reader():
        seen = _IdSet()
        n = 0
        for raw in source:
            if st.stop.is_set() or (opts.limit is not None and n >= opts.limit):
                break
            n += 1
            item = transformer.parse(raw)
            if isinstance(item, Parsed):
                first = seen.claim(item.id, raw.line)
                if first is not None:
                    item = Rejected(raw.line, item.id, transformer.cols.id, "duplicate_id",
                                    f"duplicate id, first seen on line {first} (the first record wins)")
            if raw.line < resume_line:
                continue  # committed by an earlier run; read only to claim its id
            fut = photo_pool.submit(load_photo, item) if isinstance(item, Parsed) else done(item)
            if not st.put(q_products, (raw.line, fut)):
                return
        st.put(q_products, _END)

    def encode(products: list[Product]) -> EncodedBatch:
        return encoder.encode([p.input for p in products], batch_size=min(bs, encoder.max_batch))

    f_hash = store.spec.by_role("content_hash").name
    stored_fields = stored_content_fields(store.spec)

    def batcher():
        items: list = []

        def submit() -> bool:
            nonlocal items
            products = [x for _, x in items if isinstance(x, Product)]
            # One query per batch, for the ids in it that are stored: hash + what they hold.
            stored = store.fetch(collection, [p.id for p in products], stored_fields) if products else {}
            if not opts.allow_blanking and stored:
                blanking = refuse_blanking(products, stored, store.spec, transformer.cols)
                if blanking:
                    items = [(ln, blanking.get(ln, x) if isinstance(x, Product) else x) for ln, x in items]
                    products = [x for _, x in items if isinstance(x, Product)]
            todo = [p for p in products if (stored.get(p.id) or {}).get(f_hash) != p.content_hash]
            fut = encode_pool.submit(encode, todo) if todo else None
            batch = _Batch(items, todo, len(products) - len(todo), fut, items[-1][0])
            items = []
            return st.put(q_batches, batch)

        while True:
            got = st.get(q_products)
            if got is _END:
                break
            line, fut = got
            items.append((line, fut.result()))
            n_products = sum(isinstance(x, Product) for _, x in items)
            # Rejections also close a batch now and then, so the checkpoint moves
            # through a long run of bad records.
            if (n_products >= bs or len(items) >= 4 * bs) and not submit():
                return
        if items and not submit():
            return
        st.put(q_batches, _END)

    t0 = time.perf_counter()
    dl = _DeadLetters(dead_letter, checkpoint.dead_letter_offset if checkpoint.resumed else 0)
    st.spawn("reader", reader)
    st.spawn("batcher", batcher)
    try:
        while True:
            batch = st.get(q_batches)
            if batch is _END:
                break
            rejected = [x for _, x in batch.items if isinstance(x, Rejected)]
            rows = []
            if batch.encoded is not None:
                enc = batch.encoded.result()
                for i, p in enumerate(batch.to_encode):
                    err = enc.errors[i]
                    if err is None:
                        rows.append(transformer.row(p, enc, i))
                    else:
                        col = {"image": transformer.cols.image, "text": transformer.cols.title}.get(
                            err.field or "", err.field or "product")
                        rejected.append(Rejected(p.line, p.id, col, "encode_failed", err.message))
            rejected += upsert_isolating(store, collection, rows, batch.to_encode)
            rows_loaded = len(rows) - sum(r.kind == "store_rejected" for r in rejected)
            rejected.sort(key=lambda r: r.line)
            offset = dl.write(rejected)
            report.read += len(batch.items)
            report.loaded += rows_loaded
            report.unchanged += batch.unchanged
            report.failed += len(rejected)
            for r in rejected:
                report.reasons[r.kind] = report.reasons.get(r.kind, 0) + 1
            checkpoint.next_line = batch.last_line + 1
            checkpoint.counts = {k: getattr(report, k) for k in ("read", "loaded", "unchanged", "failed")}
            checkpoint.reasons = dict(report.reasons)
            checkpoint.dead_letter_offset = offset
            checkpoint.save()
            report.seconds = time.perf_counter() - t0
            if progress:
                progress(report, len(batch.items))
        report.complete = True
    finally:
        st.stop.set()
        for t in st.threads:
            t.join(timeout=30)
        photo_pool.shutdown(wait=True, cancel_futures=True)
        encode_pool.shutdown(wait=True, cancel_futures=True)
        dl.close()
    report.seconds = time.perf_counter() - t0
    report.reasons = dict(Counter(report.reasons).most_common())
    return report

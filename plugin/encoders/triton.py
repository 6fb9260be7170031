"""Triton gRPC client for the `product_encoder` model, behind the Encoder interface.

Clients send compact bytes (the encoded photo and the UTF-8 title); decoding,
tokenization and the encoders run in the server. Here: several products per request,
a bounded number of requests in flight (shared by every thread using this encoder),
a deadline per request, retries with backoff while the server is unavailable (a
restart costs no product, encoding is idempotent), and per-product errors from the
model's `error` output, named by product id.

A caller that answers people (the HTTP API) gives a short `retry_s` and a `cooldown_s`:
once the retries run out, every call for the next `cooldown_s` fails at once with the
same ServerUnavailable instead of queueing behind the request slots to retry again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
from tritonclient.utils import InferenceServerException

from .. import contract as C
from ..errors import EncodeError, InputError, ServerUnavailable, ServeError
from ..model import preprocess as pp
from .base import EncodedBatch, Encoder, ProductInput

log = logging.getLogger(__name__)

# gRPC codes worth another try: the server is down, restarting or overloaded.
CONNECT_RETRY_S = 30.0
RETRIABLE = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}


def _retriable(exc: Exception) -> bool:
    if not isinstance(exc, InferenceServerException):
        return False
    msg = exc.message() or ""
    # While models load the server answers, but not for this model yet; a crashed
    # python-backend stub is restarted by the server on the next request.
    return (exc.status() in RETRIABLE or "is not ready" in msg or "unknown model" in msg
            or "Stub process" in msg)


def error_from_row(product_id: str, reason: str) -> EncodeError:
    """The model writes "field: reason" (see samestyle.model.preprocess.PreprocessError)."""
    field = reason.split(":", 1)[0] if ":" in reason else None
    return EncodeError(f"product [{product_id}]: {reason}", product_id=product_id, field=field,
                       too_large=pp.too_large(reason))


class TritonEncoder(Encoder):
    """Encoder served by Triton at `url` (gRPC host:port).

    batch_size: products per request; max_in_flight: requests in flight at once (all
    threads together); timeout_s: deadline of one request; retry_s: how long to keep
    retrying an unavailable server before ServerUnavailable; cooldown_s: after that,
    how long calls fail at once without trying (0: never, every call retries).
    `on_close` runs when the encoder is closed (encoder_for uses it to stop a server it
    started)."""

    def __init__(self, url: str, *, model: str = C.ENTRY_MODEL, batch_size: int = 16, max_in_flight: int = 4,
                 timeout_s: float = 60.0, retry_s: float = 120.0, cooldown_s: float = 0.0,
                 on_close: Callable[[], None] | None = None):
        import tritonclient.grpc as grpcclient

        if not 1 <= batch_size <= C.MAX_BATCH:
            raise InputError(f"batch_size is [{batch_size}], expected 1..{C.MAX_BATCH}", field="batch_size")
        if max_in_flight < 1:
            raise InputError(f"max_in_flight is [{max_in_flight}], expected >= 1", field="max_in_flight")
        self.url, self.model = url, model
        self.max_batch = batch_size
        self.max_in_flight = max_in_flight
        self.timeout_s, self.retry_s, self.cooldown_s = timeout_s, retry_s, cooldown_s
        self._down_until = 0.0  # monotonic time until which calls fail at once (cooldown_s)
        self._down: ServerUnavailable | None = None
        self._on_close = on_close
        self._client = grpcclient.InferenceServerClient(url)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        try:
            # A server that is not there at all should fail a command fast; one that
            # goes away mid-stream gets the full retry_s.
            cfg = self._call(lambda: self._client.get_model_config(model, as_json=True, client_timeout=timeout_s),
                             budget_s=min(retry_s, CONNECT_RETRY_S))
        except InferenceServerException as exc:
            raise ServeError(f"Triton at {url} has no usable model [{model}]: {exc.message()}", url=url,
                             fix="serve a repository built by `samestyle export`") from None
        cfg = cfg["config"]
        outs = {o["name"]: o for o in cfg["output"]}
        self.dim = int(outs[C.OUT_FUSED]["dims"][-1])
        params = cfg.get("parameters", {})
        self.model_version = params.get("model_version", {}).get("string_value", "unknown")
        self.colour_dims = int(params.get("colour_dims", {}).get("string_value", "0") or 0)
        self.server_max_batch = int(cfg.get("max_batch_size", C.MAX_BATCH))

    # -- transport ---------------------------------------------------------------
    def _check_down(self) -> None:
        """Within cooldown_s of running out of retries: the same error, at once."""
        down = self._down
        if down is not None and time.monotonic() < self._down_until:
            raise ServerUnavailable(down.message, fix=down.fix, **down.data)

    def _call(self, fn, budget_s: float | None = None):
        """fn() with retries while the server is unavailable."""
        budget = self.retry_s if budget_s is None else budget_s
        deadline = time.monotonic() + budget
        delay, tries = 0.1, 0
        while True:
            self._check_down()  # another thread already ran out of retries
            tries += 1
            try:
                out = fn()
            except Exception as exc:
                if not _retriable(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    status = exc.status() if isinstance(exc, InferenceServerException) else None
                    # One message for one kind of outage (no try count, no gRPC detail in it),
                    # so every request it fails reads the same; the detail goes beside it.
                    err = ServerUnavailable(
                        f"Triton at {self.url} is unavailable: no answer over {budget:g} s of retries"
                        + (f" ({status})" if status else ""),
                        url=self.url, service="triton", detail=str(exc)[:300],
                        fix="start it (`samestyle serve`), or unset SAMESTYLE_TRITON_URL to let samestyle start "
                            "a local one")
                    if self.cooldown_s > 0:
                        self._down, self._down_until = err, time.monotonic() + self.cooldown_s
                    log.warning("Triton at %s unavailable after %d tries over %g s: %s", self.url, tries, budget,
                                str(exc)[:300])
                    raise err from None
                if tries == 1 or tries % 10 == 0:
                    log.warning("Triton at %s unavailable (%s); retrying", self.url, str(exc)[:120])
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self._down = None
                return out

    def _infer(self, products: Sequence[ProductInput]):
        import tritonclient.grpc as grpcclient

        n = len(products)
        image = np.empty((n, 1), dtype=np.object_)
        text = np.empty((n, 1), dtype=np.object_)
        for i, p in enumerate(products):
            image[i, 0] = bytes(p.image) if p.image else b""
            text[i, 0] = (p.text or "").encode("utf-8")
        inputs = [grpcclient.InferInput(C.IN_IMAGE, [n, 1], "BYTES"), grpcclient.InferInput(C.IN_TEXT, [n, 1], "BYTES")]
        inputs[0].set_data_from_numpy(image)
        inputs[1].set_data_from_numpy(text)
        outputs = [grpcclient.InferRequestedOutput(o) for o in (C.OUT_IMAGE, C.OUT_TEXT, C.OUT_FUSED, C.OUT_ERROR)]
        self._check_down()  # not queued behind the slots only to fail there
        with self._slots:
            try:
                return self._call(lambda: self._client.infer(self.model, inputs, outputs=outputs,
                                                             client_timeout=self.timeout_s))
            except InferenceServerException as exc:  # not a per-product failure: the whole request failed
                raise ServeError(f"Triton at {self.url} failed a request of {n} products "
                                 f"([{products[0].id}]...): {exc.message()}", url=self.url,
                                 fix="see the Triton log") from None

    def _chunk(self, products: Sequence[ProductInput]) -> EncodedBatch:
        res = self._infer(products)
        errs = res.as_numpy(C.OUT_ERROR).reshape(-1)
        errors = [error_from_row(p.id, e.decode("utf-8", "replace")) if e else None for p, e in zip(products, errs)]
        return EncodedBatch([p.id for p in products], res.as_numpy(C.OUT_IMAGE), res.as_numpy(C.OUT_TEXT),
                            res.as_numpy(C.OUT_FUSED), errors)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="triton-encode")
            return self._pool

    # -- Encoder -------------------------------------------------------------------
    def encode_batch(self, products: Sequence[ProductInput]) -> EncodedBatch:
        """Encode any number of products: `batch_size` per request, up to
        `max_in_flight` requests at once. Row i of the result is products[i]."""
        items = list(products)
        for p in items:
            if not isinstance(p, ProductInput):
                raise InputError(f"expected ProductInput, got [{type(p).__name__}]", field="products",
                                 fix="wrap each product as ProductInput(id, image=bytes, text=str)")
            if p.text is not None and not isinstance(p.text, str):
                raise InputError(f"title must be str, got [{type(p.text).__name__}]", record=p.id, field="text")
            if p.image is not None and not isinstance(p.image, (bytes, bytearray)):
                raise InputError(f"photo must be encoded bytes, got [{type(p.image).__name__}]", record=p.id,
                                 field="image", fix="pass the JPEG/PNG/WebP file's bytes")
        if not items:
            return EncodedBatch.concat([], self.dim)
        # An oversize photo fails here, without shipping megabytes to the server.
        oversize = {i for i, p in enumerate(items) if p.image and len(p.image) > C.MAX_PHOTO_BYTES}
        send = [p for i, p in enumerate(items) if i not in oversize]
        chunks = [send[i:i + self.max_batch] for i in range(0, len(send), self.max_batch)]
        if len(chunks) == 1:
            parts = [self._chunk(chunks[0])]
        else:
            parts = list(self._executor().map(self._chunk, chunks))
        out = EncodedBatch.concat(parts, self.dim)
        if oversize:
            out = self._merge_oversize(items, out, oversize)
        return out

    def _merge_oversize(self, items, sent: EncodedBatch, oversize: set[int]) -> EncodedBatch:
        n = len(items)
        z = np.zeros((n, self.dim), np.float32)
        img, txt, fus, errors = z.copy(), z.copy(), z.copy(), [None] * n
        j = 0
        for i, p in enumerate(items):
            if i in oversize:
                errors[i] = error_from_row(
                    p.id, f"image: photo is {len(p.image)} bytes, {pp.OVER_LIMIT} {C.MAX_PHOTO_BYTES}")
                continue
            img[i], txt[i], fus[i], errors[i] = sent.image[j], sent.text[j], sent.fused[j], sent.errors[j]
            j += 1
        return EncodedBatch([p.id for p in items], img, txt, fus, errors)

    def encode(self, products, batch_size: int | None = None) -> EncodedBatch:
        if batch_size and batch_size != self.max_batch:
            return super().encode(products, batch_size)
        return self.encode_batch(list(products))

    # -- server facts ----------------------------------------------------------------
    def statistics(self, model: str | None = None) -> dict:
        """Triton's cumulative counters for a model: inference_count (products),
        execution_count (model runs); their ratio is the average batch size."""
        stats = self._call(lambda: self._client.get_inference_statistics(model or self.model, as_json=True))
        s = stats["model_stats"][0]
        return {"model": s["name"], "inference_count": int(s.get("inference_count", 0)),
                "execution_count": int(s.get("execution_count", 0))}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        try:
            self._client.close()
        finally:
            if self._on_close is not None:
                cb, self._on_close = self._on_close, None
                cb()

"""Product photos from a catalogue reference: a local path (relative to the
catalogue file), a `file://` or `data:` URI, an http(s) URL, or raw bytes (a
Parquet binary column).

Downloads have a timeout, bounded retries with backoff (connection errors, timeouts,
429 and 5xx only: a 404 will not heal by retrying) and a size cap that stops reading
at the limit rather than after it. Concurrency is bounded by the caller's thread
pool (the pipeline's photo stage) and by the HTTP client's connection limit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlparse

from samestyle import contract as C

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class PhotoError(Exception):
    """A photo that cannot be had; `kind` is a short code for the report."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class PhotoOptions:
    timeout: float = 10.0  # seconds, per attempt (connect, each read)
    retries: int = 2  # attempts after the first
    backoff: float = 0.5  # seconds before the first retry, doubled each time
    concurrency: int = 8  # parallel photo loads (pipeline pool size and HTTP connections)
    max_bytes: int = C.MAX_PHOTO_BYTES


def _oversize(n: int, limit: int) -> PhotoError:
    return PhotoError("oversize_photo", f"photo is {n} bytes, over the limit of {limit}")


def inline_uri(data: bytes) -> str:
    """What `image_uri` stores for a photo given inline (data: URI or bytes): a
    stable reference instead of megabytes of base64."""
    return "inline:sha256:" + hashlib.sha256(data).hexdigest()


class PhotoLoader:
    def __init__(self, base_dir: str | Path, options: PhotoOptions | None = None):
        self.base_dir = Path(base_dir)
        self.options = options or PhotoOptions()
        self._client = None
        self._lock = threading.Lock()

    # -- dispatch ---------------------------------------------------------------------
    def load(self, ref: str | bytes) -> bytes:
        """Photo bytes for a reference, or PhotoError naming why not."""
        if isinstance(ref, (bytes, bytearray, memoryview)):
            data = bytes(ref)
            if len(data) > self.options.max_bytes:
                raise _oversize(len(data), self.options.max_bytes)
            return data
        ref = ref.strip()
        low = ref[:8].lower()
        if low.startswith("data:"):
            return self._data_uri(ref)
        if low.startswith(("http://", "https://")):
            return self._http(ref)
        if low.startswith("file://"):
            return self._file(Path(unquote(urlparse(ref).path)))
        if "://" in ref[:16]:
            raise PhotoError("unreadable_photo", f"unsupported photo URI scheme in [{ref[:40]}]; "
                                                 "use a path, file://, data: or http(s)://")
        return self._file(self.base_dir / ref)

    def uri(self, ref: str | bytes, data: bytes | None) -> str:
        """What to store in `image_uri`: the reference as given, or an inline marker."""
        if isinstance(ref, (bytes, bytearray, memoryview)) or ref.strip()[:5].lower() == "data:":
            return inline_uri(data or b"")
        return ref.strip()

    # -- sources ----------------------------------------------------------------------
    def _file(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise PhotoError("unreadable_photo", f"photo file [{path}] does not exist") from None
        except OSError as exc:
            raise PhotoError("unreadable_photo", f"photo file [{path}]: {exc.strerror}") from None
        if not path.is_file():
            raise PhotoError("unreadable_photo", f"photo path [{path}] is not a file")
        if size > self.options.max_bytes:
            raise _oversize(size, self.options.max_bytes)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PhotoError("unreadable_photo", f"photo file [{path}]: {exc.strerror}") from None

    def _data_uri(self, ref: str) -> bytes:
        head, sep, payload = ref.partition(",")
        if not sep:
            raise PhotoError("unreadable_photo", "malformed data: URI (no comma)")
        is_b64 = head.lower().endswith(";base64")
        # Refuse before decoding: base64 is 4/3 of the bytes it carries.
        estimate = len(payload) * 3 // 4 if is_b64 else len(payload)
        if estimate > self.options.max_bytes + 3 and is_b64:
            raise _oversize(estimate, self.options.max_bytes)
        try:
            data = base64.b64decode(payload, validate=True) if is_b64 else unquote_to_bytes(payload)
        except (binascii.Error, ValueError) as exc:
            raise PhotoError("unreadable_photo", f"data: URI is not valid base64 ({exc})") from None
        if len(data) > self.options.max_bytes:
            raise _oversize(len(data), self.options.max_bytes)
        return data

    def _http_client(self):
        with self._lock:
            if self._client is None:
                import httpx

                n = max(1, self.options.concurrency)
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.options.timeout),
                    limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                    follow_redirects=True, headers={"User-Agent": "samestyle-ingest/0.1"},
                )
            return self._client

    def _http(self, url: str) -> bytes:
        import httpx

        client = self._http_client()
        opts = self.options
        last = ""
        for attempt in range(opts.retries + 1):
            if attempt:
                time.sleep(opts.backoff * (2 ** (attempt - 1)))
            try:
                with client.stream("GET", url) as resp:
                    if resp.status_code in RETRY_STATUS:
                        last = f"HTTP {resp.status_code}"
                        continue
                    if resp.status_code >= 400:
                        raise PhotoError("unreadable_photo", f"photo URL answered HTTP {resp.status_code}: {url}")
                    length = resp.headers.get("content-length")
                    if length and length.isdigit() and int(length) > opts.max_bytes:
                        raise _oversize(int(length), opts.max_bytes)
                    buf = bytearray()
                    for chunk in resp.iter_bytes():
                        buf += chunk
                        if len(buf) > opts.max_bytes:
                            raise _oversize(len(buf), opts.max_bytes)
                    return bytes(buf)
            except httpx.TimeoutException:
                last = f"timed out after {opts.timeout:g} s"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            except httpx.HTTPError as exc:  # invalid URL and the like: not retriable
                raise PhotoError("unreadable_photo", f"photo URL {url}: {exc}") from None
            log.debug("photo %s attempt %d failed: %s", url, attempt + 1, last)
        raise PhotoError("unreadable_photo", f"photo URL failed after {opts.retries + 1} attempts ({last}): {url}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

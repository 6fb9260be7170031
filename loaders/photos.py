"""Product photos from a catalogue reference: a local path (relative to the
catalogue file), a `file://` or `data:` URI, an http(s) URL, or raw bytes (a
Parquet binary column).

Downloads have a timeout, bounded retries with backoff (connection errors, timeouts,
429 and 5xx only: a 404 will not heal by retrying) and a size cap that stops reading
at the limit rather than after it. Concurrency is bounded by the caller's thread
pool (the pipeline's photo stage) and by the HTTP client's connection limit.

Confinement (a catalogue is untrusted input): a local path must resolve, symlinks
followed, inside the catalogue's folder or a folder given in `PhotoOptions.roots`;
`file://` is refused unless `allow_file_uri`; an http(s) URL is refused when its host
resolves to a loopback, private, link-local, multicast or otherwise reserved address
unless `allow_private_hosts`, checked for every address the name resolves to, on every
redirect (followed here, at most MAX_REDIRECTS), and the connection goes to the address
that was checked (no second lookup an attacker's DNS could answer differently).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlparse

from samestyle import contract as C

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
REDIRECT_STATUS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 5


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
    roots: tuple[str, ...] = ()  # folders local photos may come from, besides the catalogue's own
    allow_file_uri: bool = False  # file:// references (still confined to the roots)
    allow_private_hosts: bool = False  # http(s) to loopback / private / link-local addresses
    allow_networks: tuple[str, ...] = ()  # CIDRs allowed even when not public (an in-house image server)


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
        self.roots = [Path(r).resolve() for r in (self.base_dir, *self.options.roots)]
        self.networks = [ipaddress.ip_network(n, strict=False) for n in self.options.allow_networks]
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
            if not self.options.allow_file_uri:
                raise PhotoError("refused_photo", f"file:// photo references are off: [{ref[:80]}]; use a path "
                                                  "relative to the catalogue, or pass --allow-file-uri")
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
    def _confined(self, path: Path) -> Path:
        """The real path, when it lies inside one of the roots; PhotoError otherwise."""
        real = path.resolve()  # symlinks and .. resolved: a link pointing out is out
        if not any(real.is_relative_to(r) for r in self.roots):
            raise PhotoError("refused_photo", f"photo path [{path}] is outside the catalogue's folder "
                                              f"{self.roots[0]}; pass --photo-root to allow another folder")
        return real

    def _file(self, path: Path) -> bytes:
        path = self._confined(path)
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
                    follow_redirects=False, headers={"User-Agent": "samestyle-ingest/0.1"},
                )
            return self._client

    def _pinned(self, url: str) -> tuple[str, dict, dict]:
        """(URL with the host replaced by a checked address, headers, extensions) for
        one request; PhotoError when the host resolves to an address we refuse."""
        parts = urlparse(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise PhotoError("unreadable_photo", f"not an http(s) URL: {url[:80]}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, ValueError) as exc:
            raise PhotoError("unreadable_photo", f"photo host [{host}] does not resolve ({exc})") from None
        addrs = [ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos]
        # ::ffff:127.0.0.1 is loopback too, whatever this Python's is_global says of it
        addrs = [a.ipv4_mapped if a.version == 6 and a.ipv4_mapped else a for a in addrs]
        if not self.options.allow_private_hosts:
            for a in addrs:
                if (not a.is_global or a.is_multicast) and not any(a in n for n in self.networks):
                    raise PhotoError("refused_photo", f"photo URL host [{host}] resolves to {a}, a loopback, private "
                                                      "or link-local address; pass --allow-private-hosts (or "
                                                      "--allow-network CIDR) to allow it")
        a = addrs[0]
        ip = f"[{a}]" if a.version == 6 else str(a)
        netloc = ip + (f":{parts.port}" if parts.port else "")
        headers = {"Host": parts.netloc.rpartition("@")[2]}
        ext = {"sni_hostname": host} if parts.scheme == "https" else {}
        return parts._replace(netloc=netloc).geturl(), headers, ext

    def _http(self, url: str) -> bytes:
        import httpx

        client = self._http_client()
        opts = self.options
        last = ""
        original = url
        redirects = 0
        attempt = 0
        while attempt <= opts.retries:
            if attempt:
                time.sleep(opts.backoff * (2 ** (attempt - 1)))
            attempt += 1
            try:
                target, headers, ext = self._pinned(url)
                with client.stream("GET", target, headers=headers, extensions=ext) as resp:
                    if resp.status_code in REDIRECT_STATUS and resp.headers.get("location"):
                        redirects += 1
                        if redirects > MAX_REDIRECTS:
                            raise PhotoError("unreadable_photo", f"photo URL redirects more than {MAX_REDIRECTS} "
                                                                 f"times: {original}")
                        url = urljoin(url, resp.headers["location"])  # checked by _pinned on the next turn
                        attempt -= 1  # a redirect is not a failed attempt
                        continue
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
            log.debug("photo %s attempt %d failed: %s", url, attempt, last)
        raise PhotoError("unreadable_photo", f"photo URL failed after {opts.retries + 1} attempts ({last}): {url}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

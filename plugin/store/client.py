"""The pymilvus client and the one mapping of its errors onto the project's.

`connect(settings)` builds the MilvusClient every part of samestyle uses (through
`Store`); `wrap` turns whatever pymilvus raised into a SamestyleError.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..errors import SamestyleError, ServerUnavailable, StoreError


class CollectionNotFound(StoreError):
    code = "collection_not_found"
    user_error = True


def not_found(name: str) -> CollectionNotFound:
    return CollectionNotFound(f"collection [{name}] does not exist", collection=name,
                              fix="ingest a catalogue first (`samestyle ingest CATALOGUE`) or pass --collection")


NOT_LOADED_CODE = 101  # Milvus' CollectionNotLoaded (Milvus Lite's server uses it too)


def not_loaded(exc: Exception) -> bool:
    """Milvus refused because the collection is not loaded, or not yet: "collection ...
    is in state 'released'" / "... 'loading'" (Milvus Lite), "collection not loaded"."""
    if getattr(exc, "code", None) == NOT_LOADED_CODE:
        return True
    low = (getattr(exc, "message", None) or str(exc)).lower()
    return any(w in low for w in ("released", "not loaded", "not been loaded", "state 'loading'", "is loading"))


def wrap(exc: Exception, what: str, name: str | None) -> SamestyleError:
    """The project's error for a failed pymilvus call (SamestyleErrors pass through)."""
    if isinstance(exc, SamestyleError):
        return exc
    msg = getattr(exc, "message", None) or str(exc)
    low = msg.lower()
    code = getattr(exc, "code", None)
    if not_loaded(exc):
        # Transient: a restarted Milvus comes back with every collection released, and a
        # call racing the reload finds it loading. Retriable, so 503 with Retry-After.
        return ServerUnavailable(f"collection [{name}] is not loaded yet: Milvus {what} failed: {msg}",
                                 collection=name, fix="retry after a few seconds: the collection is being loaded "
                                                      "(GET /readyz loads a released one and says so)")
    if code in (2, 503) or any(w in low for w in ("unavailable", "connect", "deadline", "timed out", "closed channel")):
        return ServerUnavailable(f"Milvus {what} failed: {msg}", collection=name,
                                 fix="check SAMESTYLE_MILVUS_URI / SAMESTYLE_MILVUS_TOKEN and that Milvus is up")
    if "not exist" in low or "not found" in low or "can't find" in low:
        return CollectionNotFound(f"collection [{name}] does not exist ({msg})", collection=name,
                                  fix="ingest a catalogue first (`samestyle ingest CATALOGUE`) or pass --collection")
    return StoreError(f"Milvus {what} on [{name}] failed: {msg}", collection=name, milvus_code=code)


# pymilvus pings an idle-looking channel every 10 s; Milvus Lite's gRPC server (like
# any gRPC server with default enforcement) answers a long call that pings that often
# with GOAWAY "too_many_pings", which drops the call mid-way: an index build of 100k+
# rows then failed on its retry with "index already exists". Ping every 5 min instead
# (the gRPC default minimum the server permits), only while a call is open.
GRPC_OPTIONS = {
    "grpc.keepalive_time_ms": 300_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": False,
    # A server that went away and came back (a restarted Milvus Lite under `serve`) is
    # found again within 2 s: gRPC's reconnect backoff otherwise grows to 2 min, and
    # channels to the same address share it unless each has its own subchannel pool.
    "grpc.max_reconnect_backoff_ms": 2_000,
    "grpc.use_local_subchannel_pool": 1,
}


def _import_scipy_sparse() -> None:
    """Import scipy.sparse now, in one thread. pymilvus imports it lazily on a client's
    first search, and scipy.sparse's import is not safe to run from several
    threads at once: under `serve`, 8 first searches arriving together failed with
    "partially initialized module 'scipy.sparse._bsr' has no attribute 'bsr_array'"
    (502 store_error). Without scipy, pymilvus does not import it either."""
    try:
        import scipy.sparse  # noqa: F401
    except ImportError:
        pass


def client(uri: str, token: str = "", timeout: float | None = None):
    """A MilvusClient with the project's channel options (see GRPC_OPTIONS); `timeout`
    bounds the wait for the server (pymilvus' default otherwise)."""
    from pymilvus import MilvusClient

    _import_scipy_sparse()
    kw = {"timeout": timeout} if timeout is not None else {}
    return MilvusClient(uri=uri, token=token, grpc_options=dict(GRPC_OPTIONS), **kw)


def connect(settings: Settings):
    """MilvusClient for the settings: the embedded Milvus Lite file under the data
    directory when SAMESTYLE_MILVUS_URI is unset, else that URI (+ token)."""
    uri = settings.resolved_milvus_uri
    if uri.endswith(".db"):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return client(uri, settings.milvus_token or "")
    except Exception as exc:  # noqa: BLE001 - pymilvus raises several types on connect
        raise ServerUnavailable(f"cannot connect to Milvus at [{uri}]: {exc}", uri=uri,
                                fix="check SAMESTYLE_MILVUS_URI (unset = embedded Milvus Lite under "
                                    "SAMESTYLE_DATA_DIR) and SAMESTYLE_MILVUS_TOKEN") from None

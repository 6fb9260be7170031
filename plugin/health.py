"""Readiness of the serving stack, one part at a time (`GET /readyz`).

Three checks, each with its own time limit, so a slow or dead part is named and never
blamed on another:

- `milvus`: the server answers (list_collections);
- `collection`: the collection behind the alias exists and is loaded. A released one
  (a restarted Milvus Lite server comes back with every collection released) is
  loaded again here, and the answer says it was (`"was": "released"`);
- `triton`: the Triton the encoders use (SAMESTYLE_TRITON_URL) is ready and serves
  the entry model. Without a URL a local Triton starts on the first text or photo
  search: `ok` is null then, and does not make the stack unready.

The stack is ready when no check failed. Product searches need no encoder: with
Triton down they keep answering while /readyz says `triton` failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from . import contract as C

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 3.0


def check_milvus(store) -> dict:
    store.ping(timeout=CHECK_TIMEOUT_S)
    return {"ok": True}


def check_collection(store, collection: str) -> dict:
    """Exists and is loaded; a released collection is loaded again (and said)."""
    name = store.alias_target(collection) or collection
    if not store.exists(name):
        return {"ok": False, "name": collection, "error": f"collection [{collection}] does not exist",
                "fix": "ingest a catalogue first (`samestyle ingest CATALOGUE`)"}
    state = store.load_state(name)
    out = {"ok": state == "Loaded", "name": name, "state": state}
    if state != "Loaded":
        log.warning("readyz: collection %s is %s; loading it", name, state)
        store.load(name, timeout=CHECK_TIMEOUT_S * 3)
        now = store.load_state(name)
        out.update(ok=now == "Loaded", state=now, was={"NotLoad": "released"}.get(state, state.lower()))
        if now != "Loaded":
            out["error"] = f"collection [{name}] is {now.lower()}, not loaded"
    return out


def check_triton(url: str | None) -> dict:
    if not url:
        return {"ok": None, "detail": "no SAMESTYLE_TRITON_URL: a local Triton starts with the first text or "
                                      "photo search"}
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(url) as c:
        if not c.is_server_ready(client_timeout=CHECK_TIMEOUT_S):
            return {"ok": False, "url": url, "error": f"Triton at {url} is not ready"}
        if not c.is_model_ready(C.ENTRY_MODEL, client_timeout=CHECK_TIMEOUT_S):
            return {"ok": False, "url": url, "error": f"Triton at {url} does not serve [{C.ENTRY_MODEL}]"}
    return {"ok": True, "url": url}


async def _run(fn: Callable[[], dict], what: str, limit_s: float) -> dict:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn), limit_s)
    except asyncio.TimeoutError:
        return {"ok": False, "error": f"{what} did not answer within {limit_s:g} s"}
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        msg = getattr(exc, "message", None)
        msg = msg() if callable(msg) else msg  # tritonclient's message is a method
        return {"ok": False, "error": f"{what}: {msg or exc}"[:500], "fix": getattr(exc, "fix", None)}


async def readiness(get_store: Callable[[], object], collection: str, triton_url: str | None) -> dict:
    """{"ready": bool, "failed": [names], "checks": {milvus, collection, triton}}."""
    checks: dict[str, dict] = {}
    store = None

    def milvus():
        nonlocal store
        store = get_store()
        return check_milvus(store)

    checks["milvus"] = await _run(milvus, "Milvus", CHECK_TIMEOUT_S * 2)
    if checks["milvus"]["ok"]:
        checks["collection"] = await _run(lambda: check_collection(store, collection), "the collection",
                                          CHECK_TIMEOUT_S * 4)
    else:
        checks["collection"] = {"ok": False, "name": collection, "error": "not checked: Milvus does not answer"}
    checks["triton"] = await _run(lambda: check_triton(triton_url), "Triton", CHECK_TIMEOUT_S * 2)
    # The collection is not a failure of its own when Milvus is the one down.
    failed = [k for k, v in checks.items() if v.get("ok") is False and not (k == "collection" and
                                                                            not checks["milvus"]["ok"])]
    return {"ready": not failed and checks["collection"]["ok"] is True, "failed": failed, "checks": checks}

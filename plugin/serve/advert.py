"""What `samestyle serve` leaves in the data directory so that other commands use the
running stack instead of starting their own: <data dir>/serve.json with the owner's
pid and the Triton, Milvus and HTTP endpoints.

Standard library only (the CLI reads it before importing anything heavy). A file
whose pid is gone, or whose endpoints do not accept a connection, is ignored (and left
alone: reading commands change nothing on disk); `serve` removes its own on exit."""

from __future__ import annotations

import atexit
import json
import os
import socket
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

FILE = "serve.json"


def path(data_dir: str | Path) -> Path:
    return Path(data_dir) / FILE


def write(data_dir: str | Path, info: dict) -> Path:
    """Advertise `info` (triton_url, milvus_uri, http_url...) for this process; the
    file goes away when the process exits normally."""
    p = path(data_dir)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = {**info, "pid": os.getpid()}
    tmp = p.with_name(f".{FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, p)
    atexit.register(remove, data_dir)
    return p


def remove(data_dir: str | Path) -> None:
    """Remove the advert if it is this process's own."""
    p = path(data_dir)
    try:
        if json.loads(p.read_text()).get("pid") == os.getpid():
            p.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _host_port(url: str | None) -> tuple[str, int] | None:
    if not url:
        return None
    u = urlsplit(url if "://" in url else f"grpc://{url}")
    return (u.hostname, u.port) if u.hostname and u.port else None


def _answers(url: str | None, timeout: float = 0.3) -> bool:
    hp = _host_port(url)
    if hp is None:
        return False
    try:
        with socket.create_connection(hp, timeout=timeout):
            return True
    except OSError:
        return False


def find(data_dir: str | Path) -> dict | None:
    """The running stack advertised in `data_dir`, or None (no file, a dead owner, or
    endpoints that refuse connections)."""
    try:
        info = json.loads(path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _alive(info.get("pid")):
        return None
    for key in ("triton_url", "http_url"):
        if info.get(key) and not _answers(info[key]):
            return None
    milvus = info.get("milvus_uri")
    if milvus and "://" in milvus and not _answers(milvus):
        return None
    return info


def apply(settings, info: dict | None = None):
    """`settings` with the advertised Triton and Milvus filled in where the environment
    names none; (settings, info) where info is the advert used, or None."""
    info = find(settings.data_dir) if info is None else info
    if not info:
        return settings, None
    kw = {}
    if not settings.triton_url and info.get("triton_url"):
        kw["triton_url"] = info["triton_url"]
    if not settings.milvus_uri and info.get("milvus_uri"):
        kw["milvus_uri"] = info["milvus_uri"]
    if not kw:
        return settings, None
    return replace(settings, **kw), info

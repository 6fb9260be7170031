"""The local stack: Triton (unless SAMESTYLE_TRITON_URL names one) and a Milvus Lite
server (unless SAMESTYLE_MILVUS_URI names a Milvus), started together and stopped
together. Every command that needs encoders goes through `encoder_for`, which starts
a local Triton only when no URL is configured."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..config import Settings, onnx_root
from ..encoders.triton import TritonEncoder
from ..errors import ServeError
from ..model import manifest
from ..triton_repo import SKELETON, build_repository, missing_files, repo_manifest
from .milvus import MilvusServer
from .reap import log_dir, reap_stale
from .triton import TritonServer

log = logging.getLogger(__name__)
PROGRESS = "samestyle.progress"  # one-line notes the CLI prints on stderr


def read_manifest(model_dir) -> dict:
    """The model manifest as written (model.manifest.read_manifest also checks it
    against this samestyle; commands that only need the version use this)."""
    path = Path(model_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return manifest.read_manifest(model_dir)  # raises the full, explained error


def onnx_bundle(model_dir) -> Path:
    """The ONNX bundle of the model (exported once, with torch, when missing)."""
    out = onnx_root() / read_manifest(model_dir)["model_version"]
    if (out / "manifest.json").exists():
        return out
    logging.getLogger(PROGRESS).info("exporting the model to ONNX (once per model version)…")
    from ..export import ensure_onnx

    return ensure_onnx(model_dir)


def ensure_repository(settings: Settings, *, export: bool = True) -> Path:
    """The Triton repository for settings.model_dir, built (ONNX export included) when
    it is incomplete or serves another model version and `export` is allowed."""
    repo = Path(settings.triton_repo)
    want = read_manifest(settings.model_dir)["model_version"]
    have = (repo_manifest(repo) or {}).get("model_version")
    if not missing_files(repo) and have == want:
        return repo
    if not export:
        why = "is incomplete" if missing_files(repo) else f"serves [{have}], not [{want}]"
        raise ServeError(f"model repository {repo} {why}", repository=str(repo),
                         fix=f"run `samestyle export --out {repo}`")
    if repo.resolve() != SKELETON.resolve() and (repo / "product_encoder" / "config.pbtxt").exists():
        log.warning("rebuilding repository %s for model %s (was %s)", repo, want, have)
    from ..export import ensure_onnx

    log.info("preparing Triton repository %s for %s (ONNX export, once per model version)", repo, want)
    build_repository(ensure_onnx(settings.model_dir), repo)
    return repo


def start_triton(settings: Settings, *, grpc_port: int | None = None, export: bool = True) -> TritonServer:
    repo = ensure_repository(settings, export=export)
    logging.getLogger(PROGRESS).info("starting a local Triton (~15 s)…")
    return TritonServer(repo, serve_python=settings.serve_python, log_dir=log_dir(settings), grpc_port=grpc_port).start()


@dataclass
class Stack:
    """What `local_stack` started. `settings` carries the URLs to use either way."""

    settings: Settings
    triton: TritonServer | None = None
    milvus: MilvusServer | None = None

    def describe(self) -> dict:
        return {
            "triton_url": self.settings.triton_url,
            "triton_started_here": self.triton is not None,
            "triton_log": str(self.triton.log_path) if self.triton else None,
            "milvus_uri": self.settings.resolved_milvus_uri,
            "milvus_started_here": self.milvus is not None,
            "milvus_data": str(self.milvus.data_dir) if self.milvus else None,
        }


@contextlib.contextmanager
def local_stack(settings: Settings, *, need_triton: bool = True, need_milvus: bool = True,
                triton_grpc_port: int | None = None, milvus_port: int | None = None,
                export: bool = True) -> Iterator[Stack]:
    """Start what is not configured, yield a Stack whose `settings` point at it, and
    stop everything started here on exit (also on error or Ctrl-C)."""
    stack = Stack(settings)
    reap_stale(settings)
    with contextlib.ExitStack() as es:
        if need_triton and not settings.triton_url:
            stack.triton = start_triton(settings, grpc_port=triton_grpc_port, export=export)
            es.callback(stack.triton.stop)
            stack.settings = stack.settings.with_(triton_url=stack.triton.url)
        if need_milvus and not settings.milvus_uri:
            Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
            stack.milvus = MilvusServer(settings.embedded_milvus_uri, log_dir=log_dir(settings),
                                        port=milvus_port).start()
            es.callback(stack.milvus.stop)
            stack.settings = stack.settings.with_(milvus_uri=stack.milvus.uri)
        yield stack


def encoder_for(settings: Settings, **client_kw):
    """A connected TritonEncoder: to SAMESTYLE_TRITON_URL when set, else to a local
    Triton started now and stopped when the encoder is closed. Use it as a context
    manager (`with encoder_for(s) as enc:`) or call close()."""
    if settings.triton_url:
        enc = TritonEncoder(settings.triton_url, **client_kw)
    else:
        server = start_triton(settings)
        try:
            enc = TritonEncoder(server.url, on_close=server.stop, **client_kw)
        except BaseException:
            server.stop()
            raise
    try:
        want = read_manifest(settings.model_dir)["model_version"]
        if enc.model_version != want:
            log.warning("Triton at %s serves model %s, SAMESTYLE_MODEL is %s", enc.url, enc.model_version, want)
    except Exception:  # a remote server may serve a model we do not have locally
        pass
    return enc

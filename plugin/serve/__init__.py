"""Local serving: tritonserver (nvidia-pytriton's, serving env) and Milvus Lite as
child processes that never outlive their owner. See stack.local_stack and
stack.encoder_for for the entry points commands use; `advert` is what `serve` leaves
in the data directory for other commands to find."""

from __future__ import annotations

import importlib

__all__ = ["MilvusServer", "Stack", "TritonServer", "encoder_for", "ensure_repository", "local_stack", "start_triton"]
_WHERE = {"MilvusServer": "milvus", "TritonServer": "triton"}


def __getattr__(name: str):
    # Lazy, so `samestyle.serve.advert` (read by every CLI command) imports nothing else.
    if name in __all__:
        return getattr(importlib.import_module(f".{_WHERE.get(name, 'stack')}", __name__), name)
    raise AttributeError(name)

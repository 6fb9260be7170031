"""samestyle: same-style product retrieval over Milvus, with encoders on Triton.

`samestyle.connect(...)` is the Python API for services (docs/python-api.md); the
pure Milvus request builders for callers that use pymilvus directly are in
samestyle.query.requests (docs/collection-contract.md). Importing this package is
cheap: everything below is imported on first use."""

from __future__ import annotations

import importlib

__all__ = ["connect", "Client", "SearchOptions", "SearchResult", "Hit", "BatchResult", "UpsertReport",
           "SamestyleError", "InputError", "ServerUnavailable"]
_WHERE = {
    "connect": "api", "Client": "api",
    "SearchOptions": "query.options", "SearchResult": "query.results", "Hit": "query.results",
    "BatchResult": "query.results", "UpsertReport": "products",
    "SamestyleError": "errors", "InputError": "errors", "ServerUnavailable": "errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'samestyle' has no attribute {name!r}")

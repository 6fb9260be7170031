"""Same-style search: typed filters (`filters`), pure Milvus request builders for
other services (`requests`), per-category weight profiles (`profiles`), and the
Python API (`search.Searcher`). Nothing here talks to Milvus except through
samestyle.store.search."""

from __future__ import annotations

__all__ = ["Searcher", "SearchOptions", "SearchResult", "Hit"]


def __getattr__(name: str):
    # Lazy, so `import samestyle.query.filters` (used by samestyle.store) stays light.
    if name in __all__:
        from . import search

        return getattr(search, name)
    raise AttributeError(name)

"""Same-style search: typed filters (`filters`), pure Milvus request builders for
other services (`requests`), per-category weight profiles (`profiles`), and the
Python API (`search.Searcher`, `search.SearchOptions`, `search.SearchResult`,
`search.Hit`). Nothing here talks to Milvus except through samestyle.store.search.
This package re-exports nothing, so `import samestyle.query.filters` stays light."""

"""Same-style search: typed filters (`filters`), pure Milvus request builders for
other services (`requests`), per-category weight profiles (`profiles`), the options every
search takes (`options.SearchOptions`), what a search returns (`results.SearchResult`,
`results.Hit`, `results.BatchResult`), and the Python API (`search.Searcher`, which also
re-exports those names). Nothing here talks to Milvus except through samestyle.store.search.
This package re-exports nothing, so `import samestyle.query.filters` stays light."""

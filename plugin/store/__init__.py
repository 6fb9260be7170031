"""Milvus storage. `Store` is the one owner of pymilvus calls: `collections` creates,
checks, fills and switches the versioned product collections, `search` (mixed into
`Store`) describes, loads, fetches, counts, searches and scans; `client` builds the
MilvusClient and maps its errors; `spec` reads milvus/*.json and builds schemas and
index parameters (pure); `expr` renders escaped expression literals (pure);
`requests` turns the query layer's plans into pymilvus requests and rankers (pure).

Queries should filter on `has_image` / `has_text`: a product without a photo stores
the zero vector in `image_vec` (it scores 0 under IP, but still occupies a slot in
the top-k of an image search over a sparse category)."""

from .collections import CollectionInfo, CollectionNotFound, Store, connect
from .expr import ids_expr, quote
from .spec import (
    CollectionSpec,
    FieldSpec,
    IndexProfile,
    build_index_params,
    build_schema,
    load_collection_spec,
    load_index_profiles,
    physical_name,
    search_params,
)

__all__ = [
    "CollectionInfo", "CollectionNotFound", "CollectionSpec", "FieldSpec", "IndexProfile", "Store", "connect",
    "build_index_params", "build_schema", "ids_expr", "quote", "load_collection_spec", "load_index_profiles", "physical_name",
    "search_params",
]

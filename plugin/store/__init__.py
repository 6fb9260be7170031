"""Milvus storage. `collections` creates, checks, fills and switches the versioned
product collections (the only collection-management code that talks to pymilvus);
`spec` reads milvus/*.json and builds schemas and index parameters (pure); `search`
holds the query layer's search calls.

Queries should filter on `has_image` / `has_text`: a product without a photo stores
the zero vector in `image_vec` (it scores 0 under IP, but still occupies a slot in
the top-k of an image search over a sparse category)."""

from .collections import CollectionInfo, CollectionNotFound, Store, connect
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
    "build_index_params", "build_schema", "load_collection_spec", "load_index_profiles", "physical_name",
    "search_params",
]

"""The product collection as data: `milvus/collection.json` (fields) and
`milvus/indexes.json` (index parameters per deployment profile), and the pure
builders that turn them plus a model manifest into pymilvus objects.

Nothing here talks to a server, so the builders get table-driven unit tests and a
Milvus cluster, Milvus Lite and the tests all build the collection the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import contract as C
from ..config import resource
from ..errors import ConfigError

SPEC_DIR = resource("milvus")
PROFILES = ("lite", "hnsw", "diskann", "gpu_cagra")
SCALAR_TYPES = ("VARCHAR", "BOOL", "INT64", "FLOAT", "DOUBLE", "JSON")
VECTOR_TYPES = ("FLOAT_VECTOR",)
# Roles every collection needs; the pipeline fills them, so they cannot be renamed away.
REQUIRED_ROLES = ("id", "title", "image", "category", "content_hash", "model_version", "has_image", "has_text")
PROP_MODEL_VERSION = "samestyle.model_version"
PROP_EMBED_DIM = "samestyle.embed_dim"
PROP_SCHEMA_VERSION = "samestyle.schema_version"
PROP_STATE = "samestyle.state"  # "building" until an ingest/reindex completes, then "complete"
PROP_COMPOSITE = "samestyle.composite"  # name of the composite field, when the collection has one
# How many of the last dimensions carry colour apart (FusionConfig.colour_dims), when the
# model keeps colour apart; absent means 0 (a collection filled before, or by a model without)
PROP_COLOUR_DIMS = "samestyle.colour_dims"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    role: str
    max_length: int | None = None
    is_primary: bool = False
    nullable: bool = False
    view: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def is_vector(self) -> bool:
        return self.type in VECTOR_TYPES


@dataclass(frozen=True)
class CollectionSpec:
    fields: tuple[FieldSpec, ...]
    schema_version: int = 1
    description: str = ""
    enable_dynamic_field: bool = True
    partition_key: str | None = None

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def by_role(self, role: str) -> FieldSpec:
        for f in self.fields:
            if f.role == role:
                return f
        raise KeyError(role)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def vector_fields(self) -> dict[str, str]:
        """view -> field name, in contract.VIEWS order."""
        by_view = {f.view: f.name for f in self.fields if f.is_vector}
        return {v: by_view[v] for v in C.VIEWS}

    @property
    def attribute_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.role == "attribute")

    @property
    def scalar_output_fields(self) -> list[str]:
        """Every non-vector field, for query/get output (vectors are never fetched by default)."""
        return [f.name for f in self.fields if not f.is_vector]


@dataclass(frozen=True)
class IndexProfile:
    name: str
    vector_index: Mapping[str, Any]
    search_params: Mapping[str, Any]
    partition_key: bool = True
    num_partitions: int | None = None
    scalar_indexes: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    shards_num: int | None = None  # Milvus default when None
    consistency_level: str | None = None  # Strong / Bounded / Session / Eventually
    composite: "CompositeSpec | None" = None  # one field holding every view side by side


@dataclass(frozen=True)
class CompositeSpec:
    """An optional extra vector field holding a product's three unit vectors side by
    side ([image, text, fused], 3 x embed_dim). With inner product,
    sum_i w_i <q_i, v_i> = <[w_1 q_1, w_2 q_2, w_3 q_3], [v_1, v_2, v_3]>, so one ANN
    call on it answers a weighted multi-field search exactly, for any query-time
    weights (3x the vector storage). Milvus Lite pays a pass over every stored row per
    call, so this is where it matters; servers keep hybrid_search."""

    field: str
    vector_index: Mapping[str, Any]
    search_params: Mapping[str, Any] = field(default_factory=dict)


CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")


def _bad(path: Path, msg: str) -> ConfigError:
    return ConfigError(f"[{path}]: {msg}", fix="fix the file (see the $comment at its top) or restore it from git")


def parse_collection_spec(data: Mapping, path: Path = Path("collection.json")) -> CollectionSpec:
    """Validate and type the collection definition; every problem names the field."""
    fields: list[FieldSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("fields") or []):
        name = raw.get("name")
        if not isinstance(name, str) or not _IDENT.match(name):
            raise _bad(path, f"fields[{i}] has an invalid name [{name}]")
        if name in seen:
            raise _bad(path, f"field [{name}] is defined twice")
        seen.add(name)
        ftype = str(raw.get("type", "")).upper()
        if ftype not in SCALAR_TYPES + VECTOR_TYPES:
            raise _bad(path, f"field [{name}] has type [{raw.get('type')}], expected one of {SCALAR_TYPES + VECTOR_TYPES}")
        max_length = raw.get("max_length")
        if ftype == "VARCHAR" and not (isinstance(max_length, int) and 1 <= max_length <= 65535):
            raise _bad(path, f"VARCHAR field [{name}] needs max_length in 1..65535 (bytes), got [{max_length}]")
        view = raw.get("view")
        if ftype in VECTOR_TYPES and view not in C.VIEWS:
            raise _bad(path, f"vector field [{name}] has view [{view}], expected one of {C.VIEWS}")
        fields.append(FieldSpec(
            name=name, type=ftype, role=str(raw.get("role") or ("vector" if view else "attribute")),
            max_length=max_length, is_primary=bool(raw.get("is_primary")), nullable=bool(raw.get("nullable")),
            view=view, columns=tuple(raw.get("columns") or ()),
        ))
    spec = CollectionSpec(
        fields=tuple(fields), schema_version=int(data.get("schema_version", 1)),
        description=str(data.get("description", "")), enable_dynamic_field=bool(data.get("enable_dynamic_field", True)),
        partition_key=data.get("partition_key"),
    )
    primaries = [f.name for f in fields if f.is_primary]
    if len(primaries) != 1 or spec.field(primaries[0]).role != "id":
        raise _bad(path, f"exactly one primary key, with role \"id\", is needed; found {primaries}")
    for role in REQUIRED_ROLES:
        if not any(f.role == role for f in fields):
            raise _bad(path, f"no field has role [{role}]")
    views = sorted(f.view for f in fields if f.is_vector)
    if views != sorted(C.VIEWS):
        raise _bad(path, f"vector fields cover views {views}, expected one per view {list(C.VIEWS)}")
    if spec.partition_key is not None and spec.partition_key not in seen:
        raise _bad(path, f"partition_key [{spec.partition_key}] is not a field")
    return spec


def parse_index_profiles(data: Mapping, path: Path = Path("indexes.json")) -> dict[str, IndexProfile]:
    out: dict[str, IndexProfile] = {}
    for name, raw in (data.get("profiles") or {}).items():
        vi = raw.get("vector_index") or {}
        if not vi.get("index_type"):
            raise _bad(path, f"profile [{name}] has no vector_index.index_type")
        shards = raw.get("shards_num")
        if shards is not None and (not isinstance(shards, int) or isinstance(shards, bool) or shards < 1):
            raise _bad(path, f"profile [{name}] has shards_num [{shards}]: want an integer >= 1")
        level = raw.get("consistency_level")
        if level is not None and level not in CONSISTENCY_LEVELS:
            raise _bad(path, f"profile [{name}] has consistency_level [{level}]: want one of {', '.join(CONSISTENCY_LEVELS)}")
        out[name] = IndexProfile(
            name=name, vector_index={"index_type": vi["index_type"], "params": dict(vi.get("params") or {})},
            search_params=dict(raw.get("search_params") or {}), partition_key=bool(raw.get("partition_key", True)),
            num_partitions=raw.get("num_partitions"), scalar_indexes=dict(raw.get("scalar_indexes") or {}),
            description=str(raw.get("description", "")), shards_num=shards, consistency_level=level,
            composite=_parse_composite(name, raw.get("composite"), path),
        )
    missing = [p for p in PROFILES if p not in out]
    if missing:
        raise _bad(path, f"profiles {missing} are missing")
    return out


def _parse_composite(profile: str, raw, path: Path) -> CompositeSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad(path, f"profile [{profile}] has composite [{raw}]: want an object or null")
    name = raw.get("field")
    if not isinstance(name, str) or not _IDENT.match(name):
        raise _bad(path, f"profile [{profile}] composite has an invalid field name [{name}]")
    vi = raw.get("vector_index") or {}
    if not vi.get("index_type"):
        raise _bad(path, f"profile [{profile}] composite has no vector_index.index_type")
    return CompositeSpec(name, {"index_type": vi["index_type"], "params": dict(vi.get("params") or {})},
                         dict(raw.get("search_params") or {}))


def composite_vector(parts: Sequence) -> np.ndarray:
    """The composite of per-view vectors (or weighted query vectors), in contract.VIEWS
    order; a missing part is zeros of the others' length."""
    dims = {len(p) for p in parts if p is not None}
    if len(dims) != 1:
        raise ValueError(f"composite parts need one common length, got {sorted(dims)}")
    d = dims.pop()
    return np.concatenate([np.zeros(d, np.float32) if p is None else np.asarray(p, np.float32).reshape(-1)
                           for p in parts])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"[{path}] is missing", fix="restore milvus/ from the samestyle repository") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, f"not valid JSON ({exc})") from None


def load_collection_spec(path: str | Path | None = None) -> CollectionSpec:
    p = Path(path) if path else SPEC_DIR / "collection.json"
    return parse_collection_spec(_read_json(p), p)


def load_index_profiles(path: str | Path | None = None) -> dict[str, IndexProfile]:
    p = Path(path) if path else SPEC_DIR / "indexes.json"
    return parse_index_profiles(_read_json(p), p)


def index_profile(name: str, profiles: Mapping[str, IndexProfile] | None = None) -> IndexProfile:
    profiles = profiles if profiles is not None else load_index_profiles()
    if name not in profiles:
        raise ConfigError(f"unknown Milvus index profile [{name}]",
                          fix=f"set SAMESTYLE_MILVUS_PROFILE to one of {', '.join(sorted(profiles))}")
    return profiles[name]


def search_params(profile: str) -> dict:
    """What the query layer passes as `search_params` for this profile (metric included)."""
    p = index_profile(profile)
    return {"metric_type": C.METRIC, "params": dict(p.search_params)}


# --- pure builders --------------------------------------------------------------------
def _embed_dim(manifest: Mapping) -> int:
    dim = manifest.get("embed_dim")
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"model manifest has embed_dim [{dim}]", fix="use a manifest written by `samestyle train`")
    return dim


def build_schema(spec: CollectionSpec, manifest: Mapping, profile: IndexProfile):
    """CollectionSchema for `spec` with vector dimension from the model manifest."""
    from pymilvus import DataType, MilvusClient

    dim = _embed_dim(manifest)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=spec.enable_dynamic_field,
                                        description=spec.description)
    for f in spec.fields:
        kw: dict[str, Any] = {}
        if f.type == "VARCHAR":
            kw["max_length"] = f.max_length
        if f.is_vector:
            kw["dim"] = dim
        if f.is_primary:
            kw["is_primary"] = True
        if f.nullable:
            kw["nullable"] = True
        if profile.partition_key and f.name == spec.partition_key:
            kw["is_partition_key"] = True
        schema.add_field(f.name, getattr(DataType, f.type), **kw)
    if profile.composite is not None:
        if profile.composite.field in spec.names:
            raise ConfigError(f"composite field [{profile.composite.field}] of profile [{profile.name}] is also a "
                              f"field of the collection definition", fix="give the composite field its own name")
        schema.add_field(profile.composite.field, DataType.FLOAT_VECTOR, dim=len(C.VIEWS) * dim)
    return schema


def build_index_params(spec: CollectionSpec, profile: IndexProfile):
    """One vector index per view field (metric IP) plus the profile's scalar indexes."""
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    for name in spec.vector_fields.values():
        params.add_index(field_name=name, index_name=name, index_type=profile.vector_index["index_type"],
                         metric_type=C.METRIC, params=dict(profile.vector_index["params"]))
    if profile.composite is not None:
        comp = profile.composite
        params.add_index(field_name=comp.field, index_name=comp.field, index_type=comp.vector_index["index_type"],
                         metric_type=C.METRIC, params=dict(comp.vector_index["params"]))
    for name, itype in profile.scalar_indexes.items():
        if name in spec.names:  # a profile may name attributes a trimmed-down spec lacks
            params.add_index(field_name=name, index_name=name, index_type=itype)
    return params


def create_options(spec: CollectionSpec, profile: IndexProfile) -> dict:
    """create_collection's keyword options under the index profile: partitions (when
    the profile uses the partition key), shards and consistency level."""
    kw: dict = {}
    if profile.partition_key and spec.partition_key and profile.num_partitions:
        kw["num_partitions"] = profile.num_partitions
    if profile.shards_num:
        kw["shards_num"] = profile.shards_num
    if profile.consistency_level:
        kw["consistency_level"] = profile.consistency_level
    return kw


def collection_properties(spec: CollectionSpec, manifest: Mapping, state: str = "building",
                          profile: IndexProfile | None = None) -> dict[str, str]:
    """Stored with the collection, so a reader can check it holds this model's vectors
    (and, when it has one, find the composite field whatever its own profile says)."""
    props = {
        PROP_MODEL_VERSION: str(manifest["model_version"]),
        PROP_EMBED_DIM: str(_embed_dim(manifest)),
        PROP_SCHEMA_VERSION: str(spec.schema_version),
        PROP_STATE: state,
    }
    if profile is not None and profile.composite is not None:
        props[PROP_COMPOSITE] = profile.composite.field
    colour_dims = manifest_colour_dims(manifest)
    if colour_dims:
        props[PROP_COLOUR_DIMS] = str(colour_dims)
    return props


def manifest_colour_dims(manifest: Mapping) -> int:
    """The model's colour dimensions (`fusion.colour_dims`; 0 when it keeps no colour
    apart), checked against its embed_dim."""
    raw = (manifest.get("fusion") or {}).get("colour_dims", 0)
    dim = _embed_dim(manifest)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < dim:
        raise ConfigError(f"model manifest has fusion.colour_dims [{raw}], want an integer in 0..{dim - 1}",
                          fix="use a manifest written by `samestyle train`")
    return raw


def composite_field(desc: Mapping) -> str | None:
    """The composite field of a described collection (None when it has none)."""
    name = (desc.get("properties") or {}).get(PROP_COMPOSITE)
    if name and any(f.get("name") == name for f in desc.get("fields", [])):
        return name
    return None


def physical_name(alias: str, version: int) -> str:
    """`<alias>_v<N>`; for the default alias this is contract.collection_name(N)."""
    if version < 1:
        raise ValueError(f"collection version must be >= 1, got [{version}]")
    if alias == C.COLLECTION_ALIAS:
        return C.collection_name(version)
    return f"{alias}_v{version}"


def parse_version(alias: str, name: str) -> int | None:
    """N for `<alias>_v<N>`, None for any other name."""
    m = re.fullmatch(re.escape(alias) + r"_v([1-9][0-9]*)", name)
    return int(m.group(1)) if m else None


def split_physical(name: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"(.+)_v([1-9][0-9]*)", name)
    return (m.group(1), int(m.group(2))) if m else None

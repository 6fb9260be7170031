"""Pure builders of samestyle.store.spec: the collection definition and index profiles
as data -> pymilvus schema and index parameters. Table-driven."""

from __future__ import annotations

import copy
import json

import pytest

from samestyle import contract as C
from samestyle.errors import ConfigError, SchemaMismatch
from samestyle.store import search as reads
from samestyle.store import spec as S

MANIFEST = {"model_version": "ss-128d-abc", "embed_dim": 128}


@pytest.fixture(scope="module")
def raw_spec() -> dict:
    return json.loads((S.SPEC_DIR / "collection.json").read_text())


def _mutate(raw: dict, fn) -> dict:
    d = copy.deepcopy(raw)
    fn(d)
    return d


def _field(d: dict, name: str) -> dict:
    return next(f for f in d["fields"] if f["name"] == name)


BAD_SPECS = [
    ("duplicate field", lambda d: d["fields"].append(dict(d["fields"][1])), "defined twice"),
    ("unknown type", lambda d: _field(d, "title").update(type="TEXT"), "has type [TEXT]"),
    ("varchar without max_length", lambda d: _field(d, "title").pop("max_length"), "needs max_length"),
    ("varchar too long", lambda d: _field(d, "title").update(max_length=70000), "needs max_length"),
    ("vector without view", lambda d: _field(d, "text_vec").pop("view"), "has view [None]"),
    ("two vectors one view", lambda d: _field(d, "text_vec").update(view="image"), "one per view"),
    ("no primary key", lambda d: _field(d, "id").pop("is_primary"), "exactly one primary key"),
    ("primary key not the id", lambda d: _field(d, "title").update(is_primary=True), "exactly one primary key"),
    ("missing role", lambda d: d.update(fields=[f for f in d["fields"] if f["name"] != "has_text"]), "role [has_text]"),
    ("partition key not a field", lambda d: d.update(partition_key="shop"), "partition_key [shop]"),
    ("invalid field name", lambda d: _field(d, "brand").update(name="brand name"), "invalid name"),
]


@pytest.mark.parametrize("case,mutate,message", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_collection_spec_names_the_problem(raw_spec, case, mutate, message):
    with pytest.raises(ConfigError) as err:
        S.parse_collection_spec(_mutate(raw_spec, mutate))
    assert message in str(err.value)
    assert err.value.fix


def test_shipped_spec_roles_and_views(raw_spec):
    spec = S.parse_collection_spec(raw_spec)
    assert spec.vector_fields == C.VECTOR_FIELDS
    assert spec.by_role("id").name == "id" and spec.by_role("id").is_primary
    assert [f.name for f in spec.attribute_fields] == ["brand", "gender", "colour"]
    assert C.DEDUP_COLOUR_FIELD in [f.name for f in spec.attribute_fields]  # dedup's colour rule reads it
    assert all(f.nullable for f in spec.attribute_fields)
    assert "image_vec" not in spec.scalar_output_fields and "content_hash" in spec.scalar_output_fields


@pytest.mark.parametrize("profile,partition_key", [("lite", True), ("hnsw", True), ("diskann", True),
                                                   ("gpu_cagra", True)])
def test_build_schema_per_profile(profile, partition_key):
    spec = S.load_collection_spec()
    prof = S.index_profile(profile)
    schema = S.build_schema(spec, MANIFEST, prof).to_dict()
    fields = {f["name"]: f for f in schema["fields"]}
    comp = [prof.composite.field] if prof.composite else []  # the optional composite field comes last
    assert list(fields) == list(spec.names) + comp
    for name in C.VECTOR_FIELDS.values():
        assert fields[name]["params"]["dim"] == 128
        assert fields[name]["type"].name == "FLOAT_VECTOR"
    assert fields["id"]["is_primary"] and fields["id"]["params"]["max_length"] == C.MAX_ID_CHARS
    assert bool(fields["category"].get("is_partition_key")) is partition_key
    assert fields["brand"].get("nullable") is True
    assert fields["has_image"]["type"].name == "BOOL"
    assert schema["enable_dynamic_field"] is True


def test_partition_key_is_a_profile_option():
    spec = S.load_collection_spec()
    prof = S.IndexProfile("nopk", {"index_type": "FLAT", "params": {}}, {}, partition_key=False)
    fields = {f["name"]: f for f in S.build_schema(spec, MANIFEST, prof).to_dict()["fields"]}
    assert not fields["category"].get("is_partition_key")


@pytest.mark.parametrize("profile,index_type,search_key", [
    ("lite", "HNSW", "ef"), ("hnsw", "HNSW", "ef"), ("diskann", "DISKANN", "search_list"),
    ("gpu_cagra", "GPU_CAGRA", "itopk_size"),
])
def test_index_params_per_profile(profile, index_type, search_key):
    spec = S.load_collection_spec()
    prof = S.index_profile(profile)
    params = {p.field_name: p for p in S.build_index_params(spec, prof)}
    for name in C.VECTOR_FIELDS.values():
        cfg = params[name].get_index_configs()
        assert cfg["index_type"] == index_type
        assert cfg["metric_type"] == C.METRIC
    assert params["category"].get_index_configs()["index_type"] == "INVERTED"
    sp = S.search_params(profile)
    assert sp["metric_type"] == C.METRIC and search_key in sp["params"]


def test_unknown_profile_says_which_exist():
    with pytest.raises(ConfigError) as err:
        S.index_profile("faiss")
    assert "lite" in err.value.fix and "gpu_cagra" in err.value.fix


def test_embed_dim_must_come_from_a_manifest():
    with pytest.raises(ConfigError):
        S.build_schema(S.load_collection_spec(), {"model_version": "x"}, S.index_profile("lite"))


@pytest.mark.parametrize("alias,version,name", [("products", 1, "products_v1"), ("products", 12, "products_v12"),
                                                ("shoes", 3, "shoes_v3")])
def test_physical_names_round_trip(alias, version, name):
    assert S.physical_name(alias, version) == name
    assert S.parse_version(alias, name) == version
    assert S.split_physical(name) == (alias, version)


@pytest.mark.parametrize("alias,name", [("products", "products"), ("products", "products_v0"),
                                        ("products", "products_v1x"), ("products", "shoes_v1"),
                                        ("products", "products_v01")])
def test_other_names_are_not_versions(alias, name):
    assert S.parse_version(alias, name) is None


def test_properties_record_model_and_state():
    props = S.collection_properties(S.load_collection_spec(), MANIFEST)
    assert props == {S.PROP_MODEL_VERSION: "ss-128d-abc", S.PROP_EMBED_DIM: "128",
                     S.PROP_SCHEMA_VERSION: "1", S.PROP_STATE: "building"}


def test_properties_record_colour_dims_when_the_model_keeps_colour_apart():
    """Absent for a model without colour apart (as on every collection made before), so
    a reader's 0 means the same for both."""
    spec = S.load_collection_spec()
    props = S.collection_properties(spec, {**MANIFEST, "fusion": {"colour_dims": 32}})
    assert props[S.PROP_COLOUR_DIMS] == "32" and reads.colour_dims({"properties": props}) == 32
    for fusion in ({}, {"colour_dims": 0}, {"dim": 128}):
        props = S.collection_properties(spec, {**MANIFEST, "fusion": fusion})
        assert S.PROP_COLOUR_DIMS not in props and reads.colour_dims({"properties": props}) == 0


@pytest.mark.parametrize("bad", [-1, 128, 1.5, "32", True])
def test_a_bad_colour_dims_in_the_manifest_is_named(bad):
    with pytest.raises(ConfigError, match=rf"colour_dims \[{bad}\], want an integer in 0..127"):
        S.collection_properties(S.load_collection_spec(), {**MANIFEST, "fusion": {"colour_dims": bad}})


@pytest.mark.parametrize("bad", ["-1", "x", "128", ""])
def test_a_bad_colour_dims_property_is_a_schema_mismatch(bad):
    desc = {"collection_name": "c", "properties": {S.PROP_EMBED_DIM: "128", S.PROP_COLOUR_DIMS: bad}}
    with pytest.raises(SchemaMismatch, match=rf"\[c\] has property samestyle.colour_dims \[{bad}\]") as err:
        reads.colour_dims(desc)
    assert err.value.fix


@pytest.mark.parametrize("key, value, message", [
    ("shards_num", 0, "shards_num [0]: want an integer >= 1"),
    ("shards_num", "2", "shards_num [2]: want an integer >= 1"),
    ("consistency_level", "Eventual", "consistency_level [Eventual]: want one of Strong, Bounded"),
])
def test_bad_shards_or_consistency_names_the_profile(key, value, message):
    raw = json.loads((S.SPEC_DIR / "indexes.json").read_text())
    raw["profiles"]["hnsw"][key] = value
    with pytest.raises(ConfigError, match=r"profile \[hnsw\] has " + message.replace("[", r"\[").replace("]", r"\]")):
        S.parse_index_profiles(raw)


def test_shards_and_consistency_are_profile_data():
    profiles = S.load_index_profiles()
    assert profiles["lite"].shards_num == 1
    assert {p.consistency_level for p in profiles.values()} <= set(S.CONSISTENCY_LEVELS)

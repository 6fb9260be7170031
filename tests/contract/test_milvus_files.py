"""milvus/collection.json and milvus/indexes.json agree with plugin/contract.py."""

from __future__ import annotations

from samestyle import contract as C
from samestyle.store import spec as S


def test_collection_fields_match_the_contract():
    spec = S.load_collection_spec()
    assert spec.vector_fields == C.VECTOR_FIELDS
    assert spec.field("id").max_length == C.MAX_ID_CHARS
    # max_length counts UTF-8 bytes: a title of MAX_TITLE_CHARS characters of up to
    # 4 bytes each must fit.
    assert spec.field("title").max_length >= 4 * C.MAX_TITLE_CHARS
    assert spec.partition_key == "category"
    assert spec.enable_dynamic_field


def test_every_profile_uses_the_contract_metric_and_known_index_types():
    profiles = S.load_index_profiles()
    assert set(S.PROFILES) <= set(profiles)
    lite_buildable = {"HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "FLAT", "AUTOINDEX"}
    assert profiles["lite"].vector_index["index_type"] in lite_buildable
    for p in profiles.values():
        assert S.search_params(p.name)["metric_type"] == C.METRIC
        assert set(p.scalar_indexes) <= set(S.load_collection_spec().names)

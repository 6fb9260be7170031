"""samestyle.store against a real embedded Milvus Lite: what the pure builders of
tests/unit/test_store_spec.py make, as Milvus keeps it."""

from __future__ import annotations

from samestyle.store import spec as S


def test_created_collection_carries_the_profile_consistency(tmp_path):
    """Milvus Lite keeps the consistency level the profile asks for."""
    from dataclasses import replace

    from samestyle.store.collections import Store, client

    profiles = S.load_index_profiles()
    profiles["lite"] = replace(profiles["lite"], consistency_level="Strong")
    c = client(str(tmp_path / "m.db"))
    try:
        Store(c, profile="lite", profiles=profiles).create("probe_v1", {"model_version": "ss-16d-test", "embed_dim": 16})
        assert c.describe_collection("probe_v1")["consistency_level"] in (0, "Strong")
    finally:
        c.close()

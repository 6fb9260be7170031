"""The composite field (milvus/indexes.json `composite`): the three unit vectors side
by side, so that one inner product with the weighted query views is the exact
weighted sum of per-field cosines, for any query-time weights."""

from __future__ import annotations

import numpy as np
import pytest

from samestyle import contract as C
from samestyle.errors import ConfigError
from samestyle.query import requests as R
from samestyle.store import requests as SR
from samestyle.store import spec as S

D = 8
RAW = {"profiles": {p: {"vector_index": {"index_type": "HNSW"}} for p in S.PROFILES}}


def unit(rng) -> np.ndarray:
    v = rng.normal(size=D).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("fields,weights", [
    (R.FIELDS, [1, 1, 1]), (R.FIELDS, [0.7, 0.2, 0.1]), (("image_vec", "text_vec"), [0.7, 0.3]),
    (("text_vec", "fused_vec"), [0, 1]), (("fused_vec", "image_vec"), {"image_vec": 3, "fused_vec": 1}),
])
def test_one_inner_product_is_the_weighted_sum(fields, weights):
    rng = np.random.default_rng(len(fields))
    views = {v: unit(rng) for v in C.VIEWS}
    stored = {f: unit(rng) for f in R.FIELDS}
    stored["image_vec"] = np.zeros(D, np.float32) if isinstance(weights, dict) else stored["image_vec"]  # no photo
    plan = R.plan(views, fields, k=5, weights=weights, composite="views_vec")
    assert plan.anns_field == "views_vec" and len(plan.requests) == 1 and plan.requests[0].limit == 5
    exact = sum(w * float(np.dot(plan.vectors[f], stored[f])) for f, w in zip(plan.fields, plan.weights))
    got = float(np.dot(plan.single_vector, S.composite_vector([stored[f] for f in R.FIELDS])))
    assert got == pytest.approx(exact, abs=1e-6)


def test_composite_only_for_weighted_multi_field_searches():
    rng = np.random.default_rng(0)
    views = {v: unit(rng) for v in C.VIEWS}
    assert R.plan(views, ["fused_vec"], composite="views_vec").anns_field == "fused_vec"
    rrf = R.plan(views, R.FIELDS, ranker="rrf", composite="views_vec")
    assert rrf.composite is None and len(rrf.requests) == 3 and rrf.anns_field is None
    assert R.plan(views, R.FIELDS).anns_field is None  # no composite field: hybrid_search


def test_composite_plans_with_other_weights_share_a_call():
    rng = np.random.default_rng(1)
    a = R.plan({v: unit(rng) for v in C.VIEWS}, R.FIELDS, weights=[1, 1, 1], composite="views_vec")
    b = R.plan({v: unit(rng) for v in C.VIEWS}, R.FIELDS, weights=[5, 1, 0], composite="views_vec")
    assert R.batch_key(a) == R.batch_key(b)
    bp = R.batch([a, b])
    assert list(bp.data) == ["views_vec"] and len(bp.requests) == 1
    assert np.allclose(bp.data["views_vec"][1], b.single_vector)
    ann = SR.ann_requests(bp)[0]  # the store's pymilvus request: both queries in one call
    assert ann.anns_field == "views_vec" and len(ann.data) == 2 and ann.limit == a.limit
    plain = [R.plan({v: unit(rng) for v in C.VIEWS}, R.FIELDS, weights=w) for w in ([1, 1, 1], [5, 1, 0])]
    assert R.batch_key(plain[0]) != R.batch_key(plain[1])


def test_profile_composite_field_schema_and_index():
    prof = S.index_profile("lite")
    assert prof.composite is not None and prof.composite.field not in S.load_collection_spec().names
    spec = S.load_collection_spec()
    fields = {f["name"]: f for f in S.build_schema(spec, {"embed_dim": D}, prof).to_dict()["fields"]}
    assert fields[prof.composite.field]["params"]["dim"] == len(C.VIEWS) * D
    idx = {p.field_name: p.get_index_configs() for p in S.build_index_params(spec, prof)}
    assert idx[prof.composite.field]["metric_type"] == C.METRIC
    props = S.collection_properties(spec, {"embed_dim": D, "model_version": "m"}, profile=prof)
    assert props[S.PROP_COMPOSITE] == prof.composite.field
    desc = {"properties": props, "fields": [{"name": prof.composite.field}]}
    assert S.composite_field(desc) == prof.composite.field
    assert S.composite_field({"properties": props, "fields": []}) is None  # property without the field
    assert S.index_profile("hnsw").composite is None  # servers keep hybrid_search


@pytest.mark.parametrize("bad,needle", [
    ("yes", "want an object"), ({"field": "9x", "vector_index": {"index_type": "HNSW"}}, "invalid field name"),
    ({"field": "views_vec"}, "no vector_index"),
])
def test_bad_composite_is_named(bad, needle):
    raw = {"profiles": {**RAW["profiles"], "lite": {"vector_index": {"index_type": "HNSW"}, "composite": bad}}}
    with pytest.raises(ConfigError, match=needle):
        S.parse_index_profiles(raw)


def test_composite_vector_fills_missing_views_with_zeros():
    v = S.composite_vector([np.ones(3), None, np.full(3, 2.0)])
    assert v.tolist() == [1, 1, 1, 0, 0, 0, 2, 2, 2]
    with pytest.raises(ValueError):
        S.composite_vector([np.ones(3), np.ones(4), None])

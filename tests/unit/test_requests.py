"""The pure request builders: which query view goes against which field, weights,
rankers and the request contents, for each search type; and the store's translation
of a plan into pymilvus' AnnSearchRequest and rankers (samestyle.store.requests)."""

from __future__ import annotations

import numpy as np
import pytest
from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

from samestyle import contract as C
from samestyle.errors import InputError
from samestyle.query import requests as R
from samestyle.store import requests as SR

D = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=D).astype(np.float32)
    return v / np.linalg.norm(v)


IMG, TXT, FUS = unit(1), unit(2), unit(3)
ZERO = np.zeros(D, np.float32)

CASES = [
    # (builder, args, kwargs, fields, views_used)
    (R.product_plan, ({"image_vec": IMG, "text_vec": TXT, "fused_vec": FUS},), {}, ("fused_vec",), {"fused_vec": "fused"}),
    (R.product_plan, ({"image_vec": ZERO, "text_vec": TXT, "fused_vec": FUS},), {"fields": ["image_vec", "text_vec"]},
     ("image_vec", "text_vec"), {"image_vec": "fused", "text_vec": "text"}),
    (R.product_plan, ({"image_vec": IMG, "text_vec": ZERO, "fused_vec": FUS},), {"fields": ["text"]},
     ("text_vec",), {"text_vec": "fused"}),
    (R.text_plan, (TXT,), {}, ("text_vec",), {"text_vec": "text"}),
    (R.text_plan, (TXT,), {"target": "image"}, ("image_vec",), {"image_vec": "text"}),
    (R.text_plan, (TXT,), {"target": "fused"}, ("fused_vec",), {"fused_vec": "text"}),
    (R.text_plan, (TXT,), {"target": "all"}, R.FIELDS, {f: "text" for f in R.FIELDS}),
    (R.photo_plan, (IMG,), {}, ("image_vec",), {"image_vec": "image"}),
    (R.photo_plan, (IMG,), {"fields": ["image_vec", "fused_vec"], "fused_vec": FUS}, ("image_vec", "fused_vec"),
     {"image_vec": "image", "fused_vec": "fused"}),
    (R.photo_plan, (IMG,), {"fields": ["fused_vec"]}, ("fused_vec",), {"fused_vec": "image"}),
    (R.photo_text_plan, (FUS,), {}, ("image_vec",), {"image_vec": "fused"}),
    (R.photo_text_plan, (FUS,), {"fields": ["fused_vec", "image_vec"]},
     ("fused_vec", "image_vec"), {"fused_vec": "fused", "image_vec": "fused"}),
]


@pytest.mark.parametrize("builder,args,kw,fields,used", CASES,
                         ids=[f"{c[0].__name__}-{'-'.join(c[3])}-{i}" for i, c in enumerate(CASES)])
def test_builders_map_views_to_fields(builder, args, kw, fields, used):
    plan = builder(*args, k=7, expr='(brand == "x")', **kw)
    assert plan.fields == fields and plan.views_used == used
    assert len(plan.requests) == len(fields)
    for req, f in zip(plan.requests, fields):
        assert isinstance(req, R.AnnRequest)
        assert req.field == f and req.expr == '(brand == "x")'
        assert req.params["metric_type"] == C.METRIC
        assert req.params["params"]["ef"] >= req.limit
        assert req.limit == (7 if len(fields) == 1 else R.candidates(7))
        src = {"image": IMG, "text": TXT, "fused": FUS}[used[f]]
        assert np.allclose(req.data[0], src)
    assert plan.limit == 7 and sum(plan.weights) == pytest.approx(1.0)
    # The store's pymilvus requests carry the same parts.
    anns, ranker = SR.hybrid_args(plan)
    assert isinstance(ranker, WeightedRanker) and len(anns) == len(fields)
    for ann, req in zip(anns, plan.requests):
        assert isinstance(ann, AnnSearchRequest)
        assert (ann.anns_field, ann.data, ann.param, ann.limit, ann.expr) == (
            req.field, req.data, req.params, req.limit, req.expr)


WEIGHTS = [
    (None, None, (1 / 3, 1 / 3, 1 / 3)),
    ([2, 1, 1], None, (0.5, 0.25, 0.25)),
    ({"image_vec": 1, "fused": 3}, None, (0.25, 0.0, 0.75)),
    (None, {"image_vec": 0.4, "text_vec": 0.2, "fused_vec": 0.4}, (0.4, 0.2, 0.4)),
    ([1, 1, 2], {"image_vec": 0.9, "text_vec": 0.1, "fused_vec": 0.0}, (0.25, 0.25, 0.5)),
    (None, {"image_vec": 0.0, "text_vec": 0.0, "fused_vec": 0.0}, (1 / 3, 1 / 3, 1 / 3)),
]


@pytest.mark.parametrize("weights,profile,want", WEIGHTS)
def test_normalise_weights(weights, profile, want):
    assert R.normalise_weights(R.FIELDS, weights, profile) == pytest.approx(want)


@pytest.mark.parametrize("weights", [[1, 2], [-1, 1, 1], [0, 0, 0], ["a", 1, 1], {"price": 1},
                                     [float("inf"), 1, 1]])
def test_bad_weights(weights):
    with pytest.raises(InputError) as e:
        R.normalise_weights(R.FIELDS, weights)
    assert e.value.field == "weights"


def test_rankers():
    w = SR.ranker("weighted", (0.25, 0.75))
    assert isinstance(w, WeightedRanker)
    assert w.dict() == {"strategy": "weighted", "params": {"weights": [0.25, 0.75], "norm_score": False}}
    rrf = SR.ranker("rrf", (0.5, 0.5))
    assert isinstance(rrf, RRFRanker) and rrf.dict()["params"]["k"] == R.RRF_K
    with pytest.raises(InputError):
        SR.ranker("max", (1.0,))
    assert R.check_ranker("rrf") == "rrf"
    with pytest.raises(InputError) as e:
        R.plan({"image": IMG}, ["image_vec"], ranker="max")  # refused when the plan is built
    assert e.value.field == "ranker"


def test_query_layer_builds_plain_data():
    """Plans hold plain data; pymilvus objects are built by the store at call time."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(R))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.split(".")[0] == "pymilvus" for m in mods)
    plan = R.plan({"image": IMG, "text": TXT}, ["image_vec", "text_vec"], k=3)
    assert not hasattr(plan, "ranker") and (plan.ranker_kind, len(plan.weights)) == ("weighted", 2)


def test_plan_with_profile_and_rrf():
    plan = R.plan({"image": IMG, "text": TXT, "fused": FUS}, ["image_vec", "text_vec"], k=5, offset=5,
                  profile={"image_vec": 0.6, "text_vec": 0.2, "fused_vec": 0.2}, ranker="rrf")
    assert plan.weights == pytest.approx((0.75, 0.25)) and plan.ranker_kind == "rrf"
    assert isinstance(SR.hybrid_args(plan)[1], RRFRanker)
    assert plan.limit == 10 and all(r.limit == R.candidates(10) for r in plan.requests)


@pytest.mark.parametrize("kw,field", [
    ({"views": {"image": ZERO}}, "query"),
    ({"views": {"photo": IMG}}, "views"),
    ({"views": {"image": IMG, "text": np.ones(D + 1)}}, "query"),
    ({"fields": ["image_vec", "price"]}, "fields"),
    ({"k": 0}, "k"),
])
def test_plan_errors(kw, field):
    args = {"views": {"image": IMG}, "fields": ["image_vec"], "k": 5, **kw}
    with pytest.raises(InputError) as e:
        R.plan(args.pop("views"), args.pop("fields"), **args)
    assert e.value.field == field


def test_text_target_error_and_params():
    with pytest.raises(InputError):
        R.text_plan(TXT, target="photo")
    assert R.search_params(500, {"ef": 64})["params"]["ef"] == 500
    assert R.search_params(5, {"search_list": 100})["params"] == {"search_list": 100}  # DiskANN: no ef
    assert R.check_fields(["fused", "fused_vec", "image"], ()) == ("fused_vec", "image_vec")

"""The HTTP API's search options are generated from `SearchOptions` (samestyle.http_options):
the OpenAPI document carries every option, no other, with the declared description,
default and choices, and the HTTP edge (pydantic) and `SearchOptions.check` refuse the
same values. No server: the app is only built and its document read."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from samestyle import contract as C
from samestyle.config import Settings
from samestyle.errors import InputError
from samestyle.http_options import options_model
from samestyle.query import options as S
from samestyle.query.options import SearchOptions

DECLARED = {f.name for f in dataclasses.fields(SearchOptions)}
SERVER_SIDE = {"timeout"}  # the request's own time limit applies instead
# request body schema -> (its query fields, the options it leaves out as meaningless to it)
TYPED = {
    "/v1/search/product": ({"id"}, {"target"}),
    "/v1/search/products": ({"ids"}, {"target"}),
    "/v1/search/text": ({"text"}, {"exclude_self"}),
    "/v1/search/texts": ({"texts"}, {"exclude_self"}),
    "/v1/search/photo": ({"image_b64", "modifier"}, {"exclude_self", "target"}),
    "/v1/search/photos": ({"images_b64"}, {"exclude_self", "target"}),
    "/v1/search/hybrid": ({"product_id", "text", "image_b64"}, {"exclude_self", "target"}),
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    from samestyle.http import create_app

    return create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi"))).openapi()


def _body(spec: dict, path: str) -> dict:
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_search_option_is_in_the_http_schema_and_no_other(spec):
    """Adding a SearchOptions field without an HTTP type, or an option to a request
    model by hand, fails here."""
    search_in = _body(spec, "/v1/search")
    options = spec["components"]["schemas"]["SearchOptionsIn"]["properties"]
    assert set(options) | ({"target"} & set(search_in["properties"])) == DECLARED - SERVER_SIDE
    for path, (query_fields, omitted) in TYPED.items():
        props = set(_body(spec, path)["properties"])
        assert props == (DECLARED - SERVER_SIDE - omitted) | query_fields, path


def test_the_schema_says_what_is_declared(spec):
    """Description, default, choices and bounds of each option come from its declaration
    (choices from the contract's names)."""
    options = {**spec["components"]["schemas"]["SearchOptionsIn"]["properties"],
               "target": _body(spec, "/v1/search")["properties"]["target"]}
    for f in dataclasses.fields(SearchOptions):
        if f.name in SERVER_SIDE:
            continue
        prop = options[f.name]
        assert prop["description"] == f.metadata["doc"], f.name
        if f.default == ():
            assert prop.get("default", []) == [], f.name
        else:
            assert prop.get("default") == f.default, f.name
    assert options["ranker"]["enum"] == list(C.RANKERS)
    assert options["target"]["enum"] == list(C.TEXT_TARGETS)
    assert options["fields"]["anyOf"][0]["items"]["enum"] == [*C.VECTOR_FIELDS.values(), *C.VIEWS]
    assert (options["k"]["minimum"], options["k"]["maximum"]) == (1, C.MAX_SEARCH_K)
    assert (options["offset"]["minimum"], options["offset"]["maximum"]) == (0, C.MAX_SEARCH_OFFSET)
    assert options["exclude"]["maxItems"] == C.MAX_SEARCH_K


Model = options_model("AllOptions")
# (option, the last value accepted, the first refused)
EDGES = [
    ("k", 1, 0), ("k", C.MAX_SEARCH_K, C.MAX_SEARCH_K + 1),
    ("offset", 0, -1), ("offset", C.MAX_SEARCH_OFFSET, C.MAX_SEARCH_OFFSET + 1),
    ("floor", -1.0, -1.01), ("floor", 1.0, 1.01),
    ("colour", 0.0, -0.01), ("colour", 1.0, 1.01),
    ("ranker", "rrf", "rrf2"), ("target", "all", "photo"),
    ("exclude", ["x"] * C.MAX_SEARCH_K, ["x"] * (C.MAX_SEARCH_K + 1)),
    ("group_by", "g" * C.MAX_NAME_CHARS, "g" * (C.MAX_NAME_CHARS + 1)),
    ("category", "c" * C.MAX_NAME_CHARS, "c" * (C.MAX_NAME_CHARS + 1)),
    ("fields", ["image", "text", "fused"], ["image", "text", "fused", "image_vec"]),
]


@pytest.mark.parametrize("name, good, bad", EDGES)
def test_the_http_edge_and_search_options_refuse_the_same_values(name, good, bad):
    assert getattr(Model.model_validate({name: good}), name) == good
    assert getattr(SearchOptions(**{name: good}).check(), name) == good
    with pytest.raises(ValidationError) as http_err:
        Model.model_validate({name: bad})
    assert http_err.value.errors()[0]["loc"][0] == name
    with pytest.raises(InputError) as err:
        SearchOptions(**{name: bad}).check()
    assert err.value.field == name


def test_options_are_checked_once_unless_changed(monkeypatch):
    """What the HTTP edge validated reaches the searcher unchecked; a copy with a changed
    value (keyword options, or an attribute set later) is checked again."""
    calls = []
    real = S._check_option
    monkeypatch.setattr(S, "_check_option", lambda *a: calls.append(a[0]) or real(*a))
    o = SearchOptions.validated(k=5, ranker="rrf", exclude=[])
    assert S._opts(o, {}).k == 5 and calls == []
    assert S._opts(o, {"k": 7}).k == 7 and "k" in calls
    calls.clear()
    o.exclude.extend(["x"] * (C.MAX_SEARCH_K + 1))  # changed in place after the check
    with pytest.raises(InputError, match="exclude"):
        S._opts(o, {})
    assert calls

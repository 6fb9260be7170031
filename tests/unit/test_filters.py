"""Typed filters -> Milvus expressions: table-driven. That the rendered expressions
select exactly the literal rows in a real Milvus is tested in
tests/integration/test_search.py::test_adversarial_filter_values_match_only_literal_rows."""

from __future__ import annotations

import json

import pytest

from samestyle.errors import InputError
from samestyle.query import filters as F

SCHEMA = F.FilterSchema({"id": "str", "brand": "str", "category": "str", "price": "float", "year": "int",
                         "has_image": "bool", "note": None})

TRICKY = ['Levi"s', "Levi's", "back\\slash", "ends with\\", '" or brand != "', "x or y", "Ünïcødé 女装 👗",
          "tab\tand\nnewline\r", '\\"', "or", "", "%_", "${x}", "{brand}"]

RENDER = [
    (F.Eq("brand", "Puma"), '(brand == "Puma")'),
    (F.Ne("brand", "Puma"), '(brand != "Puma")'),
    (F.Eq("brand", 'a"b'), '(brand == "a\\"b")'),
    (F.Eq("brand", "a\\b"), '(brand == "a\\\\b")'),
    (F.Eq("brand", '" or id != "'), '(brand == "\\" or id != \\"")'),
    (F.Eq("brand", "女装"), '(brand == "女装")'),
    (F.Eq("brand", "a\nb"), '(brand == "a\\nb")'),
    (F.Eq("price", "999"), "(price == 999.0)"),
    (F.Eq("price", 5), "(price == 5.0)"),
    (F.Eq("year", "2015"), "(year == 2015)"),
    (F.Eq("has_image", "true"), "(has_image == true)"),
    (F.Eq("has_image", False), "(has_image == false)"),
    (F.Eq("note", 3), "(note == 3)"),
    (F.Eq("note", "3"), '(note == "3")'),
    (F.In("brand", ("Puma", "Nike")), '(brand in ["Puma", "Nike"])'),
    (F.In("brand", ("Puma",), negate=True), '(brand not in ["Puma"])'),
    (F.In("year", ("2015", 2016)), "(year in [2015, 2016])"),
    (F.Range("price", gte=10, lt="99.5"), "(price >= 10.0 and price < 99.5)"),
    (F.Range("year", gt=2010), "(year > 2010)"),
    (F.Prefix("brand", "Pu"), '(brand like "Pu%")'),
    (F.Prefix("brand", "50%_"), '(brand like "50\\\\%\\\\_%")'),
]


@pytest.mark.parametrize("flt,expr", RENDER, ids=[r[1] for r in RENDER])
def test_render(flt, expr):
    assert F.render(flt, SCHEMA) == expr


@pytest.mark.parametrize("value", TRICKY)
def test_quote_is_exactly_one_literal(value):
    q = F.quote(value)
    # Milvus string literals use the same escapes as JSON for these characters, so a
    # JSON decoder reading the literal back must give the value unchanged.
    assert json.loads(q) == value
    # No unescaped quote inside: the literal cannot end early.
    body = q[1:-1]
    i = 0
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        assert body[i] != '"'
        i += 1


ERRORS = [
    (F.Eq("nosuch", "x"), "nosuch", "unknown filter field"),
    (F.Eq("brand or 1", "x"), "brand or 1", "not a valid field name"),
    (F.Eq("price", "cheap"), "price", "expected type [float]"),
    (F.Eq("price", float("nan")), "price", "finite"),
    (F.Eq("year", "20.5"), "year", "expected type [int]"),
    (F.Eq("year", True), "year", "expected type [int]"),
    (F.Eq("has_image", "maybe"), "has_image", "expected type [bool]"),
    (F.Eq("brand", 5), "brand", "expected type [str]"),
    (F.Eq("brand", "nul\x00byte"), "brand", "control character"),
    (F.In("brand", ()), "brand", "empty list"),
    (F.Range("brand", gt="a"), "brand", "range on a str field"),
    (F.Range("price"), "price", "without bounds"),
    (F.Prefix("price", "1"), "price", "prefix on a float field"),
]


@pytest.mark.parametrize("flt,field,msg", ERRORS, ids=[e[2] for e in ERRORS])
def test_render_errors_name_field_and_reason(flt, field, msg):
    with pytest.raises(InputError) as e:
        F.render(flt, SCHEMA)
    assert e.value.field == field and msg in e.value.message


CLI = [
    (["brand=Puma"], [F.Eq("brand", "Puma")]),
    (["brand=Puma", "brand=Nike"], [F.In("brand", ("Puma", "Nike"))]),
    (["brand!=Puma"], [F.Ne("brand", "Puma")]),
    (["brand!=A", "brand!=B"], [F.In("brand", ("A", "B"), negate=True)]),
    (["price>=10", "price<20"], [F.Range("price", gte="10", lt="20")]),
    (["brand^=Pu"], [F.Prefix("brand", "Pu")]),
    (['brand=a=b" or x'], [F.Eq("brand", 'a=b" or x')]),  # value: everything after the first operator
    (["brand= spaced "], [F.Eq("brand", " spaced ")]),
]


@pytest.mark.parametrize("items,want", CLI, ids=[" ".join(c[0]) for c in CLI])
def test_parse_cli(items, want):
    assert F.parse_cli(items, SCHEMA) == want


@pytest.mark.parametrize("item", ["brand", "=x", "1brand=x", "price<=cheap", "nosuch=1"])
def test_parse_cli_errors(item):
    with pytest.raises(InputError):
        F.parse_cli([item], SCHEMA)


JSON = [
    ({"brand": "Puma"}, [F.Eq("brand", "Puma")]),
    ({"brand": ["Puma", "Nike"]}, [F.In("brand", ("Puma", "Nike"))]),
    ({"price": {"gte": 1, "lt": 5}}, [F.Range("price", gte=1, lt=5)]),
    ({"brand": {"ne": "X", "prefix": "P"}}, [F.Ne("brand", "X"), F.Prefix("brand", "P")]),
    ({"brand": {"not_in": ["X"]}}, [F.In("brand", ("X",), negate=True)]),
    (None, []),
]


@pytest.mark.parametrize("obj,want", JSON, ids=[json.dumps(j[0]) for j in JSON])
def test_from_json(obj, want):
    assert F.from_json(obj, SCHEMA) == want


@pytest.mark.parametrize("obj", [["brand=x"], {"brand": {"like": "x"}}, {"brand": {"in": "x"}}, {"price": "x"},
                                 {"brand": {"gt": "a"}}])
def test_from_json_errors(obj):
    with pytest.raises(InputError):
        F.from_json(obj, SCHEMA)


def test_to_expr_ands_filters_and_exclusions():
    expr = F.to_expr([F.Eq("brand", "Puma"), F.Range("price", lte=100)], SCHEMA, extra=[F.exclude_ids(['P"1'])])
    assert expr == '(brand == "Puma") and (price <= 100.0) and (id != "P\\"1")'
    assert F.to_expr([], SCHEMA) == ""
    assert F.exclude_ids(["a", "b"]) == '(id not in ["a", "b"])'
    assert F.exclude_ids([]) == ""


def test_schema_from_description_and_dynamic():
    from pymilvus import DataType

    desc = {"fields": [{"name": "id", "type": DataType.VARCHAR}, {"name": "price", "type": DataType.FLOAT},
                       {"name": "v", "type": DataType.FLOAT_VECTOR}, {"name": "ok", "type": DataType.BOOL}],
            "enable_dynamic_field": True}
    s = F.FilterSchema.from_description(desc)
    assert dict(s.fields) == {"id": "str", "price": "float", "ok": "bool"} and s.dynamic
    assert F.render(F.Eq("colour", "Red"), s) == '(colour == "Red")'  # dynamic: typed by the value
    with pytest.raises(InputError):
        F.render(F.Eq("v", "x"), F.FilterSchema.from_description({**desc, "enable_dynamic_field": False}))


def test_category_of():
    assert F.category_of([F.Eq("brand", "x"), F.Eq("category", "Tshirts")]) == "Tshirts"
    assert F.category_of([F.In("category", ("Tshirts",))]) == "Tshirts"
    assert F.category_of([F.In("category", ("A", "B"))]) is None

"""Record -> checked product or rejection (field + kind + reason), attribute
mapping, and the content hash. Pure: no Milvus, no encoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from samestyle.loaders.sources import RawRecord
from samestyle.loaders.transform import ColumnMap, Parsed, Product, Rejected, Transformer, attribute_name, check_photo
from samestyle import contract as C
from samestyle.encoders.base import EncodedBatch
from samestyle.errors import ConfigError
from samestyle.store.spec import load_collection_spec

SPEC = load_collection_spec()
CONSTS = C.preprocess_constants()


def _tf(**cols) -> Transformer:
    return Transformer(SPEC, ColumnMap(**cols), "model-a")


def _png(w=8, h=8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


GOOD = {"id": "p1", "title": "Red tee", "image": "a.jpg", "articleType": "Tshirts"}

REJECTS = [
    ("missing id", {"id": ""}, "id", "missing_id"),
    ("absent id", {"id": None}, "id", "missing_id"),
    ("float id", {"id": 1.5}, "id", "bad_type"),
    ("control char id", {"id": "a\x00b"}, "id", "bad_id"),
    ("oversize id", {"id": "é" * 200}, "id", "oversize_field"),
    ("invalid utf8 title", {"title": "caf\udce9"}, "title", "invalid_utf8"),
    ("invalid utf8 bytes title", {"title": b"caf\xe9"}, "title", "invalid_utf8"),
    ("unpaired surrogate", {"title": "x\ud800"}, "title", "invalid_utf8"),
    ("oversize title", {"title": "x" * (C.MAX_TITLE_CHARS + 1)}, "title", "oversize_field"),
    ("neither photo nor title", {"title": "  ", "image": ""}, "title,image", "no_photo_no_title"),
    ("oversize photo reference", {"image": "x" * 3000}, "image", "oversize_field"),
    ("photo of a strange type", {"image": 12}, "image", "bad_type"),
    ("oversize category", {"articleType": "c" * 300}, "articleType", "oversize_field"),
    ("oversize declared attribute", {"brand": "b" * 300}, "brand", "oversize_field"),
    ("invalid utf8 attribute", {"season": "caf\udce9"}, "season", "invalid_utf8"),
    ("oversize extra attributes", {"notes": "n" * 20000}, "notes", "oversize_field"),
]


@pytest.mark.parametrize("case,patch,field,kind", REJECTS, ids=[r[0] for r in REJECTS])
def test_bad_records_are_rejected_with_field_and_kind(case, patch, field, kind):
    out = _tf().parse(RawRecord(7, {**GOOD, **patch}))
    assert isinstance(out, Rejected), out
    assert (out.line, out.field, out.kind) == (7, field, kind)
    assert out.reason
    assert out.to_dict()["line"] == 7


def test_unparseable_record_keeps_its_reason():
    out = _tf().parse(RawRecord(3, None, ("record", "invalid JSON (x)")))
    assert (out.field, out.kind, out.reason, out.id) == ("record", "bad_record", "invalid JSON (x)", None)


def test_good_record_and_attribute_mapping():
    rec = {**GOOD, "id": 42, "title": "  Red   tee ", "baseColour": "Red", "brand": "Puma", "price": "999.5",
           "year": "2012", "code": "007", "Base Colour": "x", "has_image": "yes", "empty": "", "tags": ["a"]}
    out = _tf().parse(RawRecord(2, rec))
    assert isinstance(out, Parsed)
    assert out.id == "42" and out.title == "Red tee" and out.category == "Tshirts"
    assert out.declared == {"brand": "Puma", "gender": None, "colour": "Red"}
    # numbers inferred from CSV text, codes with leading zeros kept as text, names
    # made identifiers, built-in names never overwritten, empty values dropped
    assert out.extra == {"price": 999.5, "year": 2012, "code": "007", "Base_Colour": "x",
                         "attr_has_image": "yes", "tags": ["a"]}


def test_explicit_attribute_columns():
    tf = _tf(attrs=(("Marke", "brand"), ("season", None)))
    out = tf.parse(RawRecord(2, {**GOOD, "Marke": "Puma", "season": "Summer", "other": "dropped"}))
    assert out.declared["brand"] == "Puma" and out.extra == {"season": "Summer"}


@pytest.mark.parametrize("attrs,message", [
    ((("a", "brand"), ("b", "brand")), "two attribute columns"),
    ((("a", "has_image"),), "not a usable attribute name"),
    ((("a", "bad name"),), "not a usable attribute name"),
])
def test_bad_attribute_mapping_fails_fast(attrs, message):
    with pytest.raises(ConfigError, match=message):
        _tf(attrs=attrs)


@pytest.mark.parametrize("columns,message", [
    (["title", "image"], "no id column"),
    (["id", "brand"], "neither the title column"),
])
def test_missing_columns_fail_before_reading(columns, message):
    with pytest.raises(ConfigError, match=message) as err:
        Transformer(SPEC, ColumnMap(), "m", source_columns=columns)
    assert err.value.fix


def test_attr_col_syntax():
    assert ColumnMap.from_options(attr_cols=["a", "B c=d"]).attrs == (("a", None), ("B c", "d"))
    with pytest.raises(ConfigError):
        ColumnMap.from_options(attr_cols=["a="])


@pytest.mark.parametrize("column,name", [("price", "price"), ("Base Colour", "Base_Colour"), ("2nd", "_2nd"),
                                         ("id", "attr_id"), ("fused_vec", "attr_fused_vec"), ("", "attr")])
def test_attribute_names(column, name):
    assert attribute_name(column, set(SPEC.names)) == name


def _product(tf, **patch):
    p = tf.parse(RawRecord(2, {**GOOD, **patch}))
    return tf.finish(p, _png(), "a.jpg")


def test_content_hash_covers_what_is_stored():
    tf = _tf()
    base = _product(tf).content_hash
    assert _product(tf).content_hash == base  # stable
    assert _product(tf, title="Blue tee").content_hash != base
    assert _product(tf, brand="Nike").content_hash != base
    assert _product(tf, articleType="Tops").content_hash != base
    p = tf.parse(RawRecord(2, GOOD))
    assert tf.finish(p, _png(9, 8), "a.jpg").content_hash != base  # photo bytes
    assert tf.finish(p, _png(), "b.jpg").content_hash != base  # reference
    assert Transformer(SPEC, ColumnMap(), "model-b").finish(p, _png(), "a.jpg").content_hash != base
    assert len(base) == 64


@pytest.mark.parametrize("data,kind", [
    (b"not an image", "unreadable_photo"),
    (_png()[:40], "unreadable_photo"),
    (b"x" * (C.MAX_PHOTO_BYTES + 1), "oversize_photo"),
])
def test_bad_photos(data, kind):
    assert check_photo(data, CONSTS)[0] == kind


def test_decompression_bomb_is_refused_from_the_header():
    buf = io.BytesIO()
    Image.new("1", (7000, 6000)).save(buf, "PNG")  # 42 Mpx, a few KB
    kind, reason = check_photo(buf.getvalue(), CONSTS)
    assert kind == "oversize_photo" and "7000x6000" in reason


def test_row_has_every_field_and_zero_image_vector_without_photo():
    tf = _tf()
    p = tf.finish(tf.parse(RawRecord(2, {**GOOD, "image": "", "price": "5"})), None, "")
    assert isinstance(p, Product) and p.input.image is None
    d = 4
    enc = EncodedBatch(["p1"], np.zeros((1, d), np.float32), np.ones((1, d), np.float32),
                       np.full((1, d), 0.5, np.float32))
    row = tf.row(p, enc, 0)
    assert set(SPEC.names) <= set(row)
    assert row["has_image"] is False and row["has_text"] is True and row["price"] == 5
    assert not row["image_vec"].any() and row["text_vec"].dtype == np.float32
    assert row["model_version"] == "model-a" and row["content_hash"] == p.content_hash


# -- columns are checked, never guessed (#12) -----------------------------------------------


def test_a_misspelt_column_is_an_error_naming_it_the_columns_and_the_closest():
    cols = ["id", "name", "photo", "articleType"]
    with pytest.raises(ConfigError) as err:
        Transformer(SPEC, ColumnMap.from_options(title_col="nmae", image_col="photo", explicit=["title", "image"]),
                    "m", source_columns=cols)
    msg = str(err.value)
    assert "[nmae]" in msg and "--title-col" in msg and str(cols) in msg and "did you mean [name]?" in msg
    with pytest.raises(ConfigError, match=r"category column \[Category\].*did you mean \[category\]\?"):
        Transformer(SPEC, ColumnMap.from_options(category_col="Category", explicit=["category"]), "m",
                    source_columns=["id", "title", "image", "category"])


def test_a_default_column_that_is_absent_is_said_not_guessed():
    tf = Transformer(SPEC, ColumnMap(), "m", source_columns=["id", "title", "image", "category"])
    assert any("no category column [articleType]" in n and "--category-col" in n for n in tf.notes)
    tf = Transformer(SPEC, ColumnMap(category="category"), "m", source_columns=["id", "title", "image", "category"])
    assert tf.notes == []


def test_jsonl_mapping_is_checked_against_the_sampled_keys():
    tf = Transformer(SPEC, ColumnMap.from_options(image_col="img", explicit=["image"]), "m")
    with pytest.raises(ConfigError, match=r"first 3 records are \['id', 'title', 'image'\]; did you mean \[image\]"):
        tf.check_columns(["id", "title", "image"], sampled=3)


@pytest.mark.parametrize("column,stored", [
    ("baseColour", "colour"), ("color", "colour"), ("colour", "colour"), ("brandName", "brand"),
    ("articleType", "category"), ("id", "id"), ("price", "price"), ("Pattern Type", "Pattern_Type"),
])
def test_stored_name_is_what_ingest_stores_the_column_as(column, stored):
    """samestyle.loaders.transform.stored_name (what `search --columns` maps a catalogue
    column through) agrees with the Transformer's own automatic mapping."""
    from samestyle.loaders.transform import stored_name

    assert stored_name(column, SPEC) == stored
    if column not in ("id", "articleType"):  # attribute columns: the row ingest builds holds it there
        t = Transformer(SPEC, ColumnMap(), "m1")
        p = t.parse(RawRecord(1, {"id": "p1", "title": "a shirt", column: "x"}))
        assert isinstance(p, Parsed) and (p.declared.get(stored) or p.extra.get(stored)) == "x", p

"""The query's colour weight (SearchOptions.colour), against real Milvus Lite: a collection
whose model keeps colour apart (property samestyle.colour_dims) holds hand-made vectors
[sqrt(1 - w^2) style, w colour], so every score is known. A product of the query's style
in another colour beats one of the query's colour in a nearer-to-other style when colour
counts 0, and loses when it counts 1; each search type has its default; a collection
without the property searches as before. Text and photo queries come from a fixed table
(a deterministic tiny "model"): the query layer is under test, not an encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samestyle.encoders.base import EncodedBatch, Encoder
from samestyle.errors import InputError
from samestyle.query import requests as R
from samestyle.query.search import Searcher, SearchOptions
from samestyle.store import Store
from samestyle.store import spec as S

STYLE_D, COLOUR_D = 6, 2
D = STYLE_D + COLOUR_D
W = 0.35  # the model's colour weight (samestyle train --colour-weight)
MODEL = "colour-test"
E = np.eye(STYLE_D, dtype=np.float32)
RED, BLUE = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
# id -> (style unit vector, colour unit vector). SAME_STYLE: cos 0.9 to the query's style,
# another colour; SAME_COLOUR: cos 0.8 to it, the query's colour.
PRODUCTS = {
    "Q": (E[0], RED),
    "SAME_STYLE": (0.9 * E[0] + math.sqrt(1 - 0.81) * E[1], BLUE),
    "SAME_COLOUR": (0.8 * E[0] + 0.6 * E[2], RED),
    "OTHER_1": (E[3], BLUE),
    "OTHER_2": (E[4], RED),
    "OTHER_3": (E[5], BLUE),
}
PHRASE, PHOTO, MODIFIER = "the query's look", b"the query's photo", "but in red"


def vector(style, colour) -> np.ndarray:
    return np.concatenate([math.sqrt(1 - W * W) * style, W * colour]).astype(np.float32)


def expected(pid: str, weight: float) -> float:
    """The query Q against `pid` with Q's colour part scaled by `weight` (stored vectors never
    are), divided by the scaled query's score against Q itself, so Q would score 1."""
    (sq, cq), (sp, cp) = PRODUCTS["Q"], PRODUCTS[pid]
    own = (1 - W * W) + weight * W * W
    return ((1 - W * W) * float(sq @ sp) + weight * W * W * float(cq @ cp)) / own


class TableEncoder(Encoder):
    """Every query (a phrase, a photo, or both) encodes to Q's vector in every view."""

    dim, model_version = D, MODEL

    def encode_batch(self, products):
        v = np.stack([vector(*PRODUCTS["Q"])] * len(products))
        return EncodedBatch([p.id for p in products], v, v.copy(), v.copy())


def _collection(store: Store, name: str, colour_dims: int) -> None:
    fusion = {"colour_dims": colour_dims} if colour_dims else {}
    store.create(name, {"model_version": MODEL, "embed_dim": D, **({"fusion": fusion} if fusion else {})})
    rows = []
    for pid, (style, colour) in PRODUCTS.items():
        v = vector(style, colour).tolist()
        rows.append({"id": pid, "title": pid, "image_uri": "", "category": "ColourTest", "brand": None,
                     "gender": None, "colour": None, "content_hash": pid, "model_version": MODEL,
                     "has_image": True, "has_text": True, "image_vec": v, "text_vec": v, "fused_vec": v})
    store.upsert(name, rows)
    store.flush(name)
    store.load(name)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path_factory.mktemp("colour") / "c.db"))
    s = Store(client=client, profile="lite")
    _collection(s, "coloured_v1", COLOUR_D)
    _collection(s, "plain_v1", 0)  # made like a collection filled before the property existed
    yield s
    s.close()


@pytest.fixture(scope="module")
def coloured(store):
    return Searcher(store, "coloured_v1", encoder=TableEncoder())


# Each search path, as (name, search(searcher, **options) -> SearchResult).
PATHS = {
    "by_product": lambda s, **o: s.by_product("Q", **o),
    "by_products": lambda s, **o: s.by_products(["Q"], **o).results["Q"],
    "by_text": lambda s, **o: s.by_text(PHRASE, exclude=["Q"], **o),
    "by_texts": lambda s, **o: s.by_texts([PHRASE], exclude=["Q"], **o).results["0"],
    "by_photo": lambda s, **o: s.by_photo(PHOTO, exclude=["Q"], **o),
    "by_photos": lambda s, **o: s.by_photos([PHOTO], exclude=["Q"], **o).results["0"],
    "by_photo_text": lambda s, **o: s.by_photo_text(PHOTO, MODIFIER, exclude=["Q"], **o),
    "hybrid_text_photo": lambda s, **o: s.hybrid(text=PHRASE, photo=PHOTO, exclude=["Q"], **o),
    "hybrid_product": lambda s, **o: s.hybrid(product_id="Q", **o),
}


def test_the_collection_records_its_colour_dims(store):
    assert store.properties("coloured_v1")[S.PROP_COLOUR_DIMS] == str(COLOUR_D)
    assert S.PROP_COLOUR_DIMS not in store.properties("plain_v1")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("weight, top", [(1.0, "SAME_COLOUR"), (0.0, "SAME_STYLE"), (0.5, "SAME_STYLE")])
def test_the_colour_weight_decides_between_same_style_and_same_colour(coloured, path, weight, top):
    res = PATHS[path](coloured, colour=weight, k=4)
    assert res.colour == weight
    assert res.ids[0] == top and "Q" not in res.ids
    # What is shown is what was ranked: the per-field scores are of the scaled query.
    for h in res.hits:
        for f in res.fields:
            assert h.scores[f] == pytest.approx(expected(h.id, weight), abs=1e-5), (h.id, f)
        assert h.score == pytest.approx(expected(h.id, weight), abs=1e-4)


@pytest.mark.parametrize("path", PATHS)
def test_each_search_type_has_its_default(coloured, path):
    res = PATHS[path](coloured, k=4)
    kind = "photo_text" if path == "by_photo_text" else res.search_type
    assert res.colour == R.DEFAULT_COLOUR[kind]
    assert res.ids[0] == ("SAME_COLOUR" if res.colour == 1.0 else "SAME_STYLE")


def test_a_collection_without_the_property_searches_as_before(store):
    plain = Searcher(store, "plain_v1", encoder=TableEncoder())
    for path in ("by_product", "by_texts", "by_photo_text"):
        results = [PATHS[path](plain, colour=c, k=4) for c in (None, 0.0, 1.0)]
        for res in results:
            assert res.colour is None
            assert res.ids[0] == "SAME_COLOUR"  # the model's own colour weight, unscaled
            assert [h.scores for h in res.hits] == [h.scores for h in results[0].hits]
            for h in res.hits:
                assert h.scores[res.fields[0]] == pytest.approx(expected(h.id, 1.0), abs=1e-5)


@pytest.mark.parametrize("bad", [-0.01, 1.01, True, "1"])
def test_a_colour_outside_0_to_1_is_refused(coloured, bad):
    with pytest.raises(InputError) as err:
        SearchOptions(colour=bad).check()
    assert err.value.field == "colour"
    with pytest.raises(InputError) as err:
        coloured.by_product("Q", colour=bad)
    assert err.value.field == "colour"

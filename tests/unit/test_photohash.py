"""Perceptual photo hashes (samestyle.photohash): a copy of a photo (the same pixels,
resized or re-compressed) keeps its hash within a few bits, another photo lands far;
ingest computes the hash in its decode step (loaders.transform.inspect_photo) and
stores it as the dynamic attribute contract.PHOTO_HASH."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from samestyle import contract as C
from samestyle import photohash as PH
from samestyle.encoders.base import EncodedBatch
from samestyle.loaders.sources import RawRecord
from samestyle.loaders.transform import ColumnMap, Product, Transformer, inspect_photo
from samestyle.model import preprocess as pp
from samestyle.store.spec import load_collection_spec

CONSTS = C.preprocess_constants()


def _photo(seed: int, w: int = 120, h: int = 160) -> Image.Image:
    """A catalogue-like photo: a few coloured shapes on white."""
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.randint(0, w - 20), rng.randint(0, h - 20)
        box = (x0, y0, rng.randint(x0 + 10, w), rng.randint(y0 + 10, h))
        colour = tuple(rng.randint(0, 220) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=colour)
    return img


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _dist(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


@pytest.mark.parametrize("seed", range(5))
def test_copies_stay_close(seed):
    img = _photo(seed)
    h = PH.phash(img)
    assert PH.phash(img.copy()) == h
    for f in (0.5, 2.0):
        assert _dist(PH.phash(img.resize((int(img.width * f), int(img.height * f)))), h) <= 4
    recompressed = Image.open(io.BytesIO(_jpeg(img, quality=30))).convert("RGB")
    assert _dist(PH.phash(recompressed), h) <= 4


def test_different_photos_are_far():
    hashes = [PH.phash(_photo(seed)) for seed in range(12)]
    dists = [_dist(a, b) for n, a in enumerate(hashes) for b in hashes[n + 1:]]
    assert min(dists) >= 12, dists
    assert 20 <= float(np.median(dists)) <= 44


def test_parse_and_similarity():
    values = [PH.to_hex(0), PH.to_hex(2**64 - 1), None, "", "not-a-hash-at-al", PH.to_hex(0b1011)]
    h, has = PH.parse(values)
    assert has.tolist() == [True, True, False, False, False, True]
    assert h.dtype == np.uint64 and int(h[1]) == 2**64 - 1
    sim = PH.similarity(h, np.array([0, 0, 0]), np.array([0, 1, 5]))
    assert sim.tolist() == pytest.approx([1.0, 0.0, 1 - 3 / 64])
    assert PH.similarity(h, np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0,)


def test_inspect_photo_hashes_the_decoded_photo_and_rejects_bad_ones():
    data = _jpeg(_photo(1))
    bad, h = inspect_photo(data, CONSTS)
    assert bad is None and h == PH.to_hex(PH.phash(pp.open_photo(data, CONSTS)))
    bad, h = inspect_photo(data[: len(data) // 2], CONSTS)
    assert bad is not None and bad[0] == "unreadable_photo" and h == ""


def test_ingest_row_carries_the_photo_hash():
    spec = load_collection_spec()
    tf = Transformer(spec, ColumnMap(), "model-a")
    rec = {"id": "p1", "title": "Red tee", "image": "a.jpg", "articleType": "Tshirts"}
    data = _jpeg(_photo(2))
    p = tf.finish(tf.parse(RawRecord(1, rec)), data, "a.jpg")
    assert isinstance(p, Product) and p.photo_hash == inspect_photo(data, CONSTS)[1]
    d = 4
    enc = EncodedBatch(["p1"], np.ones((1, d), np.float32), np.ones((1, d), np.float32), np.ones((1, d), np.float32))
    assert tf.row(p, enc, 0)[C.PHOTO_HASH] == p.photo_hash
    no_photo = tf.finish(tf.parse(RawRecord(2, {**rec, "id": "p2", "image": ""})), None, "")
    assert no_photo.photo_hash == "" and C.PHOTO_HASH not in tf.row(no_photo, enc, 0)

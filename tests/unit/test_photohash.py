"""Perceptual photo signatures (samestyle.photohash): a copy of a photo (the same pixels,
resized or re-compressed) keeps a signature cosine of 0.99+, another photo lands below
the floor dedup stretches from;
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


def _cos(a, b) -> float:
    return float(np.dot(PH.signature(a), PH.signature(b)))


@pytest.mark.parametrize("seed", range(5))
def test_copies_stay_close(seed):
    img = _photo(seed)
    assert _cos(img, img.copy()) == pytest.approx(1.0, abs=1e-6)
    for f in (0.5, 2.0):
        assert _cos(img.resize((int(img.width * f), int(img.height * f))), img) >= 0.99
    assert _cos(Image.open(io.BytesIO(_jpeg(img, quality=30))).convert("RGB"), img) >= 0.99


def test_different_photos_are_far():
    sigs = np.stack([PH.signature(_photo(seed)) for seed in range(12)])
    cos = (sigs @ sigs.T)[np.triu_indices(12, 1)]
    assert cos.max() < C.DEDUP_HASH_FLOOR, cos.max()
    h, _ = PH.parse([PH.to_hex(s) for s in sigs])
    a, b = np.triu_indices(12, 1)
    assert (PH.similarity(h, a, b, C.DEDUP_HASH_FLOOR) == 0).all()


def test_hex_round_trip_parse_and_similarity():
    sig = PH.signature(_photo(3))
    values = [PH.to_hex(sig), PH.to_hex(-sig), None, "", "zz" * PH.DIM, PH.to_hex(np.zeros(PH.DIM))]
    assert len(values[0]) == PH.HEX_LEN
    h, has = PH.parse(values)
    assert has.tolist() == [True, True, False, False, False, False]
    assert h.dtype == np.float32 and np.allclose(h[0], sig, atol=0.01)
    assert PH.cosine(h, np.array([0, 0]), np.array([0, 1])).tolist() == pytest.approx([1.0, -1.0], abs=1e-5)
    assert PH.similarity(h, np.array([0, 0]), np.array([0, 1]), 0.98).tolist() == pytest.approx([1.0, 0.0], abs=1e-4)
    assert PH.similarity(h, np.zeros(0, np.int64), np.zeros(0, np.int64), 0.98).shape == (0,)


def test_inspect_photo_hashes_the_decoded_photo_and_rejects_bad_ones():
    data = _jpeg(_photo(1))
    bad, h = inspect_photo(data, CONSTS)
    assert bad is None and h == PH.photo_hash(pp.open_photo(data, CONSTS))
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

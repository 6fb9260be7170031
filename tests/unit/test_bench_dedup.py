"""`samestyle bench dedup`: the pure pieces (the CLI run over a real catalogue is
tests/integration/test_bench_dedup.py): a re-listed photo's edits each work on the photo
the previous one left, and the second scoring that sets near-identical photos apart."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from samestyle import contract as C
from samestyle.bench import dedup as B

W, H = 240, 320


def _position_photo() -> bytes:
    """Red is the column, green the row (0..255 across the photo), blue a constant 200:
    a crop's share reads from the colours at its edges, black fill from blue."""
    x = np.linspace(0, 255, W)[None, :].repeat(H, 0)
    y = np.linspace(0, 255, H)[:, None].repeat(W, 1)
    rgb = np.stack([x, y, np.full((H, W), 200.0)], axis=2).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _resize_then_crop(data: bytes, wanted: int) -> list[tuple[bytes, str]]:
    """`wanted` re-listings whose edits were a resize, then a crop (seeds tried in order)."""
    out = []
    for seed in range(2000):
        photo, how = B.relist_photo(data, random.Random(seed))
        if how == "resize+crop":
            out.append((photo, how))
            if len(out) == wanted:
                return out
    raise AssertionError(f"only {len(out)} of {wanted} resize+crop re-listings in 2000 seeds")


def test_a_crop_after_a_resize_keeps_80_to_95_percent_without_black_fill():
    data = _position_photo()
    sizes = set()
    for photo, _ in _resize_then_crop(data, 12):
        img = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"), np.float64)
        h, w = img.shape[:2]
        sizes.add((w, h))
        kept_x = (img[:, -2, 0].mean() - img[:, 1, 0].mean()) / 255 * w / (w - 3)
        kept_y = (img[-2, :, 1].mean() - img[1, :, 1].mean()) / 255 * h / (h - 3)
        assert 0.77 <= kept_x <= 0.97 and 0.77 <= kept_y <= 0.97, (w, h, kept_x, kept_y)
        assert abs(kept_x - kept_y) < 0.04  # one crop fraction for both sides
        assert img[:, :, 2].min() > 150, (w, h)  # no black fill anywhere
        assert (w, h) != (W, H)  # the resize is kept: the crop returns the size it received
    assert len(sizes) > 1  # several resize factors were exercised


def test_grey_thumb_is_60_by_80():
    g = B.grey_thumb(_position_photo(), C.preprocess_constants())
    assert g.shape == (B.NEAR_SIZE[1], B.NEAR_SIZE[0]) and g.dtype == np.uint8


# rows 0..5 the catalogue, 6 and 7 re-listings of rows 4 and 3.
# Clusters: {0, 1} share a byte-identical photo; {2, 3} one photo saved twice (3's is 2's
# with faint pixel noise); {4, 5, 6} two different catalogue photos and 4's re-listing
# (its photo equal to 4's, but a re-listing pair is never set apart); 7 alone (missed).
CIDS = np.array([0, 0, 2, 2, 4, 4, 4, 7])
SAME_PHOTO = np.array([9, 9, -1, -1, -1, -1, -1, -1])
TRUTH = [(4, 6), (3, 7)]
PHOTO = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 3, 6: 2, 7: 1}  # which picture each row shows


def _picture(k: int) -> np.ndarray:
    """A product-like grey photo: a dark shape of picture k's own outline on white."""
    v, u = np.mgrid[0:80, 0:60]
    g = np.random.default_rng(k)
    cx, cy, rx, ry = g.uniform(20, 40), g.uniform(30, 50), g.uniform(8, 20), g.uniform(10, 30)
    inside = ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 < 1
    return np.where(inside, 60 + 40 * np.sin(u / g.uniform(2, 5)), 250).astype(np.float32)


def _grey_of(row, noise=1.5):
    img = _picture(PHOTO[row])
    if row == 3:  # the same picture saved again: JPEG-like faint noise
        img = img + np.random.default_rng(3).normal(0, noise, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def test_the_copy_score_tells_a_resave_from_a_lookalike_whatever_their_mean_difference():
    a, resave, other = _grey_of(2), _grey_of(3), _grey_of(5)
    assert B.copy_score(a, resave) > 0.995 > B.copy_score(a, other)
    # two small products on white: a few grey levels apart on average, and still no copy
    small = np.full((80, 60), 250, np.uint8)
    x, y = small.copy(), small.copy()
    x[10:18, 10:18], y[50:58, 40:48] = 40, 40  # 8x8 px each
    assert B.grey_difference(x, y) < 6 and B.copy_score(x, y) < 0.5
    assert B.copy_score(small, small) == 0.0  # a flat photo correlates with nothing


def test_linked_catalogue_pairs_leave_out_relistings_and_byte_identical_photos():
    got = B.linked_catalogue_pairs(CIDS, 6, SAME_PHOTO)
    assert sorted(map(tuple, got.tolist())) == [(2, 3), (4, 5)]


def test_near_identical_pairs_scored_apart_beside_the_unchanged_scoring():
    near = B.near_identical_linked(CIDS, 6, SAME_PHOTO, _grey_of)
    assert near == 1  # (2, 3); (4, 5) are two pictures; (4, 6) involves a re-listing
    s = B.score(CIDS, TRUTH, SAME_PHOTO, 0.9, links=4, near_identical=near)
    # first scoring: 5 linked pairs, 1 byte-identical left out, 1 true of the 4 judged
    assert (s["predicted_pairs"], s["byte_identical_linked"], s["tp"]) == (5, 1, 1)
    assert (s["precision"], s["recall"], s["f1"]) == (0.25, 0.5, pytest.approx(1 / 3, abs=1e-4))
    # second: (2, 3) counts neither way too -> 1 true of 3 judged, recall the same
    na = s["near_identical_apart"]
    assert na["near_identical_linked"] == 1 and na["recall"] == 0.5
    assert na["precision"] == pytest.approx(1 / 3, abs=1e-4) and na["f1"] == pytest.approx(0.4, abs=1e-4)
    plain = B.score(CIDS, TRUTH, SAME_PHOTO, 0.9, links=4)
    assert {k: v for k, v in s.items() if k != "near_identical_apart"} == \
        {k: v for k, v in plain.items() if k != "near_identical_apart"}


def test_an_unreadable_photo_is_never_near_identical():
    assert B.near_identical_linked(CIDS, 6, SAME_PHOTO, lambda r: None if r == 2 else _grey_of(r)) == 0


def test_the_copy_limit_is_measured_on_the_runs_own_recompressed_relistings():
    # 40 JPEG-only re-listings, ever noisier copies of their source, beside
    # re-listings of other kinds/edits that must not count
    photos = {}
    truth, kinds, edits = [], [], []
    for n in range(40):
        src = _picture(n)
        photos[2 * n] = src.astype(np.uint8)
        photos[2 * n + 1] = np.clip(src + np.random.default_rng(n).normal(0, n / 4, src.shape), 0, 255).astype(np.uint8)
        truth.append((2 * n, 2 * n + 1)), kinds.append("photo"), edits.append("jpeg")
    photos[200], photos[201] = _picture(100).astype(np.uint8), _picture(101).astype(np.uint8)  # a crop: no copy
    truth.append((200, 201)), kinds.append("photo"), edits.append("crop+jpeg")
    truth.append((200, 201)), kinds.append("both"), edits.append("jpeg/typo")
    got = B.near_limit(truth, kinds, edits, photos.get)
    scores = [B.copy_score(photos[2 * n], photos[2 * n + 1]) for n in range(40)]
    assert got["jpeg_relistings"] == 40
    assert got["min_ncc"] == pytest.approx(np.quantile(scores, B.NEAR_QUANTILE), abs=1e-5)
    assert got["min_ncc"] > B.copy_score(photos[200], photos[201])
    # too few to measure: the fixed default, and the report says so
    few = B.near_limit(truth[:3], kinds[:3], edits[:3], photos.get)
    assert few["min_ncc"] == B.NEAR_NCC and "default" in few["from"]


def test_a_lower_copy_limit_sets_more_catalogue_pairs_apart():
    assert B.near_identical_linked(CIDS, 6, SAME_PHOTO, _grey_of, limit=0.99) == 1
    assert B.near_identical_linked(CIDS, 6, SAME_PHOTO, _grey_of, limit=-1.0) == 2  # (4, 5) too


def test_false_catalogue_links_are_told_apart_by_the_catalogues_own_facts():
    # (2, 3) one photo saved twice; (4, 5) two pictures under one title and colour, then
    # under two colours, then two titles with no colour stored
    kinds = lambda titles, colours: B.catalogue_link_kinds(CIDS, 6, SAME_PHOTO, _grey_of, 0.99, titles, colours)  # noqa: E731
    same = ["a", "a", "x", "y", "Puma  Men Tee", "puma men tee", "t", "u"]
    assert kinds(same, ["Red"] * 8) == {"copies": 1, "same_listing_text": 1, "other_colour": 0, "other": 0}
    colours = ["Red"] * 5 + ["Blue", None, None]
    assert kinds(same, colours) == {"copies": 1, "same_listing_text": 0, "other_colour": 1, "other": 0}
    other = same[:5] + ["Nike Men Tee", "t", "u"]
    assert kinds(other, [None] * 8) == {"copies": 1, "same_listing_text": 0, "other_colour": 0, "other": 1}
    assert kinds(same, [None] * 8)["same_listing_text"] == 1  # no colour stored: the title alone


def test_the_same_listing_bound_sets_those_pairs_apart_on_top_of_the_copies():
    s = B.score(CIDS, TRUTH, SAME_PHOTO, 0.9, links=4, near_identical=1, same_listing=1)
    lb = s["listing_text_apart"]  # 1 true of the 2 judged after (2, 3) and (4, 5) are set apart
    assert lb["same_listing_text_linked"] == 1 and lb["precision"] == 0.5 and lb["recall"] == 0.5
    assert s["near_identical_apart"]["precision"] == pytest.approx(1 / 3, abs=1e-4)  # unchanged
    assert "listing_text_apart" not in B.score(CIDS, TRUTH, SAME_PHOTO, 0.9, links=4, near_identical=1)


def test_why_missed_puts_each_missed_relisting_under_one_reason():
    from samestyle import dedup as D
    from samestyle import photohash as PH

    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    image = unit(rng.normal(size=(8, 32))).astype(np.float32)
    image[1] = image[0]  # 0-1: a re-listing scoring 1.0, linked
    image[3] = unit(image[2] + 0.8 * rng.normal(size=32))  # 2-3: another photo: under the threshold
    image[5] = image[4]  # 4-5: the same photo, the titles name other shades: a rule
    image[7] = image[6]  # 6-7: scores 1.0, but the clustering left it out: outmatched
    titles = ["Puma Black Shoes", "Puma Black Shoes", "Nike Tee", "Nike Tee", "Lakme Lipstick 63",
              "Lakme Lipstick 10", "Roadster Jeans", "Roadster Jeans"]
    sig = unit(rng.normal(size=(8, PH.DIM)))
    sig[1], sig[5], sig[7] = sig[0], sig[4], sig[6]
    cat = D.Catalogue([f"p{n}" for n in range(8)], {C.IMAGE_VEC: image}, ["A"] * 8, None,
                      {"title": titles, C.PHOTO_HASH: [PH.to_hex(s) for s in sig]})
    truth = [(0, 1), (2, 3), (4, 5), (6, 7)]
    cids = np.array([0, 0, 2, 3, 4, 5, 6, 7])
    m = B.why_missed(cat, truth, cids, 0.93, ["photo", "both", "title", "photo"])
    assert (m["missed"], m["of"], m["rule"], m["below"], m["outmatched"]) == (3, 4, 1, 1, 1)
    assert m["by_kind"]["both"] == {"rule": 0, "below": 1, "outmatched": 0}
    parts = m["below_parts"]
    assert parts["pairs"] == 1 and parts["gated_out"] == 1  # image cosine about 0.2: under the gate's 0.7
    assert parts["quartiles"]["score"][1] < 0.93 and parts["quartiles"]["title_overlap"][1] == 1.0
    greys = np.zeros((8, 80, 60), np.uint8)
    greys[2] = greys[3] = (rng.random((80, 60)) * 255).astype(np.uint8)  # one photo after all: registration says so
    with_photos = B.why_missed(cat, truth, cids, 0.93, ["photo", "both", "title", "photo"], greys=greys)
    got = with_photos["below_parts"]
    assert got["quartiles"]["registration"][1] == 0.0 and got["quartiles"]["registration_without_gate"][1] > 0.9
    assert got["over_without_gate"] == 1
    assert B.why_missed(cat, truth, np.zeros(8, np.int64), 0.93, ["photo"] * 4)["missed"] == 0

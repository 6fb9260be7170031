"""Batched text and photo searches (each result equal to its single search), and the
composite field (a weighted multi-field search as one exact call), against real
Milvus Lite with query vectors from the real ONNX encoder."""

from __future__ import annotations

import numpy as np
import pytest

from samestyle.errors import InputError
from samestyle.query import requests as R

K = 6


def _same(batch_res, single):
    assert batch_res.ids == single.ids
    assert [h.score for h in batch_res.hits] == pytest.approx([h.score for h in single.hits], abs=1e-4)
    assert batch_res.fields == single.fields and batch_res.views_used == single.views_used
    assert batch_res.query == single.query and batch_res.search_type == single.search_type


@pytest.mark.parametrize("kw", [{}, {"target": "all"}, {"target": "image", "k": 3, "offset": 2},
                                {"filters": ["price<=2500"]}, {"target": "all", "ranker": "rrf"}])
def test_by_texts_gives_each_text_its_by_text_hits(searcher, search_catalogue, kw):
    titles = [r["title"] for r in search_catalogue.rows[:12]]
    kw = {"k": K, **kw}
    res = searcher.by_texts(titles + ["   "], **kw)
    assert list(res.results) == [str(i) for i in range(len(titles))] and list(res.errors) == [str(len(titles))]
    assert res.errors[str(len(titles))].field == "text"
    assert res.calls == 1  # one plan shape: one Milvus call for all of them
    for i, t in enumerate(titles):
        _same(res.results[str(i)], searcher.by_text(t, **kw))


def test_by_photos_gives_each_photo_its_by_photo_hits(searcher, search_catalogue, tmp_path):
    rows = search_catalogue.rows[:10]
    photos = [search_catalogue.photos[r["id"]] for r in rows]
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_bytes(b"certainly not a JPEG")
    res = searcher.by_photos([photos[0].read_bytes(), *photos[1:], bad, tmp_path / "missing.jpg"], k=K)
    assert list(res.results) == [str(i) for i in range(len(photos))]
    assert set(res.errors) == {str(len(photos)), str(len(photos) + 1)}
    assert all(e.field == "photo" for e in res.errors.values()) and res.calls == 1
    for i, p in enumerate(photos):
        _same(res.results[str(i)], searcher.by_photo(p, k=K))
    both = searcher.by_photos(photos[:3], k=K, fields=["image_vec", "fused_vec"], group_by="category")
    assert both.calls == 3  # group_by: one call each
    for i, p in enumerate(photos[:3]):
        _same(both.results[str(i)], searcher.by_photo(p, k=K, fields=["image_vec", "fused_vec"], group_by="category"))


def test_batch_options_are_checked_once(searcher):
    with pytest.raises(InputError):
        searcher.by_texts(["red shirt"], target="nowhere")
    with pytest.raises(InputError):
        searcher.by_texts(["red shirt"], k=0)


def _exact(search_catalogue, plan, k):
    s = sum(w * (search_catalogue.vectors[f] @ np.asarray(plan.vectors[f], np.float32))
            for f, w in zip(plan.fields, plan.weights))
    order = np.lexsort(([r["id"] for r in search_catalogue.rows], -np.round(s, 5)))
    return [search_catalogue.rows[i]["id"] for i in order[:k]], s


@pytest.mark.parametrize("weights", [None, [0.6, 0.1, 0.3], [0.0, 1.0, 1.0]])
def test_composite_hybrid_is_the_exact_weighted_fusion(searcher, search_catalogue, weights):
    """One call on the composite field ranks by the exact weighted sum of per-field
    cosines (numpy over the stored vectors), and scores it: score == similarity."""
    assert searcher.composite == "views_vec"  # the lite profile's composite field
    for r in search_catalogue.rows[:40:8]:
        res = searcher.hybrid(text=r["title"], photo=search_catalogue.photos[r["id"]], k=K, weights=weights)
        assert res.fields == R.FIELDS
        views = searcher._encode(photo=search_catalogue.photos[r["id"]].read_bytes(), text=r["title"])
        plan = R.plan(views, R.FIELDS, k=K, weights=res.weights)  # None: the category's profile
        want, s = _exact(search_catalogue, plan, K)
        kth = np.sort(s)[-K]
        assert all(s[search_catalogue.index(h)] >= kth - 1e-4 for h in res.ids), (res.ids, want)
        for h in res.hits:
            assert h.score == pytest.approx(h.similarity, abs=1e-4)


def test_composite_and_hybrid_search_agree_on_the_top_hit(searcher, search_catalogue):
    try:
        searcher.use_composite = False
        assert searcher.composite is None
        plain = [searcher.by_product(r["id"], k=K, fields=list(R.FIELDS)) for r in search_catalogue.rows[:20:4]]
    finally:
        searcher.use_composite = True
    comp = [searcher.by_product(r["id"], k=K, fields=list(R.FIELDS)) for r in search_catalogue.rows[:20:4]]
    for a, b in zip(plain, comp):
        # The WeightedRanker only fuses each field's own candidates; on this small
        # collection those cover the top hits, so both orders start alike.
        assert a.ids[0] == b.ids[0] and a.hits[0].similarity == pytest.approx(b.hits[0].similarity, abs=1e-4)

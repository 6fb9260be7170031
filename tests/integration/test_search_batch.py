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
                                {"filters": ["price<=2500"]},
                                pytest.param({"target": "all", "ranker": "rrf"}, marks=pytest.mark.slow)])  # long
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
        if res.colour is not None:  # the views as the search sent them (their colour part scaled)
            views = {v: R.with_colour(x, searcher.encoder.colour_dims, res.colour) for v, x in views.items()}
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


def test_http_texts_and_photos_batches(searcher, search_catalogue, tmp_path_factory):
    import base64

    from fastapi.testclient import TestClient

    from samestyle.config import Settings
    from samestyle.http import create_app

    rows = search_catalogue.rows[:4]
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("http-batch")), searcher=searcher)
    with TestClient(app) as api:
        r = api.post("/v1/search/texts", json={"texts": [x["title"] for x in rows] + [" "], "k": 3, "target": "all"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert list(body["results"]) == ["0", "1", "2", "3"] and list(body["errors"]) == ["4"] and body["calls"] == 1
        for i, x in enumerate(rows):
            single = api.post("/v1/search/text", json={"text": x["title"], "k": 3, "target": "all"}).json()
            assert [h["id"] for h in body["results"][str(i)]["hits"]] == [h["id"] for h in single["hits"]]
        photos = [base64.b64encode(search_catalogue.photos[x["id"]].read_bytes()).decode() for x in rows[:2]]
        r = api.post("/v1/search/photos", json={"images_b64": [photos[0], "%%not base64%%", photos[1]], "k": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert list(body["results"]) == ["0", "2"] and list(body["errors"]) == ["1"]
        assert body["errors"]["1"]["field"] == "image_b64"
        single = api.post("/v1/search/photo", json={"image_b64": photos[1], "k": 3}).json()
        assert [h["id"] for h in body["results"]["2"]["hits"]] == [h["id"] for h in single["hits"]]
        assert api.post("/v1/search/texts", json={"texts": []}).status_code == 422


def test_cli_texts_and_images_files(search_catalogue, tmp_path):
    import json

    from click.testing import CliRunner

    from samestyle.cli.main import cli

    env = {"SAMESTYLE_MILVUS_URI": search_catalogue.db, "SAMESTYLE_DATA_DIR": str(tmp_path),
           "SAMESTYLE_COLLECTION": "products"}
    rows = search_catalogue.rows[:3]
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(x["title"] for x in rows) + "\n\n")
    run = CliRunner().invoke
    r = run(cli, ["search", "--texts", str(texts), "-k", "3", "--encoder", "onnx", "--json"], env=env,
            catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert list(rep["results"]) == ["0", "1", "2"] and rep["calls"] == 1
    for i, x in enumerate(rows):
        single = json.loads(run(cli, ["search", "--text", x["title"], "-k", "3", "--encoder", "onnx", "--json"],
                                env=env, catch_exceptions=False).stdout)
        assert [h["id"] for h in rep["results"][str(i)]["hits"]] == [h["id"] for h in single["hits"]]
    images = tmp_path / "images.txt"
    images.write_text(f"{search_catalogue.photos[rows[0]['id']]}\n{tmp_path / 'missing.jpg'}\n")
    human = run(cli, ["search", "--images", str(images), "-k", "3", "--encoder", "onnx"], env=env,
                catch_exceptions=False)
    assert human.exit_code == 0, human.output
    assert "1 queries searched, 1 failed, 1 Milvus calls" in human.output and "query [1]:" in human.output

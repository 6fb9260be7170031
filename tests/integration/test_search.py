"""Same-style search against real Milvus Lite, with query vectors from the real ONNX
encoder, over the generated catalogue. The assertions hold for any sane encoder
(the shipped weights may be a placeholder): exact near-duplicates come back, a
product's own photo is its top hit, and the search mechanics (filters, group-by,
floor, pagination, exclusion, per-field scores) behave."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from samestyle.errors import InputError
from samestyle.query import filters as F
from samestyle.query.search import ProductNotFound

K = 10


def test_product_search_finds_near_duplicates_and_excludes_itself(searcher, search_catalogue):
    for orig, dup in search_catalogue.duplicates:
        res = searcher.by_product(orig, k=K)
        assert orig not in res.ids
        assert dup in res.ids, f"{dup} (near-duplicate of {orig}) not in {res.ids}"
        assert res.fields == ("fused_vec",) and res.views_used == {"fused_vec": "fused"}
        kept = searcher.by_product(orig, k=K, exclude_self=False)
        # 1 against itself, whatever share of its colour the search counts (query.requests.with_colour)
        assert kept.ids[0] == orig and kept.hits[0].scores["fused_vec"] == pytest.approx(1.0, abs=1e-3)


def test_product_without_photo_falls_back_to_views_it_has(milvus_store, filter_collection):
    from samestyle.query.search import Searcher
    from tests.fixtures.search import TEXT_ONLY_ID

    s = Searcher(milvus_store, "filters_v1")
    res = s.by_product(TEXT_ONLY_ID, k=K, fields=["image_vec", "fused_vec"])
    assert res.views_used == {"image_vec": "fused", "fused_vec": "fused"}  # its photo view is zero
    assert len(res.hits) == K and TEXT_ONLY_ID not in res.ids
    # Searched on image_vec alone, only products with a photo come back.
    other = s.by_product(next(iter(filter_collection)), k=50, fields=["image_vec"])
    assert TEXT_ONLY_ID not in other.ids and len(other.ids) == len(filter_collection) - 1
    assert "(has_image == true)" in other.filter


def test_unknown_product_is_a_not_found_input_error(searcher):
    with pytest.raises(ProductNotFound) as e:
        searcher.by_product("NOPE\" or id != \"x")
    assert e.value.user_error and e.value.field == "product_id"


def test_photo_search_own_photo_is_top_hit(searcher, search_catalogue):
    # The generator draws some listings pixel-identically (near-duplicates, and groups
    # that share garment, pattern and colour), so "top" allows a tie with those.
    for pid in [r["id"] for r in search_catalogue.rows[:40:7]] + [d for _, d in search_catalogue.duplicates[:3]]:
        res = searcher.by_photo(search_catalogue.photos[pid], fields=["image_vec"], k=5)
        assert pid in res.ids, f"{pid} not in {res.ids}"
        own = res.hits[res.ids.index(pid)].scores["image_vec"]
        assert own >= res.hits[0].scores["image_vec"] - 1e-3 and own > 0.99


def test_photo_search_finds_near_duplicates(searcher, search_catalogue):
    for orig, dup in search_catalogue.duplicates:
        res = searcher.by_photo(search_catalogue.photos[orig].read_bytes(), k=K)
        assert res.fields == ("image_vec",) and {orig, dup} <= set(res.ids)
    both = searcher.by_photo(search_catalogue.photos[orig], fields=["image_vec", "fused_vec"], k=K)
    assert both.fields == ("image_vec", "fused_vec") and sum(both.weights.values()) == pytest.approx(1.0)
    assert orig in both.ids


def test_photo_plus_modifier_is_one_fused_query(searcher, search_catalogue, onnx_encoder):
    from samestyle.encoders.base import ProductInput

    pid = search_catalogue.rows[0]["id"]
    photo = search_catalogue.photos[pid].read_bytes()
    res = searcher.by_photo_text(photo, "but in white", k=K)
    joint = onnx_encoder.encode_one(ProductInput("q", photo, "but in white")).fused[0]
    i = search_catalogue.index(res.ids[0])
    # The score Milvus ranked by is the joint query against the stored photo vector
    # (C.MODIFIER_FIELD: where the shipped model learnt to put the asked colourway).
    assert res.hits[0].score == pytest.approx(float(joint @ search_catalogue.vectors["image_vec"][i]), abs=1e-3)
    assert res.views_used == {"image_vec": "fused"}
    both = searcher.by_photo_text(photo, "but in white", k=K, fields=["fused_vec", "image_vec"])
    assert both.views_used == {"fused_vec": "fused", "image_vec": "fused"}


@pytest.mark.parametrize("target,fields", [("text", ("text_vec",)), ("image", ("image_vec",)),
                                           ("all", ("image_vec", "text_vec", "fused_vec"))])
def test_text_search_targets(searcher, search_catalogue, target, fields):
    title = search_catalogue.rows[3]["title"]
    res = searcher.by_text(title, target=target, k=K)
    assert res.fields == fields and len(res.hits) == K
    assert set(res.views_used.values()) == {"text"}
    if target == "text":  # a product's own title finds it
        assert search_catalogue.rows[3]["id"] in res.ids[:3]


def test_per_field_scores_equal_ip_of_stored_vectors(searcher, search_catalogue):
    pid = search_catalogue.rows[5]["id"]
    from samestyle.query.requests import with_colour

    res = searcher.by_product(pid, k=5, fields=["image_vec", "text_vec", "fused_vec"], ranker="weighted")
    # the product's stored vectors as a product search sends them (its colour part scaled)
    q = {f: with_colour(search_catalogue.vectors[f][search_catalogue.index(pid)], searcher.encoder.colour_dims,
                        res.colour if res.colour is not None else 1.0) for f in search_catalogue.vectors}
    for h in res.hits:
        j = search_catalogue.index(h.id)
        for f, v in q.items():
            assert h.scores[f] == pytest.approx(float(v @ search_catalogue.vectors[f][j]), abs=1e-4)
        assert h.similarity == pytest.approx(sum(res.weights[f] * h.scores[f] for f in res.fields), abs=1e-5)
        assert h.matched == max(res.fields, key=h.scores.get)
        # Weighted ranker without normalisation: Milvus's score is the weighted mean over
        # the fields whose candidate list held the hit (all of them for the top hit).
        subsets = itertools.chain.from_iterable(itertools.combinations(res.fields, n) for n in (1, 2, 3))
        assert any(abs(h.score - sum(res.weights[f] * h.scores[f] for f in sub)) < 1e-3 for sub in subsets)
    assert res.hits[0].score == pytest.approx(res.hits[0].similarity, abs=1e-3)


def test_weights_and_profiles(searcher, search_catalogue):
    # a product whose category has its own weight profile (e.g. Tshirts)
    row = next(r for r in search_catalogue.rows if r["category"] in searcher.profiles.categories)
    pid = row["id"]
    res = searcher.by_product(pid, k=3, fields=["image_vec", "text_vec"])
    assert res.profile == row["category"]
    prof = searcher.profiles.categories[res.profile]
    total = prof["image_vec"] + prof["text_vec"]
    assert res.weights["image_vec"] == pytest.approx(prof["image_vec"] / total)
    res = searcher.by_product(pid, k=3, fields=["image_vec", "text_vec"], weights=[3, 1])
    assert res.weights == pytest.approx({"image_vec": 0.75, "text_vec": 0.25})
    rrf = searcher.by_product(pid, k=3, fields=["image_vec", "text_vec"], ranker="rrf")
    assert rrf.ranker == "rrf" and len(rrf.hits) == 3


def test_filters_restrict_hits(searcher, search_catalogue):
    pid = search_catalogue.rows[0]["id"]
    cat = search_catalogue.rows[0]["category"]
    res = searcher.by_product(pid, k=K, filters=[f"category={cat}", "price<=2500"])
    assert res.hits and all(h.entity["category"] == cat and h.entity["price"] <= 2500 for h in res.hits)
    res = searcher.by_product(pid, k=K, filters={"brand": ["Puma", "Nike"], "colour": {"ne": "Red"}})
    assert all(h.entity["brand"] in ("Puma", "Nike") and h.entity["colour"] != "Red" for h in res.hits)
    with pytest.raises(InputError) as e:
        searcher.by_product(pid, filters=["nosuchfield=1"])
    assert e.value.field == "nosuchfield" and "price" in e.value.fix  # lists what exists


def test_group_by_returns_distinct_values(searcher, search_catalogue):
    res = searcher.by_text("striped t-shirt", k=5, group_by="brand")
    brands = [h.entity["brand"] for h in res.hits]
    assert len(brands) == len(set(brands)) >= 2
    hyb = searcher.by_product(search_catalogue.rows[0]["id"], k=4, fields=["image_vec", "fused_vec"],
                              group_by="category")
    cats = [h.entity["category"] for h in hyb.hits]
    assert len(cats) == len(set(cats))
    prices = [h.entity.get("price") for h in searcher.by_text("tee", k=5, group_by="price").hits]
    assert len(prices) == len(set(prices))  # a dynamic attribute: grouped client-side
    with pytest.raises(InputError):
        searcher.by_text("tee", group_by="nosuch")


def test_floor_removes_hits_below_it(searcher, search_catalogue):
    pid = search_catalogue.rows[2]["id"]
    full = searcher.by_product(pid, k=30)
    sims = [h.similarity for h in full.hits]
    floor = float(np.median(sims))
    cut = searcher.by_product(pid, k=30, floor=floor)
    assert cut.ids == [h.id for h in full.hits if h.similarity >= floor]
    assert 0 < len(cut.hits) < len(full.hits)


@pytest.mark.parametrize("fields", [("fused_vec",), ("image_vec", "text_vec")])
def test_pagination_pages_concatenate_to_unpaged(searcher, search_catalogue, fields):
    pid = search_catalogue.rows[4]["id"]
    full = searcher.by_product(pid, k=15, fields=list(fields)).ids
    pages = [searcher.by_product(pid, k=5, offset=o, fields=list(fields)).ids for o in (0, 5, 10)]
    assert all(len(p) == 5 for p in pages)
    assert len(set(pages[0]) | set(pages[1]) | set(pages[2])) == 15
    assert pages[0] + pages[1] + pages[2] == full


def test_exclusions(searcher, search_catalogue):
    orig, dup = search_catalogue.duplicates[0]
    res = searcher.by_photo(search_catalogue.photos[orig], k=K, exclude=[orig, dup])
    assert orig not in res.ids and dup not in res.ids


def test_hybrid_any_fields_for_text_and_photo(searcher, search_catalogue):
    pid = search_catalogue.rows[7]["id"]
    row = search_catalogue.rows[7]
    res = searcher.hybrid(text=row["title"], photo=search_catalogue.photos[pid], k=K)
    assert res.fields == ("image_vec", "text_vec", "fused_vec")
    assert res.views_used == {"image_vec": "image", "text_vec": "text", "fused_vec": "fused"}
    assert res.ids[0] == pid  # its own photo and title together
    prod = searcher.hybrid(product_id=pid, k=K)
    assert prod.search_type == "hybrid" and pid not in prod.ids


@pytest.mark.parametrize("kw,field", [({"k": 0}, "k"), ({"k": 1001}, "k"), ({"offset": -1}, "offset"),
                                      ({"floor": 2.0}, "floor"), ({"ranker": "max"}, "ranker"),
                                      ({"fields": ["price"]}, "fields"), ({"weights": [1, 2, 3]}, "weights")])
def test_bad_options_are_input_errors(searcher, search_catalogue, kw, field):
    with pytest.raises(InputError) as e:
        searcher.by_product(search_catalogue.rows[0]["id"], **kw)
    assert e.value.field == field


def test_bad_photo_is_input_error_naming_the_field(searcher):
    with pytest.raises(InputError) as e:
        searcher.by_photo(b"not a photo")
    assert e.value.field == "photo"


# --- filter injection: values stay literals --------------------------------------------------
def test_adversarial_filter_values_match_only_literal_rows(milvus_store, filter_collection):
    from samestyle.query.search import Searcher

    s = Searcher(milvus_store, "filters_v1")
    any_id = next(iter(filter_collection))
    for pid, brand in filter_collection.items():
        for spec in ({"brand": brand}, [F.Eq("colour", brand)], {"brand": [brand]}):
            res = s.by_product(any_id, k=50, exclude_self=False, filters=spec)
            assert res.ids == [pid], f"{brand!r} via {spec!r} matched {res.ids}"
        neg = s.by_product(any_id, k=50, exclude_self=False, filters={"brand": {"ne": brand}})
        assert sorted(neg.ids) == sorted(p for p in filter_collection if p != pid)
    # The CLI form takes the value verbatim after the first operator.
    res = s.by_product(any_id, k=50, exclude_self=False, filters=['brand=" or brand != "'])
    assert [filter_collection[i] for i in res.ids] == ['" or brand != "']
    pre = s.by_product(any_id, k=50, exclude_self=False, filters=[F.Prefix("brand", "50% ")])
    assert [filter_collection[i] for i in pre.ids] == ["50% off_"]


def test_encoder_of_another_model_is_refused(milvus_store, filter_collection, onnx_encoder):
    from samestyle.errors import SchemaMismatch
    from samestyle.query.search import Searcher

    s = Searcher(milvus_store, "filters_v1", encoder=onnx_encoder)
    with pytest.raises(SchemaMismatch) as e:
        s.by_text("red dress")
    assert "other-model" in e.value.message and e.value.fix


# --- the CLI over the same API ---------------------------------------------------------------
@pytest.fixture()
def cli_env(search_catalogue, tmp_path):
    return {"SAMESTYLE_MILVUS_URI": search_catalogue.db, "SAMESTYLE_DATA_DIR": str(tmp_path),
            "SAMESTYLE_COLLECTION": "products"}


def _cli(args, env):
    from click.testing import CliRunner

    from samestyle.cli.main import cli

    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_cli_product_search_json_and_table(search_catalogue, cli_env):
    import json

    orig, dup = search_catalogue.duplicates[1]
    r = _cli(["search", "--product", orig, "-k", "5", "--filter", "brand!=nobody", "--json"], cli_env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    ids = [h["id"] for h in out["hits"]]
    assert dup in ids and orig not in ids and out["filter"].startswith('(brand != "nobody")')
    r = _cli(["search", "--product", orig, "--fields", "image,text", "--weights", "3,1", "--group-by", "brand"],
             cli_env)
    assert r.exit_code == 0 and "weights image=0.75, text=0.25" in r.output and "matched" in r.output


def test_cli_text_and_photo_search(search_catalogue, cli_env, onnx_encoder, monkeypatch):
    """The CLI gets its encoder from samestyle.serve.encoder_for (Triton); here that
    returns the in-process ONNX encoder, whose vectors are the same."""
    import json

    import samestyle.serve as serve

    class Borrowed:  # the session encoder, not closed by the command
        def __getattr__(self, name):
            return getattr(onnx_encoder, name)

        def close(self):
            pass

    monkeypatch.setattr(serve, "encoder_for", lambda settings, **kw: Borrowed())
    row = search_catalogue.rows[10]
    r = _cli(["search", "--text", row["title"], "--json"], cli_env)
    assert r.exit_code == 0, r.output
    assert row["id"] in [h["id"] for h in json.loads(r.stdout)["hits"]][:3]
    r = _cli(["search", "--image", str(search_catalogue.photos[row["id"]]), "--modifier", "but white", "-k", "3"],
             cli_env)
    assert r.exit_code == 0 and "photo_text search" in r.output


@pytest.mark.parametrize("args,msg", [
    (["search"], "exactly one of"),
    (["search", "--product", "P00001", "--text", "x"], "exactly one of"),
    (["search", "--text", "x", "--modifier", "y"], "--modifier goes with --image"),
    (["search", "--product", "P00001", "-k", "1001"], "1001"),
])
def test_cli_usage_errors(cli_env, args, msg):
    r = _cli(args, cli_env)
    assert r.exit_code == 2 and msg in r.output


def test_cli_input_errors_are_one_line(cli_env):
    r = _cli(["search", "--product", "NOPE"], cli_env)
    assert r.exit_code == 2 and "product [NOPE] is not in collection" in r.output
    r = _cli(["search", "--product", "P00001", "--filter", "colr=Red"], cli_env)
    assert r.exit_code == 2 and "unknown filter field [colr]" in r.output


def test_cli_dedup_finds_the_near_duplicates(search_catalogue, cli_env, tmp_path, onnx_encoder):
    import json

    # Threshold from the data: just under the least similar near-duplicate pair, so the
    # test holds for any encoder; that pair must then be linked.
    vec = search_catalogue.vectors["image_vec"]
    ix = search_catalogue.index
    thr = round(min(float(vec[ix(o)] @ vec[ix(d)]) for o, d in search_catalogue.duplicates) - 0.005, 3)
    out = tmp_path / "dups.jsonl"
    r = _cli(["dedup", "--field", "image_vec", "--threshold", str(thr), "--out", str(out), "--label-col",
              "style_group", "--sweep", "0.5,0.999", "--json"], cli_env)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    clusters = [json.loads(line) for line in out.read_text().splitlines()]
    assert rep["products"] == len(search_catalogue.rows)
    assert rep["model_version"] == onnx_encoder.model_version  # the model that made the vectors
    assert rep["clusters_written"] == len(clusters) == rep["clusters"] > 0
    together = {frozenset(c["members"]) for c in clusters}
    for orig, dup in search_catalogue.duplicates:
        assert any({orig, dup} <= m for m in together), f"{orig}/{dup} not clustered"
    cat = {r["id"]: r["category"] for r in search_catalogue.rows}
    assert all(len({cat[m] for m in c["members"]}) == 1 for c in clusters)  # within a category only
    assert all(c["score_min"] >= thr - 1e-4 for c in clusters)
    # Scored against style_group: duplicates share their original's group, so TP > 0.
    assert rep["true_pairs"] > 0 and rep["tp"] > 0 and 0 < rep["precision"] <= 1 and 0 < rep["recall"] <= 1
    assert [s["threshold"] for s in rep["sweep"]] == sorted({0.5, thr, 0.999})
    assert rep["sweep"][0]["predicted_pairs"] >= rep["sweep"][-1]["predicted_pairs"]
    csv_path = search_catalogue.csv_path
    from_file = _cli(["dedup", "--labels", str(csv_path), "--label-col", "style_group", "--threshold", str(thr),
                      "--field", "image_vec", "--json"], cli_env)
    assert json.loads(from_file.stdout)["tp"] == rep["tp"]
    # the default method reads ingest's thumbnails for its crop registration (none: signature only)
    r = _cli(["dedup", "--json"], cli_env)
    assert r.exit_code == 0, r.output
    default = json.loads(r.stdout)
    assert default["field"] == "photo+title" and isinstance(default["photos_registered"], int)
    together = {frozenset(c["members"]) for c in default["duplicates"]}
    assert all(any({o, d} <= m for m in together) for o, d in search_catalogue.duplicates)


@pytest.mark.slow  # a benchmark run (CLI subprocess over the catalogue)
def test_bench_search_quick(search_catalogue, cli_env, tmp_path):
    import json

    plot = tmp_path / "search.png"
    r = _cli(["bench", "search", "--quick", "--encoder", "onnx", "--label-col", "style_group", "--photo-dir",
              str(search_catalogue.root), "--plot",
              "--plot-file", str(plot), "--json"], cli_env)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["products"] == len(search_catalogue.rows)
    for t in ("product", "text", "photo", "photo_text", "hybrid"):
        runs = rep["latency"][t]
        assert [x["concurrency"] for x in runs] == [1, 2] and all(x["errors"] == 0 for x in runs), runs
        assert all(x["latency_ms"]["p50"] <= x["latency_ms"]["p99"] for x in runs)
    assert all(0 <= v["recall"] <= 1 for v in rep["recall"].values())
    b = rep["product_batched"]  # the product queries again, many to a call
    assert b["products"] == rep["latency"]["product"][0]["queries"] == b["answered"] and b["errors"] == 0
    assert 1 <= b["calls"] < b["products"] and b["per_product_ms"] > 0
    assert rep["hit_rate"]["queries"] > 0 and plot.stat().st_size > 0
    h = rep["hybrid_fusion"]  # the 3-field weighted search three ways, beside exact numpy fusion
    assert h["composite_field"] == "views_vec" and h["queries"] == 10
    for way in ("hybrid_search", "composite"):
        assert 0 <= h[way]["recall_vs_exact_fusion"] <= 1 and h[way]["p50_ms"] > 0
    assert h["composite"]["recall_vs_exact_fusion"] >= h["hybrid_search"]["recall_vs_exact_fusion"] - 0.05
    t = rep["text_batched"]
    assert t["answered"] == t["queries"] and t["errors"] == 0 and t["calls"] == 1
    assert t["identical_to_single"] == t["checked_against_single"]
    assert rep["exact_ceiling_ms"]["rows"] == rep["products"] and Path(rep["plot_fusion"]).stat().st_size > 0


def test_contract_worked_example_runs(search_catalogue, monkeypatch, capsys):
    """docs/collection-contract.md's worked example, executed as written."""
    import re

    from samestyle.config import ROOT

    doc = (ROOT / "docs" / "collection-contract.md").read_text()
    code = re.search(r"<!-- worked-example -->\s*```python\n(.*?)```", doc, re.S).group(1)
    orig, dup = search_catalogue.duplicates[0]
    monkeypatch.setenv("SAMESTYLE_MILVUS_URI", search_catalogue.db)
    monkeypatch.setenv("SAMESTYLE_COLLECTION", search_catalogue.collection)
    monkeypatch.setenv("EXAMPLE_PRODUCT_ID", orig)
    monkeypatch.setenv("EXAMPLE_PHOTO", str(search_catalogue.photos[orig]))
    ns: dict = {}
    exec(compile(code, "collection-contract.md", "exec"), ns)  # noqa: S102 - our own documentation
    ns["client"].close()
    ids = [h["id"] for h in ns["same_style"]]
    assert dup in ids and orig not in ids
    cat = search_catalogue.rows[search_catalogue.index(orig)]["category"]
    assert ns["cross_modal"] and all(h["entity"]["category"] == cat for h in ns["cross_modal"])
    assert len(ns["modified"]) == 10
    assert ns["hybrid"][0]["id"] == orig  # its own photo and title
    assert "same style" in capsys.readouterr().out


# --- many products in one call ---------------------------------------------------------------

def _same(batch_res, single):
    assert batch_res.ids == single.ids
    assert [h.score for h in batch_res.hits] == pytest.approx([h.score for h in single.hits], abs=1e-5)
    assert batch_res.weights == pytest.approx(single.weights) and batch_res.profile == single.profile
    assert batch_res.views_used == single.views_used and [h.rank for h in batch_res.hits] == [h.rank for h in single.hits]


@pytest.mark.parametrize("kw", [
    {},  # fused -> fused, the product search default
    {"fields": ["image_vec", "text_vec", "fused_vec"]},  # hybrid: categories bring their own weights
    # one RRF call per product (the product itself excluded) plus each single search: long
    pytest.param({"fields": ["image_vec", "text_vec"], "ranker": "rrf", "k": 5, "offset": 3}, marks=pytest.mark.slow),
    {"fields": ["image_vec", "text_vec"], "ranker": "rrf", "exclude_self": False},
    {"filters": ["price<=2500"], "exclude_self": False},
])
def test_by_products_gives_each_product_its_by_product_hits(searcher, search_catalogue, kw):
    ids = [r["id"] for r in search_catalogue.rows[:30]]
    res = searcher.by_products(ids, **kw)
    assert list(res.results) == ids and not res.errors
    groups = {(r["category"] if r["category"] in searcher.profiles.categories else "-")
              for r in search_catalogue.rows[:30]}
    # weighted: one call per weight profile in play when several fields are ranked
    # together, else one; RRF (which ignores weights): one call, or one per product
    # when the product itself is excluded
    if kw.get("ranker") == "rrf":
        assert res.calls == (len(ids) if kw.get("exclude_self", True) else 1)
    else:
        # (with a composite field the weights live in the query vector: one call for all)
        assert res.calls == (len(groups) if len(kw.get("fields", ())) > 1 and not searcher.composite else 1)
    for pid in ids:
        single = searcher.by_product(pid, **kw)
        _same(res.results[pid], single)
        if "filters" not in kw:
            assert (pid in res.results[pid].ids) == (kw.get("exclude_self") is False)
        else:
            assert all(h.entity["price"] <= 2500 for h in res.results[pid].hits)


def test_by_products_reports_bad_ids_and_answers_the_good_ones(searcher, search_catalogue):
    good = [r["id"] for r in search_catalogue.rows[:3]]
    res = searcher.by_products([good[0], "NOPE\" or id != \"x", good[1], "", good[0], good[2]], k=4)
    assert list(res.results) == good  # request order, the repeated id once
    assert set(res.errors) == {"NOPE\" or id != \"x", ""}
    assert isinstance(res.errors["NOPE\" or id != \"x"], ProductNotFound)
    assert res.errors[""].field == "product_id"
    d = res.to_dict()
    assert d["errors"]["NOPE\" or id != \"x"]["field"] == "product_id" and len(d["results"]) == 3


def test_by_products_with_group_by_searches_one_by_one(searcher, search_catalogue):
    ids = [r["id"] for r in search_catalogue.rows[:3]]
    res = searcher.by_products(ids + ["NOPE"], k=4, fields=["image_vec", "fused_vec"], group_by="category")
    assert res.calls == 4 and list(res.errors) == ["NOPE"]
    for pid in ids:
        _same(res.results[pid], searcher.by_product(pid, k=4, fields=["image_vec", "fused_vec"], group_by="category"))


def test_cli_products_file_searches_each_and_reports_bad_ids(search_catalogue, cli_env, tmp_path):
    import json

    ids = [r["id"] for r in search_catalogue.rows[:5]]
    f = tmp_path / "ids.txt"
    f.write_text("\n".join(ids[:3] + ["", "NOPE"] + ids[3:]) + "\n")
    r = _cli(["search", "--products", str(f), "-k", "3", "--json"], cli_env)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert list(rep["results"]) == ids and list(rep["errors"]) == ["NOPE"]
    assert rep["errors"]["NOPE"]["code"] == "not_found" and rep["calls"] == 1
    for pid in ids:
        single = json.loads(_cli(["search", "--product", pid, "-k", "3", "--json"], cli_env).stdout)
        assert [h["id"] for h in rep["results"][pid]["hits"]] == [h["id"] for h in single["hits"]]
    human = _cli(["search", "--products", str(f), "-k", "3"], cli_env)
    assert human.exit_code == 0 and "5 products searched, 1 failed, 1 Milvus calls" in human.output
    assert "product [NOPE]: product [NOPE] is not in collection" in human.output
    both = _cli(["search", "--products", str(f), "--product", ids[0]], cli_env)
    assert both.exit_code == 2 and "exactly one of" in both.output


def test_the_ingested_collection_knows_the_models_colour_dims(searcher, search_catalogue, onnx_encoder):
    """`samestyle ingest` records the model's colour dimensions with the collection (here the
    shipped model's, through the real ingest path), so a product search asks for the same
    style in any colour (its query's colour part zeroed) and photo + modifier for the colour."""
    from samestyle import contract as C
    from samestyle.query.requests import DEFAULT_COLOUR, with_colour

    dims = C.colour_dims(onnx_encoder.manifest)
    assert dims == onnx_encoder.colour_dims
    desc = searcher.store.describe(search_catalogue.collection)
    assert int((desc.get("properties") or {}).get("samestyle.colour_dims", 0)) == dims
    if not dims:
        pytest.skip("the shipped model keeps no colour apart")
    pid = search_catalogue.rows[0]["id"]
    res = searcher.by_product(pid, k=K)
    assert res.colour == DEFAULT_COLOUR["product"] == 0.0
    fused = search_catalogue.vectors["fused_vec"]
    own = fused[search_catalogue.index(pid)]
    q = with_colour(own, dims, 0.0)
    assert float(q @ own) == pytest.approx(1.0, abs=1e-5)  # a product still scores 1 against itself
    top = search_catalogue.index(res.ids[0])
    assert res.hits[0].score == pytest.approx(float(q @ fused[top]), abs=1e-3)
    full = searcher.by_product(pid, k=K, colour=1.0)
    assert full.colour == 1.0
    assert full.hits[0].score == pytest.approx(
        float(fused[search_catalogue.index(pid)] @ fused[search_catalogue.index(full.ids[0])]), abs=1e-3)
    photo = search_catalogue.photos[pid].read_bytes()
    assert searcher.by_photo_text(photo, "but in white", k=K).colour == DEFAULT_COLOUR["photo_text"] == 1.0

"""The product lifecycle over a real Milvus Lite server and the real ONNX encoder: the
Python API (samestyle.connect) and its documented worked example, the HTTP endpoints
of samestyle.http_lifecycle (upsert, get, delete, collections, the one-endpoint
search), and the CLI finding a running `serve` through the data directory's advert."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import samestyle
from samestyle.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _photo(search_catalogue_or_catalogue) -> Path:
    cat = search_catalogue_or_catalogue
    return next(p for p in sorted((cat.root / "images").iterdir()) if p.suffix in (".jpg", ".png"))


@pytest.fixture(scope="module")
def lifecycle_settings(milvus_lite_server, tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("lifecycle"), milvus_uri=milvus_lite_server,
                    collection="lifecycle")


@pytest.fixture(scope="module")
def api(lifecycle_settings, onnx_encoder):
    from samestyle.http import create_app
    from samestyle.query.search import Searcher

    searcher = Searcher.from_settings(lifecycle_settings, encoder=onnx_encoder)
    app = create_app(lifecycle_settings, searcher=searcher)
    with TestClient(app) as client:
        yield client
    searcher.close()


def test_docs_worked_example_runs(milvus_lite_server, onnx_bundle, catalogue, tmp_path, monkeypatch):
    """docs/python-api.md's worked example, executed as written."""
    doc = (ROOT / "docs" / "python-api.md").read_text()
    code = doc.split("<!-- worked-example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    shutil.copy(_photo(catalogue), tmp_path / "dress.jpg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMESTYLE_MILVUS_URI", milvus_lite_server)
    monkeypatch.setenv("SAMESTYLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SAMESTYLE_TRITON_URL", raising=False)
    monkeypatch.delenv("SAMESTYLE_COLLECTION", raising=False)
    exec(compile(code, "python-api.md", "exec"), {"__name__": "__doc__"})  # noqa: S102 - our own documentation
    assert not (tmp_path / "data").exists(), "the API created the data dir without needing it"


def test_api_results_are_typed_and_errors_are_the_clis(lifecycle_settings, onnx_encoder, catalogue):
    photo = _photo(catalogue).read_bytes()
    with samestyle.connect(settings=lifecycle_settings, collection="typed", encoder=onnx_encoder) as ss:
        rep = ss.upsert([{"id": "T1", "title": "Green linen shirt", "image": photo, "category": "Shirts"},
                         {"id": "T2", "title": "Green linen shirt", "image": "data:image/jpeg;base64,"
                          + base64.b64encode(photo).decode(), "category": "Shirts", "fit": "slim"},
                         {"id": "T3", "image": b"not a photo"}])
        assert isinstance(rep, samestyle.UpsertReport) and rep.upserted == 2
        assert [r["kind"] for r in rep.rejected] == ["unreadable_photo"] and rep.rejected[0]["id"] == "T3"
        res = ss.search_product("T1", k=3)
        assert isinstance(res, samestyle.SearchResult) and isinstance(res.hits[0], samestyle.Hit)
        assert res.ids == ["T2"] and res.hits[0].entity["fit"] == "slim"
        assert ss.hybrid(product_id="T1", k=1).ids == ["T2"]
        with pytest.raises(samestyle.InputError) as err:
            ss.search_product("T1", k=0)
        assert err.value.field == "k" and err.value.user_error
        with pytest.raises(samestyle.SamestyleError) as err:
            ss.search_product("T1", filters=["nosuch=1"])
        assert err.value.user_error


def test_http_upsert_get_delete_collections(api, catalogue):
    photo = _photo(catalogue).read_bytes()
    data_uri = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
    r = api.post("/v1/products", json={"products": [
        {"id": "H1", "title": "Black leather boots", "image": data_uri, "category": "Boots", "brand": "Acme"},
        {"id": "H2", "title": "Black leather boots", "category": "Boots", "brand": "Brandt", "heel_cm": 3},
        {"id": "H3"},
    ]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["upserted"] == 2 and body["failed"] == 1
    assert body["rejected"][0] == {"line": 3, "id": "H3", "field": "title,image", "kind": "no_photo_no_title",
                                   "reason": "the product has neither a photo nor a title"}
    again = api.post("/v1/products", json={"products": [
        {"id": "H2", "title": "Black leather boots", "category": "Boots", "brand": "Brandt", "heel_cm": 3}]}).json()
    assert again["unchanged"] == 1 and again["upserted"] == 0

    got = api.get("/v1/products/H2")
    assert got.status_code == 200 and got.json()["heel_cm"] == 3 and "fused_vec" not in got.json()
    assert len(api.get("/v1/products/H2", params={"vectors": "true"}).json()["fused_vec"]) > 0
    missing = api.get("/v1/products/NOPE")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "product_not_found"
    # a collection the request names that does not exist is the caller's 404, not a 503 "not ready"
    for r in (api.get("/v1/products/H2", params={"collection": "no_such"}),
              api.delete("/v1/products/H2", params={"collection": "no_such"}),
              api.post("/v1/products/get", json={"ids": ["H2"], "collection": "no_such"}),
              api.post("/v1/products/delete", json={"ids": ["H2"], "collection": "no_such"}),
              api.post("/v1/search", json={"type": "product", "id": "H2", "collection": "no_such"})):
        err = r.json()["error"]
        assert r.status_code == 404 and (err["code"], err["field"]) == ("collection_not_found", "collection"), r.text
        assert "[no_such]" in err["message"]
    many = api.post("/v1/products/get", json={"ids": ["H1", "NOPE"]}).json()
    assert list(many["products"]) == ["H1"] and many["missing"] == ["NOPE"]

    cols = api.get("/v1/collections").json()
    mine = [c for c in cols["collections"] if "lifecycle" in c["aliases"]]
    assert mine and mine[0]["count"] >= 2 and mine[0]["model_version"]

    s = api.post("/v1/search", json={"type": "product", "id": "H1", "options": {"k": 3, "filters": ["brand=Brandt"]}})
    assert s.status_code == 200, s.text
    assert [h["id"] for h in s.json()["hits"]] == ["H2"]
    t = api.post("/v1/search", json={"type": "text", "text": "leather boots", "options": {"k": 2}})
    assert t.status_code == 200 and {h["id"] for h in t.json()["hits"]} == {"H1", "H2"}
    bad = api.post("/v1/search", json={"type": "product", "options": {"k": 3}})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "id"
    assert api.post("/v1/search", json={"type": "product", "id": "H1", "options": {"k": 0}}).status_code == 422

    d = api.delete("/v1/products/H1")
    assert d.status_code == 200 and d.json()["deleted"] == ["H1"]
    assert api.delete("/v1/products/H1").status_code == 404
    assert api.post("/v1/products/delete", json={"ids": ["H2", "X"]}).json()["missing"] == ["X"]


def test_http_upsert_multipart_and_refusals(api, catalogue):
    photo = _photo(catalogue).read_bytes()
    products = [{"id": "M1", "title": "Yellow raincoat", "image": "upload:coat.jpg", "category": "Coats"}]
    r = api.post("/v1/products", data={"products": json.dumps(products)},
                 files=[("photos", ("coat.jpg", photo, "image/jpeg"))])
    assert r.status_code == 200 and r.json()["upserted"] == 1, r.text
    assert api.get("/v1/products/M1").json()["image_uri"].startswith("inline:sha256:")
    # a server-side path is never read over HTTP
    r = api.post("/v1/products", json={"products": [{"id": "M2", "title": "x", "image": "/etc/passwd"}]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "image"
    r = api.post("/v1/products", json={"products": []})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = api.post("/v1/products", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415


_KEPT = ("content_hash", "title", "image_uri", "has_text", "has_image", "text_vec", "image_vec", "fused_vec")


def _check_blanking_refused(rejected: list[dict], stored_before: dict, stored_after: dict) -> None:
    """B1 (title left out) and B2 (photo left out) refused as would_blank, naming the
    product, the field and the fix; their stored title, photo and vectors unchanged."""
    assert [(r["line"], r["id"], r["field"], r["kind"]) for r in rejected] == [
        (1, "B1", "title", "would_blank"), (2, "B2", "image", "would_blank")]
    for r, what in zip(rejected, ("title", "photo")):
        assert r["reason"].startswith(f"product [{r['id']}]: {what} is empty but the stored product has one"), r
        assert f"fill the field [{r['field']}] or set allow_blanking to clear it" in r["reason"], r
    for pid in ("B1", "B2"):
        assert {k: stored_after[pid][k] for k in _KEPT} == {k: stored_before[pid][k] for k in _KEPT}


def test_api_upsert_never_blanks_a_stored_title_or_photo_unless_allowed(lifecycle_settings, onnx_encoder,
                                                                          catalogue):
    photo = _photo(catalogue).read_bytes()
    ids = ["B1", "B2", "B3", "B4"]
    with samestyle.connect(settings=lifecycle_settings, collection="blanking_api", encoder=onnx_encoder) as ss:
        assert ss.upsert([{"id": "B1", "title": "Grey wool coat", "image": photo, "category": "Coats"},
                          {"id": "B2", "title": "Grey wool coat", "image": photo, "category": "Coats"},
                          {"id": "B3", "title": "Blue cotton tee", "category": "Tees"}]).upserted == 3
        before = ss.get(ids, vectors=True)
        assert all(before[i]["has_text"] and before[i]["has_image"] for i in ("B1", "B2"))
        blank = [{"id": "B1", "image": photo, "category": "Coats"},  # title left out
                 {"id": "B2", "title": "Grey wool coat", "category": "Coats"}]  # photo left out
        rep = ss.upsert([*blank, {"id": "B3", "title": "Blue cotton tee, slim fit", "category": "Tees"},
                         {"id": "B4", "title": "Red knitted scarf", "category": "Scarves"}])
        assert (rep.upserted, rep.unchanged, len(rep.rejected)) == (2, 0, 2), rep.to_dict()
        after = ss.get(ids, vectors=True)
        _check_blanking_refused(rep.rejected, before, after)
        # the other products of the same call landed
        assert after["B3"]["title"] == "Blue cotton tee, slim fit" and after["B4"]["title"] == "Red knitted scarf"
        # force re-encodes unchanged products; it does not allow blanking
        assert [r["kind"] for r in ss.upsert(blank, force=True).rejected] == ["would_blank", "would_blank"]
        assert (ss.get("B1")["title"], ss.get("B2")["has_image"]) == ("Grey wool coat", True)

        rep = ss.upsert(blank, allow_blanking=True)
        assert (rep.upserted, rep.rejected) == (2, []), rep.to_dict()
        cleared = ss.get(["B1", "B2"], vectors=True)
        assert (cleared["B1"]["title"], cleared["B1"]["has_text"], cleared["B1"]["has_image"]) == ("", False, True)
        assert not any(cleared["B1"]["text_vec"]) and cleared["B1"]["image_vec"] == before["B1"]["image_vec"]
        assert (cleared["B2"]["has_image"], cleared["B2"]["has_text"]) == (False, True)
        assert not any(cleared["B2"]["image_vec"]) and cleared["B2"]["text_vec"] == before["B2"]["text_vec"]


def test_http_upsert_never_blanks_a_stored_title_or_photo_unless_allowed(api, catalogue):
    """POST /v1/products, into a collection the request names: the same guard and
    rejection as the Python API; `allow_blanking` in the body clears deliberately, and
    the OpenAPI document describes it."""
    data_uri = "data:image/jpeg;base64," + base64.b64encode(_photo(catalogue).read_bytes()).decode()
    ids = ["B1", "B2", "B3", "B4"]
    col = "blanking_http"

    def upsert(products, **body):
        r = api.post("/v1/products", json={"products": products, "collection": col, **body})
        assert r.status_code == 200, r.text
        return r.json()

    def stored():
        r = api.post("/v1/products/get", json={"ids": ids, "collection": col, "vectors": True})
        assert r.status_code == 200, r.text
        return r.json()["products"]

    assert upsert([{"id": "B1", "title": "Grey wool coat", "image": data_uri, "category": "Coats"},
                   {"id": "B2", "title": "Grey wool coat", "image": data_uri, "category": "Coats"},
                   {"id": "B3", "title": "Blue cotton tee", "category": "Tees"}])["upserted"] == 3
    before = stored()
    blank = [{"id": "B1", "image": data_uri, "category": "Coats"}, {"id": "B2", "title": "Grey wool coat",
                                                                    "category": "Coats"}]
    rep = upsert([*blank, {"id": "B3", "title": "Blue cotton tee, slim fit", "category": "Tees"},
                  {"id": "B4", "title": "Red knitted scarf", "category": "Scarves"}])
    assert (rep["upserted"], rep["unchanged"], rep["failed"]) == (2, 0, 2), rep
    after = stored()
    _check_blanking_refused(rep["rejected"], before, after)
    assert after["B3"]["title"] == "Blue cotton tee, slim fit" and after["B4"]["title"] == "Red knitted scarf"

    rep = upsert(blank, allow_blanking=True)
    assert (rep["upserted"], rep["failed"]) == (2, 0), rep
    cleared = stored()
    assert (cleared["B1"]["has_text"], cleared["B1"]["has_image"], cleared["B2"]["has_image"]) == (False, True, False)

    schema = api.get("/openapi.json").json()["paths"]["/v1/products"]["post"]["requestBody"]["content"]
    prop = schema["application/json"]["schema"]["properties"]["allow_blanking"]
    assert prop["type"] == "boolean" and prop["default"] is False and "would_blank" in prop["description"]


def test_cli_uses_the_stack_serve_advertises(lifecycle_settings, onnx_encoder, samestyle_cli, tmp_path):
    """With a serve advertised in the data dir, `samestyle search` goes through its HTTP
    API: same answer as the direct path, and pymilvus/numpy/torch never imported."""
    import uvicorn

    from samestyle.http import create_app
    from samestyle.query.search import Searcher
    from samestyle.serve import advert

    with samestyle.connect(settings=lifecycle_settings, collection="cli", encoder=onnx_encoder) as ss:
        ss.upsert([{"id": f"C{i}", "title": t, "category": "Tops", "brand": b}
                   for i, (t, b) in enumerate([("White cotton tee", "A"), ("White cotton tee", "B"),
                                               ("Black wool coat", "A")])])
    settings = lifecycle_settings.with_(collection="cli")
    searcher = Searcher.from_settings(settings, encoder=onnx_encoder)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, searcher=searcher), host="127.0.0.1", port=0,
                                           log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    data_dir = tmp_path / "data"
    try:
        advert.write(data_dir, {"http_url": f"http://127.0.0.1:{port}", "milvus_uri": settings.milvus_uri,
                                "triton_url": None})
        env = dict(os.environ, SAMESTYLE_DATA_DIR=str(data_dir), SAMESTYLE_COLLECTION="cli")
        env.pop("SAMESTYLE_MILVUS_URI", None)
        env.pop("SAMESTYLE_TRITON_URL", None)
        probe = ("import sys, runpy; sys.argv = ['samestyle', *sys.argv[1:]]\n"
                 "from samestyle.cli.main import main\n"
                 "try:\n    main()\nfinally:\n"
                 "    heavy = sorted(m for m in ('numpy', 'pymilvus', 'torch', 'tritonclient') if m in sys.modules)\n"
                 "    print('HEAVY', heavy, file=sys.stderr)\n")
        r = subprocess.run([sys.executable, "-c", probe, "search", "--product", "C0", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert [h["id"] for h in json.loads(r.stdout)["hits"]][0] == "C1"
        assert "HEAVY []" in r.stderr
        r = subprocess.run([sys.executable, "-c", probe, "search", "--text", "white tee", "--filter", "brand=B",
                            "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and [h["id"] for h in json.loads(r.stdout)["hits"]] == ["C1"], r.stderr
        # the server's errors come back as the CLI's: JSON on stdout, exit 2 for the caller's input
        r = subprocess.run(samestyle_cli + ["search", "--product", "NOPE", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "not_found"
        assert not (data_dir / "milvus.db").exists()
    finally:
        advert.remove(data_dir)
        server.should_exit = True
        t.join(timeout=10)
        searcher.close()


@pytest.mark.slow  # CLI subprocesses timed over several runs
def test_bench_cli_quick_structure(samestyle_cli, onnx_bundle, tmp_path):
    """`samestyle bench cli --quick`: structure only (no serve, one run; no timing asserted)."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = subprocess.run(samestyle_cli + ["bench", "cli", "--quick", "--json"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    out = json.loads(r.stdout)
    assert out["targets_s"] == {"help": 0.5, "search_product": 1.0, "search_text": 1.5}
    assert out["without_serve"]["help"]["heavy_imports"] == []
    assert "pymilvus" in out["without_serve"]["search_product"]["heavy_imports"]
    assert "torch" not in out["without_serve"]["search_product"]["heavy_imports"]
    assert not list(tmp_path.glob("samestyle-bench-cli-*")), "the temporary data dir is removed"


def test_group_by_any_stored_attribute(lifecycle_settings, onnx_encoder):
    """--group-by on a dynamic attribute (a catalogue column outside the schema) is
    grouped client-side over more candidates: one hit per value, the best of each."""
    rows = [{"id": f"G{i}", "title": f"Blue cotton shirt {i}", "category": "Shirts", "supplier": f"S{i % 3}"}
            for i in range(12)]
    with samestyle.connect(settings=lifecycle_settings, collection="grouped", encoder=onnx_encoder) as ss:
        assert ss.upsert(rows).upserted == 12
        res = ss.search_text("blue cotton shirt", k=5, group_by="supplier")
        suppliers = [h.entity["supplier"] for h in res.hits]
        assert sorted(suppliers) == ["S0", "S1", "S2"]
        plain = ss.search_text("blue cotton shirt", k=12)
        best = {}
        for h in plain.hits:
            best.setdefault(h.entity["supplier"], h.id)
        assert {h.entity["supplier"]: h.id for h in res.hits} == best
        assert len(ss.search_text("blue cotton shirt", k=5, group_by="category").hits) == 1  # schema field: Milvus
        with pytest.raises(samestyle.InputError) as err:
            ss.search_text("x", group_by="nosuch")
        assert "supplier" in err.value.fix


def test_dedup_lists_the_duplicates(search_catalogue, ingested_store):
    from click.testing import CliRunner

    from samestyle.cli.main import cli

    env = {"SAMESTYLE_DATA_DIR": str(ingested_store.settings.data_dir), "SAMESTYLE_MILVUS_URI": ""}
    r = CliRunner().invoke(cli, ["dedup", "--threshold", "0.9", "--json"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["duplicates"]) == out["clusters"] and out["duplicates"][0]["members"]
    orig, dup = search_catalogue.duplicates[0]
    assert any({orig, dup} <= set(c["members"]) for c in out["duplicates"])
    r = CliRunner().invoke(cli, ["dedup", "--threshold", "0.9", "--show", "2"], env=env, catch_exceptions=False)
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and len([x for x in lines if x.startswith("  ") and " products" in x]) == 2, r.stdout
    assert "more clusters" in r.stdout


def test_unchanged_ingest_starts_no_encoder(ingested_store, catalogue, monkeypatch):
    """A re-run over an unchanged catalogue with no Triton configured encodes nothing
    and so never opens the (lazy) encoder."""
    from samestyle.loaders import jobs
    from samestyle.loaders.transform import ColumnMap
    from samestyle.serve import stack

    opened = []
    monkeypatch.setattr(stack, "encoder_for", lambda *a, **k: opened.append(1) or pytest.fail("encoder opened"))
    settings = ingested_store.settings.with_(triton_url=None)
    with jobs.open_encoder(settings, "triton") as enc:
        report = jobs.ingest_catalogue(catalogue.csv_path, store=ingested_store.store, encoder=enc,
                                       columns=ColumnMap(), data_dir=settings.data_dir)
        assert not enc.started
    assert report["loaded"] == 0 and report["unchanged"] == catalogue.n_products and not opened


@pytest.mark.slow  # the demo ingests its catalogue, then runs each printed command
def test_demo_ends_with_next_commands_that_work(tmp_path, onnx_encoder, monkeypatch):
    """The demo loads the data dir's own collection and ends with the commands to type
    next; they run on its data as printed. A data dir whose `products` holds other
    products is left alone: the demo keeps to <data dir>/demo and says so."""
    from click.testing import CliRunner

    import samestyle.serve as serve
    from samestyle.cli.main import cli

    class Borrowed:  # the session encoder, not closed by the command
        url = "in-process"

        def __getattr__(self, name):
            return getattr(onnx_encoder, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def close(self):
            pass

    monkeypatch.setattr(serve, "encoder_for", lambda settings, **kw: Borrowed())
    monkeypatch.chdir(tmp_path)
    env = {"SAMESTYLE_DATA_DIR": "", "SAMESTYLE_MILVUS_URI": "", "SAMESTYLE_TRITON_URL": "",
           "SAMESTYLE_COLLECTION": ""}
    r = CliRunner().invoke(cli, ["demo", "--products", "6"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    nxt = r.output.split("Next, on the same data:\n", 1)[1].splitlines()
    first = nxt[0].strip()
    assert first.startswith("samestyle search --product P")
    r2 = CliRunner().invoke(cli, first.split()[1:] + ["--json"], env=env, catch_exceptions=False)
    assert r2.exit_code == 0 and json.loads(r2.stdout)["hits"], r2.output
    assert (tmp_path / ".samestyle" / "milvus.db").is_dir()

    other = tmp_path / "other"
    with samestyle.connect(data_dir=other, use_env=False, encoder=onnx_encoder) as ss:
        ss.upsert([{"id": "MINE", "title": "not a demo product", "category": "X"}])
    r = CliRunner().invoke(cli, ["demo", "--products", "4", "--json"], env={**env, "SAMESTYLE_DATA_DIR": str(other)},
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["data_dir"] == str(other / "demo") and out["next"][0].startswith(f"SAMESTYLE_DATA_DIR={other}/demo ")
    with samestyle.connect(data_dir=other, use_env=False, encoder=onnx_encoder) as ss:
        assert ss.get("MINE") and ss.collections()[0]["count"] == 1

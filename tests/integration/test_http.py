"""The HTTP API over real Milvus Lite and the real ONNX encoder: each search type,
photo upload as multipart and base64, limits, and 4xx errors with a reason."""

from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi.testclient import TestClient

from samestyle import contract as C
from samestyle.config import Settings


@pytest.fixture(scope="module")
def api(searcher, tmp_path_factory):
    from samestyle.http import create_app

    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("http")), searcher=searcher)
    with TestClient(app) as client:
        yield client


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_health_ready_and_openapi(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    spec = api.get("/openapi.json").json()
    assert {"/v1/search/product", "/v1/search/products", "/v1/search/text", "/v1/search/photo",
            "/v1/search/hybrid"} <= set(spec["paths"])
    photo = spec["paths"]["/v1/search/photo"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(photo)


def test_product_search(api, search_catalogue):
    orig, dup = search_catalogue.duplicates[2]
    r = api.post("/v1/search/product", json={"id": orig, "k": 5, "filters": {"brand": {"ne": "x\" or \"1"}}})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [h["id"] for h in body["hits"]]
    assert dup in ids and orig not in ids
    assert set(body["hits"][0]["scores"]) == {"image_vec", "text_vec", "fused_vec"}


def test_products_search_batches_and_reports_bad_ids(api, search_catalogue):
    pairs = search_catalogue.duplicates[:3]
    r = api.post("/v1/search/products", json={"ids": [o for o, _ in pairs] + ["NOPE"], "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["results"]) == [o for o, _ in pairs] and body["calls"] == 1
    assert body["errors"]["NOPE"]["code"] == "not_found" and body["errors"]["NOPE"]["field"] == "product_id"
    for orig, dup in pairs:
        ids = [h["id"] for h in body["results"][orig]["hits"]]
        assert dup in ids and orig not in ids
    too_many = api.post("/v1/search/products", json={"ids": ["P00001"] * 1001})
    assert too_many.status_code == 422 and "ids" in too_many.text


def test_text_search(api, search_catalogue):
    row = search_catalogue.rows[12]
    r = api.post("/v1/search/text", json={"text": row["title"], "target": "all", "k": 5, "group_by": "brand"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fields"] == ["image_vec", "text_vec", "fused_vec"]
    brands = [h["entity"]["brand"] for h in body["hits"]]
    assert len(brands) == len(set(brands))


def test_photo_search_base64_and_multipart_agree(api, search_catalogue):
    orig, dup = search_catalogue.duplicates[0]
    path = search_catalogue.photos[orig]
    j = api.post("/v1/search/photo", json={"image_b64": b64(path), "k": 5})
    assert j.status_code == 200, j.text
    m = api.post("/v1/search/photo", files={"photo": ("p.jpg", path.read_bytes(), "image/jpeg")},
                 data={"options": json.dumps({"k": 5})})
    assert m.status_code == 200, m.text
    ids = [h["id"] for h in j.json()["hits"]]
    assert ids == [h["id"] for h in m.json()["hits"]] and {orig, dup} <= set(ids)
    datauri = "data:image/jpeg;base64," + b64(path)
    mod = api.post("/v1/search/photo", json={"image_b64": datauri, "modifier": "but white", "k": 3})
    assert mod.status_code == 200 and mod.json()["search_type"] == "photo_text"


def test_hybrid_search(api, search_catalogue):
    row = search_catalogue.rows[20]
    r = api.post("/v1/search/hybrid", json={"text": row["title"], "image_b64": b64(search_catalogue.photos[row["id"]]),
                                            "weights": {"image": 1, "text": 1, "fused": 2}, "k": 3})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"] == row["id"]
    assert r.json()["weights"] == pytest.approx({"image_vec": 0.25, "text_vec": 0.25, "fused_vec": 0.5})


def _tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


BAD = [
    # (path, kwargs, status, field or message fragment)
    ("/v1/search/product", {"json": {"id": "NOPE"}}, 404, "product_id"),
    ("/v1/search/product", {"json": {"id": "P00001", "k": 1001}}, 422, "k"),
    ("/v1/search/product", {"json": {"id": "P00001", "k": 0}}, 422, "k"),
    ("/v1/search/product", {"json": {"id": "P00001", "kk": 3}}, 422, "kk"),
    ("/v1/search/product", {"json": {"k": 3}}, 422, "id"),
    ("/v1/search/product", {"json": {"id": "P00001", "fields": ["price"]}}, 422, "fields.0"),
    ("/v1/search/product", {"json": {"id": "P00001", "filters": {"colr": "Red"}}}, 400, "colr"),
    ("/v1/search/product", {"json": {"id": "P00001", "filters": {"price": "cheap"}}}, 400, "price"),
    ("/v1/search/product", {"json": {"id": "P00001", "group_by": "title or 1"}}, 400, "group_by"),
    ("/v1/search/product", {"json": {"id": "P00001", "weights": [1, 2]}}, 400, "weights"),
    ("/v1/search/product", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "body"),
    ("/v1/search/text", {"json": {"text": ""}}, 422, "text"),
    ("/v1/search/text", {"json": {"text": "x", "target": "photo"}}, 422, "target"),
    ("/v1/search/photo", {"json": {"image_b64": "!!!not base64"}}, 400, "image_b64"),
    ("/v1/search/photo", {"json": {"image_b64": base64.b64encode(b"not a photo").decode()}}, 400, "photo"),
    ("/v1/search/photo", {"content": b"raw", "headers": {"content-type": "image/jpeg"}}, 415, "content type"),
    ("/v1/search/photo", {"files": {"other": ("p.png", b"x", "image/png")}}, 400, "photo"),
    ("/v1/search/photo", {"files": {"photo": ("p.png", _tiny_png(), "image/png")}, "data": {"options": "[1]"}},
     400, "options"),
    ("/v1/search/photo", {"files": {"photo": ("p.png", _tiny_png(), "image/png")},
                          "data": {"options": json.dumps({"k": 5000})}}, 422, "k"),
    ("/v1/search/hybrid", {"json": {"k": 3}}, 400, "query"),
    ("/v1/search/hybrid", {"json": {"product_id": "P00001", "text": "x"}}, 400, "query"),
]


@pytest.mark.parametrize("path,kw,status,where", BAD, ids=[f"{b[0]}-{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_malformed_requests_get_4xx_with_reason(api, path, kw, status, where):
    r = api.post(path, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["code"]
    assert where == err.get("field") or where in err["message"], err


def test_photo_over_the_size_limit_is_413(api):
    big = b"\xff" * (C.MAX_PHOTO_BYTES + 1)
    r = api.post("/v1/search/photo", files={"photo": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and r.json()["error"]["field"] == "photo"
    r = api.post("/v1/search/photo", json={"image_b64": base64.b64encode(big).decode()})
    assert r.status_code == 413


def test_photo_over_the_pixel_limit_is_413(api):
    """A small file that decodes to too many pixels is refused by the encoder, which
    says it was a size limit (EncodeError.too_large): 413 as well, not 400."""
    import io

    from PIL import Image

    side = int(C.MAX_PHOTO_PIXELS ** 0.5) + 8
    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, "PNG")
    r = api.post("/v1/search/photo", files={"photo": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["field"] == "photo" and "px" in r.json()["error"]["message"]
    r = api.post("/v1/search/photo", files={"photo": ("junk.jpg", b"<html>404</html>", "image/jpeg")})
    assert r.status_code == 400


def test_timeout_is_504(searcher, tmp_path):
    from samestyle.http import create_app

    app = create_app(Settings(data_dir=tmp_path), searcher=searcher, timeout=1e-4)
    with TestClient(app) as client:
        r = client.post("/v1/search/text", json={"text": "red dress"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


def test_triton_down_fails_fast_and_product_searches_go_on(searcher, search_catalogue, tmp_path):
    """Issue #12 item 4: with Triton unreachable, a search that needs an encoder answers
    503 with Retry-After and a message naming Triton well inside the request's time
    limit (not a 504 after the Triton client's 120 s of retries), the next ones at once;
    searches by product need no encoder and keep answering."""
    import copy
    import time

    from samestyle.http import create_app
    from samestyle.serve.process import free_port

    no_encoder = copy.copy(searcher)  # the session searcher, without its in-process encoder
    no_encoder.encoder = None
    url = f"127.0.0.1:{free_port()}"  # nothing listens there: Triton is down
    app = create_app(Settings(data_dir=tmp_path, triton_url=url), searcher=no_encoder)
    photo = b64(next(iter(search_catalogue.photos.values())))
    pid = search_catalogue.rows[0]["id"]
    with TestClient(app) as client:
        calls = [("/v1/search/text", {"text": "red dress"}), ("/v1/search/photo", {"image_b64": photo}),
                 ("/v1/search", {"type": "text", "text": "red dress"}), ("/v1/search/texts", {"texts": ["a", "b"]})]
        for i, (path, body) in enumerate(calls):
            t0 = time.monotonic()
            r = client.post(path, json=body)
            took = time.monotonic() - t0
            assert r.status_code == 503, (path, r.text)
            assert int(r.headers["retry-after"]) > 0
            err = r.json()["error"]
            assert err["code"] == "server_unavailable" and err["message"].startswith(f"Triton at {url} is unavailable")
            assert took < C.SEARCH_TIMEOUT_S, (path, took)  # a 504 comes at the limit, not before
            if i:
                assert took < 1.0, (path, took)  # the outage is remembered: no second wait
        for path, body in [("/v1/search/product", {"id": pid, "k": 3}), ("/v1/search", {"type": "product", "id": pid}),
                           ("/v1/search/products", {"ids": [pid], "k": 3})]:
            r = client.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
        assert client.post("/v1/search/product", json={"id": pid, "k": 3}).json()["hits"]


def test_not_ready_without_collection(milvus_store, tmp_path):
    from samestyle.http import create_app
    from samestyle.query.search import Searcher

    app = create_app(Settings(data_dir=tmp_path), searcher=Searcher(milvus_store, "no_such_collection"))
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and "no_such_collection" in r.json()["error"]["message"]
        assert client.post("/v1/search/product", json={"id": "x"}).status_code == 503

"""Thumbnails written at ingest and served to the page: names are content hashes only
(nothing outside the folder can be named), sizes bounded, any photo mode becomes RGB
JPEG; the page's static files and offline /docs are served without a backend."""

from __future__ import annotations

import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from samestyle.config import Settings
from samestyle.thumbs import SIZE, Thumbnails, make, valid_key

KEY = hashlib.sha256(b"x").hexdigest()


def png(mode: str, size=(900, 300)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("key", ["", "../" + KEY[3:], KEY.upper(), KEY[:-1], KEY + "0", KEY[:-1] + "/",
                                 "0" * 63 + "\x00", f"{KEY}.jpg", None, 12])
def test_only_a_hex_digest_names_a_thumbnail(tmp_path, key):
    assert not valid_key(key)
    assert Thumbnails(tmp_path).path(key) is None
    assert Thumbnails(tmp_path).save(key, png("RGB")) is False
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "CMYK", "I;16"])
def test_any_photo_mode_becomes_a_small_rgb_jpeg(mode):
    data = make(png(mode) if mode != "CMYK" else _jpeg_cmyk())
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert max(im.size) == SIZE and im.size[0] / im.size[1] == pytest.approx(3, rel=0.05)


def _jpeg_cmyk() -> bytes:
    out = io.BytesIO()
    Image.new("CMYK", (900, 300)).save(out, "JPEG")
    return out.getvalue()


def test_save_writes_once_and_a_broken_photo_is_skipped(tmp_path):
    t = Thumbnails(tmp_path)
    assert t.save(KEY, png("RGB")) is True
    first = t.path(KEY).read_bytes()
    assert t.save(KEY, png("RGBA")) is False and t.path(KEY).read_bytes() == first
    other = hashlib.sha256(b"y").hexdigest()
    assert t.save(other, b"not a photo") is False and not t.path(other).exists()
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


@pytest.fixture
def client(tmp_path):
    from samestyle.http import create_app

    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:
        yield c


def test_thumbnail_endpoint(client, tmp_path):
    Thumbnails(tmp_path).save(KEY, png("RGB"))
    r = client.get(f"/v1/thumbs/{KEY}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    missing = client.get(f"/v1/thumbs/{hashlib.sha256(b'z').hexdigest()}")
    assert missing.status_code == 404 and "samestyle ingest" in missing.json()["error"]["fix"]
    for bad in ("..%2F..%2Fetc%2Fpasswd", "abc", KEY.upper()):
        r = client.get(f"/v1/thumbs/{bad}")
        assert r.status_code in (400, 404) and r.headers["content-type"].startswith("application/json"), bad


def test_page_and_offline_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "//" not in page.text.replace("http://www.w3.org", "")  # no scheme-relative or CDN URL
    for asset in ("/static/app.js", "/static/app.css", "/static/swagger/swagger-ui-bundle.js",
                  "/static/swagger/swagger-ui.css"):
        assert client.get(asset).status_code == 200, asset
    docs = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()

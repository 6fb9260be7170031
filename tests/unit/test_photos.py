"""Photo loading: local paths, data: URIs, and http(s) against a real local HTTP
server (retries on 503, no retry on 404, timeouts, size caps)."""

from __future__ import annotations

import base64
import time

import pytest

from samestyle.loaders.photos import PhotoError, PhotoLoader, PhotoOptions

JPEG = b"\xff\xd8\xff\xe0" + b"photo" * 100


@pytest.fixture(scope="module")
def served(photo_server):
    (photo_server.root / "a.jpg").write_bytes(JPEG)
    (photo_server.root / "big.jpg").write_bytes(b"x" * 5000)
    return photo_server


def _loader(tmp_path, **kw) -> PhotoLoader:
    # the photo server listens on loopback, which ingest refuses unless allowed
    opts = dict(timeout=1.0, retries=2, backoff=0.05, max_bytes=2000, allow_private_hosts=True)
    opts.update(kw)
    return PhotoLoader(tmp_path, PhotoOptions(**opts))


def test_local_paths_are_relative_to_the_catalogue(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(JPEG)
    pl = _loader(tmp_path, allow_file_uri=True)
    assert pl.load("img/a.jpg") == JPEG
    assert pl.load(f"file://{tmp_path}/img/a.jpg") == JPEG
    assert pl.uri("img/a.jpg", JPEG) == "img/a.jpg"


@pytest.mark.parametrize("ref,kind,text", [
    ("missing.jpg", "unreadable_photo", "does not exist"),
    ("img", "unreadable_photo", "not a file"),
    ("big.jpg", "oversize_photo", "over the limit of 2000"),
    ("ftp://host/a.jpg", "unreadable_photo", "unsupported photo URI scheme"),
    ("data:image/png;base64,@@@", "unreadable_photo", "not valid base64"),
    ("data:image/png;base64" + "A" * 10, "unreadable_photo", "no comma"),
    ("data:image/png;base64," + "A" * 4000, "oversize_photo", "over the limit"),
])
def test_unusable_references(tmp_path, ref, kind, text):
    (tmp_path / "img").mkdir()
    (tmp_path / "big.jpg").write_bytes(b"x" * 2001)
    with pytest.raises(PhotoError) as err:
        _loader(tmp_path).load(ref)
    assert err.value.kind == kind and text in err.value.reason


def test_data_uris_and_inline_bytes(tmp_path):
    pl = _loader(tmp_path)
    uri = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert pl.load(uri) == JPEG
    assert pl.load("data:text/plain,a%20b") == b"a b"
    assert pl.load(JPEG) == JPEG
    assert pl.uri(uri, JPEG).startswith("inline:sha256:") and pl.uri(JPEG, JPEG) == pl.uri(uri, JPEG)


def test_http_ok_and_chunked(tmp_path, served):
    pl = _loader(tmp_path)
    assert pl.load(f"{served.url}/a.jpg") == JPEG
    assert pl.load(f"{served.url}/chunked/a.jpg") == JPEG
    pl.close()


def test_http_retries_transient_errors(tmp_path, served):
    path = "/flaky/2/a.jpg"
    assert _loader(tmp_path).load(served.url + path) == JPEG
    assert served.hits[path] == 3  # two 503s, then the photo
    with pytest.raises(PhotoError, match="after 2 attempts"):
        _loader(tmp_path, retries=1).load(served.url + "/flaky/5/a.jpg")


def test_http_does_not_retry_a_404(tmp_path, served):
    t = time.perf_counter()
    with pytest.raises(PhotoError, match="HTTP 404"):
        _loader(tmp_path, backoff=2.0).load(f"{served.url}/status/404")
    assert time.perf_counter() - t < 1.5  # no backoff sleep happened


def test_http_timeout(tmp_path, served):
    with pytest.raises(PhotoError, match="timed out") as err:
        _loader(tmp_path, timeout=0.3, retries=1).load(f"{served.url}/slow/a.jpg")
    assert err.value.kind == "unreadable_photo"


@pytest.mark.parametrize("path", ["/big.jpg", "/chunked/big.jpg"])
def test_http_size_cap(tmp_path, served, path):
    with pytest.raises(PhotoError) as err:
        _loader(tmp_path).load(served.url + path)
    assert err.value.kind == "oversize_photo"

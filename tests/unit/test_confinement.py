"""Inputs confined (issue #12, item 6): local photo paths stay inside the catalogue's
folder, file:// is off by default, http(s) never reaches loopback / private /
link-local addresses (after DNS, and on every redirect) unless allowed, and photos are
decoded in full and checked against their header. Real HTTP servers on 127.0.0.1 and
127.0.0.2 stand in for "internal" hosts."""

from __future__ import annotations

import http.server
import io
import os
import struct
import threading

import numpy as np
import pytest
from PIL import Image

from samestyle import contract as C
from samestyle.loaders.photos import PhotoError, PhotoLoader, PhotoOptions
from samestyle.loaders.transform import check_photo
from samestyle.model import preprocess as pp

CONSTS = C.preprocess_constants()


def _jpeg(w=60, h=80, colour=(200, 30, 30), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "JPEG", **save)
    return buf.getvalue()


def forged_jpeg(w=6000, h=6600) -> bytes:
    """A real 60x80 JPEG whose SOF header was rewritten to claim w x h pixels."""
    data = bytearray(_jpeg())
    i = data.find(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


# --- local paths -----------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    cat = tmp_path / "catalogue"
    (cat / "img").mkdir(parents=True)
    (cat / "img" / "a.jpg").write_bytes(_jpeg())
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.jpg").write_bytes(b"not yours")
    (cat / "img" / "link.jpg").symlink_to(outside / "key.jpg")
    return cat, outside


@pytest.mark.parametrize("ref", ["../secret/key.jpg", "img/../../secret/key.jpg", "img/link.jpg", "{outside}/key.jpg",
                                 "/etc/passwd"])
def test_local_paths_outside_the_catalogue_are_refused(tree, ref):
    cat, outside = tree
    with pytest.raises(PhotoError) as err:
        PhotoLoader(cat).load(ref.format(outside=outside))
    assert err.value.kind == "refused_photo" and "outside the catalogue's folder" in err.value.reason


def test_photo_roots_widen_the_confinement(tree):
    cat, outside = tree
    pl = PhotoLoader(cat, PhotoOptions(roots=(str(outside),)))
    assert pl.load(f"{outside}/key.jpg") == b"not yours"
    assert pl.load("img/link.jpg") == b"not yours"  # the link points into a root now
    with pytest.raises(PhotoError, match="outside"):
        pl.load("/etc/passwd")


def test_file_uris_are_off_by_default_and_confined_when_on(tree):
    cat, outside = tree
    with pytest.raises(PhotoError) as err:
        PhotoLoader(cat).load(f"file://{cat}/img/a.jpg")
    assert err.value.kind == "refused_photo" and "--allow-file-uri" in err.value.reason
    pl = PhotoLoader(cat, PhotoOptions(allow_file_uri=True))
    assert pl.load(f"file://{cat}/img/a.jpg") == (cat / "img" / "a.jpg").read_bytes()
    with pytest.raises(PhotoError, match="outside"):
        pl.load(f"file://{outside}/key.jpg")


# --- http(s) -------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    """/photo answers a JPEG; /to/<url> redirects there (302)."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = _jpeg()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(host: str):
    srv = http.server.ThreadingHTTPServer((host, 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def servers():
    """An 'internal' server on 127.0.0.1 and a 'trusted' one on 127.0.0.2 (Linux routes
    all of 127/8 to loopback)."""
    inner, trusted = _serve("127.0.0.1"), _serve("127.0.0.2")
    yield f"http://127.0.0.1:{inner.server_address[1]}", f"http://127.0.0.2:{trusted.server_address[1]}"
    for s in (inner, trusted):
        s.shutdown()
        s.server_close()


def _http_loader(tmp_path, **kw):
    return PhotoLoader(tmp_path, PhotoOptions(timeout=2.0, retries=0, **kw))


def test_loopback_and_private_hosts_are_refused_by_default(tmp_path, servers):
    inner, _ = servers
    port = inner.rsplit(":", 1)[1]
    pl = _http_loader(tmp_path)
    for url in (f"{inner}/photo", f"http://localhost:{port}/photo", f"http://[::1]:{port}/photo",
                f"http://[::ffff:127.0.0.1]:{port}/photo", f"http://2130706433:{port}/photo",
                "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.jpg", "http://192.168.1.1/a.jpg",
                "http://0.0.0.0/a.jpg"):
        with pytest.raises(PhotoError) as err:
            pl.load(url)
        assert err.value.kind == "refused_photo", url
        assert "--allow-private-hosts" in err.value.reason


def test_allowed_when_asked(tmp_path, servers):
    inner, trusted = servers
    assert _http_loader(tmp_path, allow_private_hosts=True).load(f"{inner}/photo") == _jpeg()
    assert _http_loader(tmp_path, allow_networks=("127.0.0.2/32",)).load(f"{trusted}/photo") == _jpeg()


def test_every_redirect_is_checked(tmp_path, servers):
    inner, trusted = servers
    pl = _http_loader(tmp_path, allow_networks=("127.0.0.2/32",))
    # trusted -> trusted is followed; trusted -> 127.0.0.1 (another port, another host) is not
    assert pl.load(f"{trusted}/to/{trusted}/photo") == _jpeg()
    with pytest.raises(PhotoError) as err:
        pl.load(f"{trusted}/to/{inner}/photo")
    assert err.value.kind == "refused_photo" and "127.0.0.1" in err.value.reason
    with pytest.raises(PhotoError, match="redirects more than"):
        pl.load(f"{trusted}/to/" + "/to/".join([trusted] * 7) + "/photo")


# --- decoding --------------------------------------------------------------------------------
def test_a_forged_jpeg_header_is_caught():
    forged = forged_jpeg()
    with Image.open(io.BytesIO(forged)) as im:  # what PIL alone says: a big, loadable photo
        assert im.size == (6000, 6600)
    kind, reason = check_photo(forged, CONSTS)
    assert kind == "unreadable_photo" and "6000x6600" in reason and "forged" in reason
    with pytest.raises(pp.PreprocessError, match="truncated or forged"):
        pp.decode_image(forged, CONSTS)


@pytest.mark.parametrize("save", [{}, {"progressive": True}, {"quality": 5, "optimize": True}])
def test_genuine_jpegs_pass_the_header_check(save):
    data = _jpeg(2000, 1500, (255, 255, 255), **save)  # flat white: as small as a real JPEG gets
    assert check_photo(data, CONSTS) is None


def test_a_truncated_png_is_refused():
    im = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    kind, reason = check_photo(buf.getvalue()[: len(buf.getvalue()) // 2], CONSTS)
    assert kind == "unreadable_photo" and "truncated" in reason


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(mode):
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # fully transparent black
    im.paste((10, 200, 10, 255), (10, 10, 30, 30))  # an opaque green square
    if mode == "LA":
        im = im.convert("LA")
    elif mode == "P":
        im = im.quantize(colors=4, method=Image.FASTOCTREE)  # palette + a transparent index
    buf = io.BytesIO()
    im.save(buf, "PNG")
    out = pp.open_photo(buf.getvalue(), CONSTS)
    assert out.mode == "RGB"
    assert out.getpixel((2, 2)) == (255, 255, 255)  # transparent: white, as the padding
    assert out.getpixel((20, 20)) != (255, 255, 255)
    # the encoder input of a transparent photo equals that of the same photo on white
    flat = Image.new("RGB", (40, 40), (255, 255, 255))
    flat.paste(out, (0, 0))
    buf2 = io.BytesIO()
    flat.save(buf2, "PNG")
    assert np.array_equal(pp.decode_image(buf.getvalue(), CONSTS), pp.decode_image(buf2.getvalue(), CONSTS))


def test_pils_bomb_guard_is_left_on():
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > C.MAX_PHOTO_PIXELS

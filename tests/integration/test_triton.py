"""Encoders served by a real tritonserver (nvidia-pytriton's, serving env): vectors
equal the in-process ONNX Runtime ones, concurrent requests are batched by the
server, a bad photo fails only its product, a crash + restart costs no product."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from samestyle import contract as C
from samestyle.config import Settings
from samestyle.encoders.base import ProductInput
from samestyle.encoders.triton import TritonEncoder
from samestyle.errors import ServerUnavailable, ServeError

pytestmark = pytest.mark.triton
TOL = 1e-4


def _products(catalogue, n: int | None = None) -> list[ProductInput]:
    with open(catalogue.csv_path, newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [ProductInput(r["id"], (catalogue.root / r["image"]).read_bytes(), r["title"]) for r in rows]


def _jpeg(colour=(30, 60, 190), size=(90, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def _pixel_bomb() -> bytes:
    """A one-colour PNG of a few hundred KB whose pixels exceed MAX_PHOTO_PIXELS."""
    side = int(C.MAX_PHOTO_PIXELS ** 0.5) + 8
    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, "PNG")
    assert len(buf.getvalue()) < C.MAX_PHOTO_BYTES
    return buf.getvalue()


def _assert_same(a, b, rows=None):
    """a's rows (all, or the given ones) equal b's, view by view."""
    rows = slice(None) if rows is None else rows
    for v in C.VIEWS:
        diff = np.abs(a.view(v)[rows] - b.view(v)).max()
        assert diff <= TOL, f"{v} view differs by {diff}"


@pytest.fixture(scope="module")
def encoder(triton_url):
    with TritonEncoder(triton_url, batch_size=8, max_in_flight=2) as enc:
        yield enc


def test_vectors_equal_in_process_onnx(encoder, onnx_encoder, catalogue):
    base = _products(catalogue, 40)
    # Photo-only and title-only products too: the views that cannot exist are zero.
    products = base + [ProductInput(p.id + "-photo", p.image, None) for p in base[:4]] + [
        ProductInput(p.id + "-title", None, p.text) for p in base[4:8]]
    got, want = encoder.encode(products), onnx_encoder.encode(products)
    assert got.ids == [p.id for p in products] and all(e is None for e in got.errors)
    assert encoder.dim == onnx_encoder.dim and encoder.model_version == onnx_encoder.model_version
    assert encoder.colour_dims == onnx_encoder.colour_dims  # from the repository's config.pbtxt
    _assert_same(got, want)
    norms = {v: np.linalg.norm(got.view(v), axis=1) for v in C.VIEWS}
    np.testing.assert_allclose(norms["fused"], 1, atol=1e-5)
    assert np.all(norms["text"][40:44] == 0) and np.all(norms["image"][44:48] == 0)


def test_text_only_request_skips_the_image_backbone(encoder):
    before = {m: encoder.statistics(m) for m in (C.IMAGE_MODEL, C.TEXT_MODEL)}
    out = encoder.encode_batch([ProductInput(f"t{i}", None, f"blue denim jacket {i}") for i in range(3)])
    after = {m: encoder.statistics(m) for m in (C.IMAGE_MODEL, C.TEXT_MODEL)}
    assert all(e is None for e in out.errors)
    assert after[C.IMAGE_MODEL]["inference_count"] == before[C.IMAGE_MODEL]["inference_count"]
    assert after[C.TEXT_MODEL]["inference_count"] == before[C.TEXT_MODEL]["inference_count"] + 3


def test_concurrent_single_requests_are_batched(triton_url, catalogue):
    products = _products(catalogue, 32)
    with TritonEncoder(triton_url, batch_size=1, max_in_flight=32) as enc:
        before = enc.statistics()
        start = threading.Barrier(32)
        results = [None] * 32

        def one(i):
            start.wait()
            results[i] = enc.encode_batch([products[i]])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 2  # statistics are recorded just after the response
        while (after := enc.statistics())["inference_count"] < before["inference_count"] + 32:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 32 and all(r.errors == [None] for r in results)
    assert executions <= inferences / 4, f"{executions} executions for {inferences} products: not batched"


def test_bad_photo_fails_only_its_product(encoder, onnx_encoder):
    good = _jpeg()
    products = [
        ProductInput("ok-1", good, "Navy blue slim fit shirt"),
        ProductInput("broken-jpeg", good[: len(good) // 3], "Red dress"),  # truncated file
        ProductInput("not-an-image", b"<html>404</html>", "Green sneakers"),
        ProductInput("ok-2", None, "Black analog watch"),
        ProductInput("nothing"),
        ProductInput("huge", b"\xff" * (C.MAX_PHOTO_BYTES + 1), "Grey bag"),  # refused client-side
        ProductInput("bomb", _pixel_bomb(), "Grey bag"),  # small file, too many pixels: refused by the server
        ProductInput("ok-3", _jpeg((200, 30, 40)), None),
    ]
    got = encoder.encode_batch(products)
    failed = {p.id: e for p, e in zip(products, got.errors) if e is not None}
    assert set(failed) == {"broken-jpeg", "not-an-image", "nothing", "huge", "bomb"}
    for pid, err in failed.items():
        assert err.product_id == pid and f"[{pid}]" in str(err)
    assert failed["not-an-image"].field == "image" and "undecodable" in str(failed["not-an-image"])
    assert failed["huge"].field == "image" and "over the limit" in str(failed["huge"])
    # the size refusal crosses Triton as text and is read back as such (the HTTP API: 413)
    assert failed["huge"].too_large and failed["bomb"].too_large and "px" in str(failed["bomb"])
    assert not failed["not-an-image"].too_large and not failed["broken-jpeg"].too_large
    assert "neither a photo nor a title" in str(failed["nothing"])
    bad = [i for i, p in enumerate(products) if p.id in failed]
    for v in C.VIEWS:
        assert not got.view(v)[bad].any(), f"failed products must have zero {v} vectors"
    ok = [i for i, p in enumerate(products) if p.id not in failed]
    _assert_same(got, onnx_encoder.encode_batch([products[i] for i in ok]), rows=ok)


def test_unreachable_server_is_a_clear_error(tmp_path):
    from samestyle.serve.process import free_port

    url = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ServerUnavailable) as exc:
        TritonEncoder(url, retry_s=1.0)
    assert url in str(exc.value) and "samestyle serve" in exc.value.fix
    assert time.monotonic() - t0 < 10


def test_server_gone_fails_within_retry_s_then_at_once_during_the_cooldown(monkeypatch):
    """A client made for requests with a time limit (the HTTP API's: short retry_s, a
    cooldown_s): a server that goes away fails a call after retry_s, with a message
    naming Triton, and every call in the next cooldown_s at once with the same error.
    The server "went away" before the first request: the model config is faked, the
    gRPC calls after it go to a port nobody listens on."""
    import tritonclient.grpc as grpcclient

    from samestyle.serve.process import free_port

    cfg = {"config": {"output": [{"name": C.OUT_FUSED, "dims": ["256"]}], "max_batch_size": 64,
                      "parameters": {"model_version": {"string_value": "gone"}}}}
    monkeypatch.setattr(grpcclient.InferenceServerClient, "get_model_config", lambda self, *a, **kw: cfg)
    url = f"127.0.0.1:{free_port()}"
    enc = TritonEncoder(url, retry_s=1.0, cooldown_s=30.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailable) as first:
            enc.encode_one(ProductInput("q", text="red dress"))
        assert 0.5 < time.monotonic() - t0 < 5
        assert first.value.message.startswith(f"Triton at {url} is unavailable")
        assert first.value.data["service"] == "triton" and "samestyle serve" in first.value.fix
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(ServerUnavailable) as again:
                enc.encode_batch([ProductInput("q", text="blue shirt")])
            assert time.monotonic() - t0 < 0.2 and again.value.message == first.value.message
    finally:
        enc.close()
    # without a cooldown (ingest's client) each call retries for itself
    enc = TritonEncoder(url, retry_s=0.5)
    try:
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(ServerUnavailable):
                enc.encode_one(ProductInput("q", text="red dress"))
            assert time.monotonic() - t0 > 0.25
    finally:
        enc.close()


def test_taken_port_and_incomplete_repository_are_clear_errors(triton_server, triton_repo, tmp_path):
    from samestyle.serve import TritonServer
    from samestyle.triton_repo import without_dynamic_batching

    s = Settings()
    busy = TritonServer(triton_repo, serve_python=s.serve_python, log_dir=tmp_path, grpc_port=triton_server.grpc_port)
    with pytest.raises(ServeError, match=f"port {triton_server.grpc_port}.*in use"):
        busy.start()
    repo = without_dynamic_batching(triton_repo, tmp_path / "repo")
    (repo / C.IMAGE_MODEL / "1" / "model.onnx").unlink()
    with pytest.raises(ServeError) as exc:
        TritonServer(repo, serve_python=s.serve_python, log_dir=tmp_path).start()
    assert "image_backbone/1/model.onnx" in str(exc.value) and "samestyle export" in exc.value.fix


def test_restart_during_a_stream_costs_no_product(triton_repo, catalogue, onnx_encoder, tmp_path):
    """Kill -9 the server mid-stream, start it again on the same port: the client
    retries, every product comes back encoded, and nothing is left running."""
    from samestyle.serve import TritonServer

    products = _products(catalogue, 36)
    server = TritonServer(triton_repo, serve_python=Settings().serve_python, log_dir=tmp_path).start()
    pgid = server._proc.proc.pid
    done, results, errors = [], [], []
    try:
        with TritonEncoder(server.url, batch_size=2, max_in_flight=1, timeout_s=30, retry_s=180) as enc:
            def stream():
                try:
                    for i in range(0, len(products), 2):
                        results.append(enc.encode_batch(products[i:i + 2]))
                        done.append(time.monotonic())
                except Exception as exc:  # surfaced below
                    errors.append(exc)

            t = threading.Thread(target=stream)
            t.start()
            while len(done) < 3 and t.is_alive():
                time.sleep(0.05)
            server.kill()
            killed_at = time.monotonic()
            server.start()
            t.join(timeout=240)
        assert not errors, errors
        assert any(d > killed_at for d in done), "the stream finished before the kill"
        from samestyle.encoders.base import EncodedBatch

        got = EncodedBatch.concat(results, enc.dim)
        assert got.ids == [p.id for p in products] and all(e is None for e in got.errors)
        _assert_same(got, onnx_encoder.encode(products))
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # the first server's group (stubs included) is gone


def test_encoder_for_uses_the_configured_server(triton_url):
    from samestyle.serve import encoder_for

    with encoder_for(Settings(triton_url=triton_url)) as enc:
        assert enc.url == triton_url and enc._on_close is None  # nothing started
        assert enc.encode_one(ProductInput("q", None, "white sneakers")).fused.shape == (1, enc.dim)


def test_local_stack_serves_milvus_and_stops_it(tmp_path):
    from samestyle.serve import local_stack
    from samestyle.serve.process import port_is_free
    from samestyle.store.collections import client as milvus_client

    settings = Settings(data_dir=tmp_path / "data")
    with local_stack(settings, need_triton=False) as stack:
        uri = stack.settings.milvus_uri
        assert stack.milvus is not None and uri == stack.milvus.uri
        client = milvus_client(uri)
        client.create_collection("probe", dimension=4)
        assert "probe" in client.list_collections()
        client.close()
        port = stack.milvus.port
    assert port_is_free(port)
    assert (tmp_path / "data" / "milvus.db" / "collections").is_dir()  # the embedded layout, same folder


def test_bench_encode_quick(triton_url, tmp_path):
    from click.testing import CliRunner

    from samestyle.cli.main import cli

    env = {"SAMESTYLE_TRITON_URL": triton_url, "SAMESTYLE_DATA_DIR": str(tmp_path)}
    res = CliRunner().invoke(cli, ["bench", "encode", "--quick", "--json", "--plot", "--plot-file",
                                   str(tmp_path / "encode.png")], env=env)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    series = report["triton"]["dynamic_batching"]
    assert [r["concurrency"] for r in series] == report["concurrency"]
    assert all(r["failed"] == 0 and r["products_per_s"] > 0 for r in series)
    counts = [r["triton_stats"][C.ENTRY_MODEL]["inference_count"] for r in series]
    assert counts == [report["products"]] * len(series), counts
    assert report["triton"]["no_dynamic_batching"] == {"skipped": "SAMESTYLE_TRITON_URL is set"}
    assert report["onnx_ceiling"]["products_per_s"] > 0
    assert set(report["summary"]["met"]) == {"c32_vs_no_batching", "c32_vs_ceiling"}
    assert (tmp_path / "encode.png").stat().st_size > 0

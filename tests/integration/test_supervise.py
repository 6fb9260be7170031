"""`samestyle serve` supervises its children (#12) — a real serve process, a real Milvus
Lite server child: SIGKILLed, it is started again on its port and the API finds it
(/readyz's Milvus check passes again, through a reconnected client); with restarts
off, serve exits 1 naming the child that died. Triton is given as a URL (nothing
listens there): its restart is the same code path, and starting one costs minutes here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from samestyle.serve.process import free_port
from tests.integration.test_operations import _alive, _children


def _serve(tmp_path, samestyle_cli, *extra):
    port = free_port()
    env = dict(os.environ, SAMESTYLE_DATA_DIR=str(tmp_path / "data"), SAMESTYLE_LOG_LEVEL="WARNING",
               SAMESTYLE_TRITON_URL="127.0.0.1:1")
    env.pop("SAMESTYLE_MILVUS_URI", None)
    # stderr to a file: a pipe nobody reads while serve logs a Milvus outage fills up and blocks it
    err = open(tmp_path / "serve.err", "w+")
    proc = subprocess.Popen([*samestyle_cli, "serve", "--http-port", str(port), "--json", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=err, text=True)
    proc.stderr = err
    _wait(lambda: _get(port, "/healthz")[0] == 200, proc, "serve did not answer /healthz")
    return proc, port


def _stderr(proc) -> str:
    proc.stderr.seek(0)
    return proc.stderr.read()


def _get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None, None


def _wait(cond, proc, what, limit_s=120):
    deadline = time.monotonic() + limit_s  # waiting for a state, not timing it
    while not cond():
        assert proc.poll() is None, _stderr(proc)
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def _milvus_ok(port) -> bool:
    status, body = _get(port, "/readyz")
    checks = (body or {}).get("checks") or (body or {}).get("error", {}).get("checks") or {}
    return checks.get("milvus", {}).get("ok") is True


@pytest.mark.slow  # starts `samestyle serve` (a Milvus Lite server) and kills its child twice
def test_a_killed_milvus_child_is_restarted_then_serve_gives_up_saying_why(tmp_path, samestyle_cli):
    proc, port = _serve(tmp_path, samestyle_cli, "--max-restarts", "1")
    try:
        _wait(lambda: _milvus_ok(port), proc, "Milvus check never passed")
        status, body = _get(port, "/readyz")
        assert status == 503 and "triton" in body["error"]["failed"]  # nothing listens on 127.0.0.1:1
        (first,) = _children(proc.pid)
        os.kill(first, signal.SIGKILL)
        _wait(lambda: _children(proc.pid) - {first} and not _alive(first), proc, "Milvus was not restarted")
        _wait(lambda: _milvus_ok(port), proc, "the API did not find Milvus again")
        _wait(lambda: "Milvus restarted (1 of 1" in _stderr(proc), proc, "no restart said")  # logged once ready

        # Past --max-restarts serve stops: exit 1, the reason on stderr, no child left.
        (second,) = _children(proc.pid)
        os.kill(second, signal.SIGKILL)
        rc = proc.wait(90)
        err = _stderr(proc)
        assert rc == 1, err
        assert "Milvus exited (exit code -9" in err and "restarted 1 times in the last 10 min" in err, err
        assert not _alive(first) and not _alive(second)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.triton  # serve starts a real tritonserver, and its supervisor starts it again
def test_triton_killed_under_8_clients_product_searches_keep_answering_encoder_searches_503_then_work(
        tmp_path, triton_repo):
    """A real serve (local Triton + Milvus Lite) under 8 clients, half searching by
    product, half by text, /readyz polled: tritonserver SIGKILLed. Driven by `samestyle
    bench heal --child triton` (which also times it; the times are not asserted here)."""
    from samestyle.bench.heal import run

    report = run(tmp_path / "heal", "triton", clients=8, env=dict(os.environ, SAMESTYLE_TRITON_REPO=str(triton_repo)))
    answers = report["_answers"]
    product = [a for a in answers if a["kind"] == "product" and a["end_s"] >= 0]
    assert product and all(a["status"] == 200 for a in product), [a for a in product if a["status"] != 200][:5]
    text_down = [a for a in answers if a["kind"] == "text" and a["status"] != 200]
    assert text_down, "no text search failed: Triton was not down"
    for a in text_down:  # the documented outage answer: fast 503, Retry-After, naming Triton
        assert (a["status"], a["code"], a["shaped"], a["retry_after"]) == (503, "server_unavailable", True, True), a
        assert "Triton" in a["message"], a
    text = report["kinds"]["text"]
    assert text["recovered_s"] is not None and text["before_kill"]["by_status"].get("200")
    last = {a["client"]: a for a in sorted(answers, key=lambda a: a["end_s"]) if a["kind"] != "readyz"}
    assert len(last) == 8 and all(a["status"] == 200 for a in last.values()), last  # every client answered again
    # /readyz named Triton (and only it) while it was down, and was 200 before and after.
    assert set(report["kinds"]["readyz"]["failed_seen"]) <= {"", "triton"}, report["kinds"]["readyz"]
    assert "triton" in report["kinds"]["readyz"]["failed_seen"]
    assert report["new_child_s"] is not None and report["serve_exit"] == 0

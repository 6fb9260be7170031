"""Operations (issue #12, items 6 and 7) against real processes: the Triton samestyle
starts listens on loopback only, shared-memory regions of dead processes are removed,
and `samestyle serve` stops its children and exits 0 on SIGTERM, as on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from samestyle.serve.process import free_port
from samestyle.serve.triton import remove_stale_shm


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            local, state = ln.split()[1], ln.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.append(addr)
    return found


@pytest.mark.triton
def test_triton_listens_on_loopback_only(triton_server):
    addrs = _listeners(triton_server.grpc_port)
    assert addrs, "nothing listens on Triton's gRPC port"
    # 127.0.0.1, as IPv4 or IPv4-mapped IPv6 (gRPC's socket); 0.0.0.0 or :: would be every interface
    assert set(addrs) <= {"0100007F", "0000000000000000FFFF00000100007F"}, addrs


def test_stale_shm_regions_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = tmp_path / "shm"
    root.mkdir()
    stale = root / f"samestyle_triton_{dead.pid}_8001_region"
    live = root / f"samestyle_triton_{os.getpid()}_8001_region"
    other = root / "someone_elses_region"
    for p in (stale, live, other):
        p.write_bytes(b"x" * 1024)
    assert remove_stale_shm(root) == [stale.name]
    assert not stale.exists() and live.exists() and other.exists()


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # starts `samestyle serve`, which starts a Milvus Lite server
def test_serve_stops_its_stack_and_exits_0_on_sigterm(tmp_path, samestyle_cli):
    """What a process manager or `docker stop` sends. Triton is given as a URL (not
    started here: this test is about the signal), Milvus Lite is started by serve."""
    http_port = free_port()
    env = dict(os.environ, SAMESTYLE_DATA_DIR=str(tmp_path / "data"), SAMESTYLE_LOG_LEVEL="WARNING",
               SAMESTYLE_TRITON_URL="127.0.0.1:1")
    env.pop("SAMESTYLE_MILVUS_URI", None)
    proc = subprocess.Popen([*samestyle_cli, "serve", "--http-port", str(http_port), "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # waiting for readiness, not timing it
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            time.sleep(0.3)
        kids = _children(proc.pid)
        assert kids, "serve started no Milvus child"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(90)
        assert rc == 0, proc.stderr.read()
        assert not [k for k in kids if _alive(k)], "a child of serve outlived it"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ingest_dead_letters_forged_and_escaping_photos(tmp_path, catalogue, onnx_encoder):
    """Through the real pipeline into Milvus Lite: the forged JPEG, a traversal path and
    a loopback URL are dead-lettered with their reason; the good rows load."""
    import csv

    from samestyle.config import Settings
    from samestyle.loaders.jobs import ingest_catalogue
    from samestyle.loaders.pipeline import IngestOptions
    from samestyle.loaders.transform import ColumnMap
    from samestyle.store import Store
    from tests.unit.test_confinement import forged_jpeg

    with catalogue.csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))[:5]
    root = tmp_path / "cat"
    (root / "img").mkdir(parents=True)
    for r in rows:
        (root / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        (root / r["image"]).write_bytes((catalogue.root / r["image"]).read_bytes())
    (root / "img" / "forged.jpg").write_bytes(forged_jpeg())
    (tmp_path / "outside.jpg").write_bytes((catalogue.root / rows[0]["image"]).read_bytes())
    rows[1]["image"] = "img/forged.jpg"
    rows[2]["image"] = "../outside.jpg"
    rows[3]["image"] = "http://127.0.0.1:9/a.jpg"
    path = root / "cat.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    settings = Settings(data_dir=tmp_path / "data")
    with Store.open(settings) as store:
        rep = ingest_catalogue(path, store=store, encoder=onnx_encoder, columns=ColumnMap(),
                               data_dir=settings.data_dir, options=IngestOptions(batch_size=8), max_failures="3")
    assert rep["loaded"] == 2 and rep["failed"] == 3, rep
    letters = {json.loads(x)["id"]: json.loads(x) for x in Path(rep["dead_letter"]).read_text().splitlines()}
    assert "forged" in letters[rows[1]["id"]]["reason"]
    assert letters[rows[2]["id"]]["kind"] == "refused_photo"
    assert letters[rows[3]["id"]]["kind"] == "refused_photo"

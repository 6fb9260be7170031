"""`samestyle bench scale --quick` end to end against a real embedded Milvus Lite
(structure only: timings on a shared machine are not asserted), the collections it
builds through the Store, and the worker it spawns. Minutes: marked slow."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from samestyle.bench import scale as S

pytestmark = pytest.mark.slow


def test_layout_is_created_with_the_profile_options(tmp_path):
    """The benchmark's collections carry the index profile's shards and consistency
    level, as samestyle.store creates product collections."""
    from samestyle.store import Store
    from samestyle.store.client import client

    cfg = S.ScaleConfig(dim=16)
    spec, prof, schema, _ = S._layout(cfg)
    prof = replace(prof, consistency_level="Strong")
    with Store(client(str(tmp_path / "m.db")), spec=spec, profile=cfg.profile) as store:
        store.create_layout("probe", schema, profile=prof)
        desc = store.describe("probe")
    assert desc["consistency_level"] in (0, "Strong")  # Milvus's default is Bounded


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run (2k and 5k products, ~30 s) shared by the structure tests."""
    out = tmp_path_factory.mktemp("scale")
    png = out / "scale.png"
    res = CliRunner().invoke(S.command, ["--quick", "--json", "--plot", "--plot-file", str(png),
                                         "--work-dir", str(out / "work")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    # each size's line goes to stderr as it ends; stdout holds only the JSON report
    assert res.stderr.count("scale ") == 2, res.stderr
    return json.loads(res.stdout), png


def test_quick_report_structure(quick_run):
    report, _ = quick_run
    assert report["benchmark"] == "scale"
    assert report["machine"]["cores"] >= 1 and report["versions"]["milvus-lite"]
    assert [r["size"] for r in report["results"]] == list(S.QUICK_SIZES)
    for r in report["results"]:
        assert r["index"]["index_type"] == "HNSW"  # the lite profile of milvus/indexes.json
        assert r["insert_rows_per_s"] > 0 and r["index_s"] > 0
        for kind in ("search", "hybrid"):
            st = r[kind]
            assert st["n"] > 0 and 0 < st["p50_ms"] <= st["p95_ms"] <= st["p99_ms"]
        assert 0.0 <= r["recall_at_10"] <= 1.0
        b = r["batched"]  # the same queries again, 10 to a call
        assert b["queries"] == r["search"]["n"] and b["queries_per_call"] == 10 and b["calls"] == 3
        assert b["per_query_ms"] > 0 and b["call_p50_ms"] > 0
        assert 0.0 <= r["batched_recall_at_10"] <= 1.0
        assert r["memory"]["peak_rss_mb"] >= r["memory"]["rss_after_load_mb"] > r["memory"]["process_baseline_mb"]
        assert r["memory"]["raw_vectors_mb"] == pytest.approx(r["size"] * 3 * 256 * 4 / 2**20, abs=0.1)
        assert r["disk_mb"] > 0
    assert report["curve"]["sizes"] == list(S.QUICK_SIZES)
    assert isinstance(report["curve"]["target_met"], bool)


def test_quick_writes_plot_and_json(quick_run):
    report, png = quick_run
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(png.with_suffix(".json").read_text())
    assert saved["results"] == report["results"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killed_run_leaves_no_worker_behind(tmp_path):
    """SIGTERM to the bench process also ends the spawned process measuring a size (it
    used to live on and load the cores for minutes)."""
    proc = subprocess.Popen([sys.executable, "-m", "samestyle.cli.main", "bench", "scale", "--sizes", "200k",
                             "--work-dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = None
        deadline = time.monotonic() + 120
        # the worker makes its database directory once it runs the size
        while (worker is None or not (tmp_path / "size_200000").exists()) and time.monotonic() < deadline:
            worker = _child_of(proc.pid)
            time.sleep(0.2)
        assert worker is not None, "the size's worker process never started"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), f"worker {worker} outlived the bench process"
    finally:
        proc.kill()


def _child_of(pid: int) -> int | None:
    for task in Path(f"/proc/{pid}/task").glob("*"):
        kids = (task / "children").read_text().split() if (task / "children").exists() else []
        for k in kids:
            if "spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace"):
                return int(k)
    return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False

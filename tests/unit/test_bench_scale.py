"""`samestyle bench scale`: the pure helpers, and the quick mode end to end against a real
embedded Milvus Lite (structure only: timings on a shared machine are not asserted)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from samestyle.bench import scale as S


@pytest.mark.parametrize("text, expected", [
    ("10k,100k,1M", [10_000, 100_000, 1_000_000]),
    ("5000", [5000]),
    ("2k, 2000 ,1.5k", [1500, 2000]),  # sorted, duplicates dropped
    ("100_000", [100_000]),
])
def test_parse_sizes(text, expected):
    assert S.parse_sizes(text) == expected


@pytest.mark.parametrize("text, message", [
    ("ten", "[ten] is not a number"),
    ("0", "[0] must be >= 1"),
    (" , ", "no sizes given"),
])
def test_parse_sizes_rejects(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        S.parse_sizes(text)


def test_unit_vectors_are_deterministic_and_normalised():
    a = S.unit_vectors(0, 1, 500, 20, 16)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, S.unit_vectors(0, 1, 500, 20, 16))
    assert not np.array_equal(a, S.unit_vectors(0, 2, 500, 20, 16))  # another field differs


def test_exact_topk_matches_brute_force_across_batches():
    n, dim, batch, k = 230, 8, 64, 5
    full = np.concatenate([S.unit_vectors(3, 2, s, m, dim) for s, m in S.batches(n, batch)])
    q = S.noisy(full[[4, 100, 229]], 3)
    got = S.exact_topk(3, 2, n, dim, batch, q, k)
    want = np.argsort(-(q @ full.T), axis=1)[:, :k]
    assert [set(r) for r in got.tolist()] == [set(r) for r in want.tolist()]
    assert S.recall_at_k(want.tolist(), got) == 1.0
    assert S.recall_at_k([[0, 1, 2, 3, 4]] * 3, got) < 1.0


def test_latency_stats_and_curve():
    st = S.latency_stats([0.010, 0.020, 0.030])
    assert st["p50_ms"] == 20.0 and st["n"] == 3 and st["qps_sequential"] == 50.0
    assert S.latency_stats([]) == {"n": 0}
    mk = lambda n, p50, rss: {"size": n, "index_s": n / 1000, "search": {"p50_ms": p50}, "hybrid": {"p50_ms": p50 * 2},
                              "memory": {"bytes_per_product": 1, "rss_after_load_mb": rss}}
    c = S.curve([mk(1000, 10.0, 100.0), mk(4000, 40.0, 103.0)])
    assert c["search_p50_ratio"] == 4.0 and c["target_met"] is False
    assert c["marginal_bytes_per_product"] == int(3 * 2**20 / 3000)


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


def test_batched_stats_cost_per_query():
    st = S.batched_stats([(0.5, 50), (0.3, 50), (0.1, 10)])
    assert st["calls"] == 3 and st["queries"] == 110 and st["queries_per_call"] == 50
    assert st["call_p50_ms"] == 300.0
    assert st["per_query_ms"] == round(900.0 / 110, 3)
    assert S.batched_stats([]) == {"calls": 0}


def test_bad_sizes_is_a_clear_usage_error():
    res = CliRunner().invoke(S.command, ["--sizes", "lots"])
    assert res.exit_code == 2
    assert "--sizes" in res.output and "[lots] is not a number" in res.output


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

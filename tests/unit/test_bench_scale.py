"""`samestyle bench scale`: the pure helpers (the quick mode against a real Milvus Lite is
tests/integration/test_bench_scale.py)."""

from __future__ import annotations

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

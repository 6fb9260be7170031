"""Near-duplicate detection: block-wise pairs equal brute force, union-find clusters
are the connected components, pairwise P/R/F1 equal counting by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from samestyle import dedup as D


def _data(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n // 3, d))
    x = np.concatenate([base, base + 0.05 * rng.normal(size=base.shape), rng.normal(size=(n - 2 * len(base), d))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    groups = rng.choice(["A", "B", "C"], size=n).tolist()
    return x.astype(np.float32), groups


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_find_pairs_equals_brute_force(block):
    x, groups = _data()
    got = D.find_pairs(x, groups, 0.9, block=block)
    want = {(i, j) for i, j in itertools.combinations(range(len(x)), 2)
            if groups[i] == groups[j] and float(x[i] @ x[j]) >= 0.9}
    assert set(zip(got.i.tolist(), got.j.tolist())) == want and len(got) == len(want)
    assert np.allclose(got.score, np.einsum("ij,ij->i", x[got.i], x[got.j]), atol=1e-5)
    assert (got.above(0.99).score >= 0.99).all()


def test_cluster_ids_are_connected_components():
    pairs = D.Pairs(np.array([0, 1, 5, 7]), np.array([1, 2, 6, 5]), np.ones(4, np.float32))
    c = D.cluster_ids(9, pairs)
    assert c[0] == c[1] == c[2] and c[5] == c[6] == c[7]
    assert len({c[0], c[5], c[3], c[4], c[8]}) == 5


def test_evaluate_counts_pairs():
    cids = np.array([0, 0, 0, 3, 3, 5, 6])
    labels = ["a", "a", "b", "b", -1, "a", None]
    s = D.evaluate(cids, labels, links=4, threshold=0.9)
    # predicted pairs: C(3,2) + C(2,2) = 4; true pairs: a:{0,1,5}=3, b:{2,3}=1 -> 4; TP: (0,1) only.
    assert (s.clusters, s.clustered, s.predicted_pairs, s.true_pairs, s.tp) == (2, 5, 4, 4, 1)
    assert s.precision == pytest.approx(0.25) and s.recall == pytest.approx(0.25) and s.f1 == pytest.approx(0.25)
    assert D.evaluate(cids, None, 4, 0.9).precision is None


def test_cluster_records():
    ids = ["p0", "p1", "p2", "p3"]
    pairs = D.Pairs(np.array([0, 1]), np.array([1, 2]), np.array([0.99, 0.97], np.float32))
    cids = D.cluster_ids(4, pairs)
    recs = list(D.cluster_records(ids, ["A"] * 4, cids, pairs, labels=[1, 1, -1, 2]))
    assert len(recs) == 1
    r = recs[0]
    assert r["members"] == ["p0", "p1", "p2"] and r["size"] == 3 and r["category"] == "A"
    assert r["links"][0] == ["p0", "p1", 0.99] and r["score_min"] == pytest.approx(0.97)
    assert r["labels"] == [1, 1, None]

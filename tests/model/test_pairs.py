"""The click-log pair miner: each rule, and recovery of true pairs from a noisy log."""

import json

import pytest

from samestyle.errors import InputError
from samestyle.pairs import Click, MinerConfig, group_pairs, mine, read_click_log, synthetic_click_log

CAT = {"a": "Tshirts", "b": "Tshirts", "c": "Tshirts", "d": "Jeans", "e": "Tshirts"}


def _c(q, c, clicks=5, dwell=30.0, line=1):
    return Click(line, q, c, clicks, dwell)


@pytest.mark.parametrize("click,rule", [
    (_c("a", "zz"), "unknown_id"),
    (_c("a", "a"), "self"),
    (_c("a", "d"), "category"),
    (_c("a", "b", clicks=1), "clicks"),
    (_c("a", "b", dwell=1.0), "dwell"),
])
def test_each_rule_removes_and_is_counted(click, rule):
    pairs, rep = mine([click], CAT, MinerConfig(sim_floor=None))
    assert pairs == []
    assert rep.removed[rule] == 1 and sum(rep.removed.values()) == 1


def test_duplicates_merge_and_count():
    clicks = [_c("a", "b", clicks=1), _c("b", "a", clicks=1)]  # each alone would fail min_clicks=2
    pairs, rep = mine(clicks, CAT, MinerConfig(sim_floor=None))
    assert pairs == [("a", "b")]
    assert rep.removed["duplicate"] == 1 and rep.kept == 1


def test_dwell_rule_only_when_logged():
    pairs, _ = mine([Click(1, "a", "b", 3, None)], CAT, MinerConfig(min_dwell=100, sim_floor=None))
    assert pairs == [("a", "b")]


def test_similarity_floor():
    sims = {("a", "b"): 0.9, ("a", "c"): 0.1}
    pairs, rep = mine([_c("a", "b"), _c("a", "c")], CAT, MinerConfig(sim_floor=0.5),
                      similarity=lambda xs, ys: [sims[(x, y)] for x, y in zip(xs, ys)])
    assert pairs == [("a", "b")] and rep.removed["similarity"] == 1


def test_group_pairs():
    assert sorted(group_pairs(["a", "b", "c", "d"], [1, 1, 1, -1])) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_miner_recovers_truth_from_noisy_synthetic_log(catalogue, tmp_path):
    import csv

    rows = list(csv.DictReader(catalogue.csv_path.open()))
    ids = [r["id"] for r in rows]
    labels = [int(r["style_group"]) for r in rows]
    category = {r["id"]: r["articleType"] for r in rows}
    log, truth = synthetic_click_log(ids, labels, category, seed=3, noise=2.0)
    path = tmp_path / "clicks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in log))
    pairs, rep = mine(read_click_log(path), category, MinerConfig(sim_floor=None))
    got = set(pairs)
    recall = len(got & truth) / len(truth)
    precision = len(got & truth) / max(1, len(got))
    assert recall == 1.0, rep.to_dict()
    assert precision >= 0.95, rep.to_dict()
    for rule in ("unknown_id", "self", "category", "clicks", "dwell"):
        assert rep.removed[rule] > 0, rule  # every kind of injected noise was met and dropped


def test_bad_click_log_line_is_named(tmp_path):
    p = tmp_path / "clicks.csv"
    p.write_text("query_id,clicked_id,clicks\na,b,many\n")
    with pytest.raises(InputError, match="line 2"):
        list(read_click_log(p))

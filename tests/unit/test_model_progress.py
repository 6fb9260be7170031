"""`samestyle bench model-progress`: issue 17's figures read from eval reports, gaps kept
as gaps, bad files named, the picture written."""

import json

from click.testing import CliRunner

from samestyle.bench import model_progress as mp
from samestyle.cli.main import cli


def _report(i2i: float, m2m: float, own: float | None = None, colour_own: float | None = None, mod=None) -> dict:
    r = {"model_version": f"ss-{i2i}", "directions": {"i2i": {"r@1": i2i}, "m2m": {"r@1": m2m},
                                                      "t2i": {"r@10": 0.1}, "i2t": {"r@10": 0.05},
                                                      "t2t": {"r@1": 0.94}}}
    if own is not None:
        r["own_pair"] = {"title->own photo": {"r@10": own}}
    if colour_own is not None:
        r["with_colour"] = {"title->own photo": {"r@10": colour_own}}
    if mod is not None:
        r["modifier"] = {"photo + colour word -> image_vec": {"hit@10": mod}}
    return r


def test_progress_reads_each_metric_with_gaps_and_fallbacks():
    out = mp.progress({"old": _report(0.2, 0.93, own=0.05), "new": _report(0.5, 0.91, own=0.01, colour_own=0.12,
                                                                           mod=0.61)})
    rows = {r["metric"]: r for r in out["metrics"]}
    assert out["runs"] == ["old", "new"] and out["model_versions"]["new"] == "ss-0.5"
    assert rows["i→i R@1"]["values"] == {"old": 0.2, "new": 0.5} and rows["i→i R@1"]["last_meets_target"] is True
    assert rows["m→m R@1"]["last_meets_target"] is False
    # the full-colour line where the model has one, the served line where it has no colour part
    assert rows["title→own photo R@10"]["values"] == {"old": 0.05, "new": 0.12}
    assert rows["photo + colour word hit@10"]["values"] == {"old": None, "new": 0.61}


def test_cli_writes_json_and_plot_and_names_a_bad_report(tmp_path):
    a, b = tmp_path / "model-eval-run-a.json", tmp_path / "model-eval-run-b.json"
    a.write_text(json.dumps(_report(0.2, 0.93, own=0.05)))
    b.write_text(json.dumps(_report(0.3, 0.92, colour_own=0.1, mod=0.5)))
    r = CliRunner().invoke(cli, ["bench", "model-progress", str(a), str(b), "--plot-file", str(tmp_path / "p.png"),
                                 "--out", str(tmp_path / "p.json"), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "p.json").read_text())
    assert rep["runs"] == ["run-a", "run-b"] and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(cli, ["bench", "model-progress", str(a), "--names", "x,y"])
    assert r.exit_code == 2 and "2 distinct names for 1 reports" in r.output
    bad = tmp_path / "model-eval-bad.json"
    bad.write_text(json.dumps({"benchmark": "dedup"}))
    r = CliRunner().invoke(cli, ["bench", "model-progress", str(a), str(bad)])
    assert r.exit_code == 2 and "model-eval-bad.json" in r.output and "directions" in r.output

"""The CLI's shape: `--help` without importing any verb or heavy library, verbs found
from their source, the stack advert `serve` leaves in the data dir, errors (JSON on
stdout in --json mode, never a traceback), and the search table's columns."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from samestyle.cli import main as M
from samestyle.config import Settings
from samestyle.heavy import PACKAGES
from samestyle.serve import advert

HEAVY = tuple(PACKAGES)  # every heavy or optional package (samestyle.heavy, the one allow-list)


def _modules_after(*argv: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    probe = ("import sys; sys.argv = ['samestyle', *sys.argv[1:]]\n"
             "from samestyle.cli.main import main\n"
             "try:\n    main()\nfinally:\n"
             f"    print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120,
                       env=env or dict(os.environ))
    line = [x for x in r.stderr.splitlines() if x.startswith("HEAVY")][-1]
    return r, eval(line[len("HEAVY "):])  # noqa: S307 - our own probe's repr of a list of names


def test_help_imports_no_verb_and_no_heavy_library():
    r, heavy = _modules_after("--help")
    assert r.returncode == 0 and heavy == []
    for verb in ("search", "ingest", "serve", "dedup", "bench", "collections"):
        assert f"  {verb} " in r.stdout


@pytest.mark.parametrize("verb", ["search", "ingest", "dedup", "collections", "serve", "demo", "export"])
def test_verb_help_imports_nothing_heavy(verb, tmp_path):
    r, heavy = _modules_after(verb, "--help", env=dict(os.environ, SAMESTYLE_DATA_DIR=str(tmp_path / "d")))
    assert r.returncode == 0 and heavy == [], (verb, heavy)
    assert not (tmp_path / "d").exists()


def test_summaries_from_source_match_the_commands():
    """--help reads names and help from the modules' source; it must say what importing them says."""
    summaries = M._summaries()
    commands = M._commands()
    assert set(summaries) == set(commands)
    for name, cmd in commands.items():
        assert cmd.name == name
        assert summaries[name][1].split("\n")[0] == (cmd.help or "").split("\n")[0]


def test_advert_round_trip(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        url = f"http://127.0.0.1:{srv.getsockname()[1]}"
        advert.write(tmp_path, {"triton_url": f"127.0.0.1:{srv.getsockname()[1]}", "milvus_uri": url,
                                "http_url": url})
        found = advert.find(tmp_path)
        assert found and found["pid"] == os.getpid() and found["http_url"] == url
        s, used = advert.apply(Settings(data_dir=tmp_path))
        assert used and s.milvus_uri == url and s.triton_url.endswith(str(srv.getsockname()[1]))
        # the environment wins over the advert
        s, _ = advert.apply(Settings(data_dir=tmp_path, milvus_uri="http://elsewhere:19530"))
        assert s.milvus_uri == "http://elsewhere:19530"
    finally:
        srv.close()
    assert advert.find(tmp_path) is None, "an advert whose endpoints refuse connections is ignored"
    advert.remove(tmp_path)
    assert not advert.path(tmp_path).exists()


def test_advert_of_a_dead_process_is_ignored(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    advert.path(tmp_path).write_text(json.dumps({"pid": int(proc.stdout), "milvus_uri": "x.db"}))
    assert advert.find(tmp_path) is None
    assert advert.find(tmp_path / "missing") is None
    (tmp_path / "serve.json").write_text("{not json")
    assert advert.find(tmp_path) is None


def _run_main(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["samestyle", *argv])
    with pytest.raises(SystemExit) as ex:
        M.main()
    out = capsys.readouterr()
    return ex.value.code, out.out, out.err


def test_read_only_verbs_create_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAMESTYLE_DATA_DIR", raising=False)
    monkeypatch.delenv("SAMESTYLE_MILVUS_URI", raising=False)
    for argv in (["search", "--product", "X"], ["collections"], ["dedup"]):
        code, out, err = _run_main(monkeypatch, capsys, *argv)
        assert code == 2 and "there is no product data at [.samestyle/milvus.db]" in err, (argv, err)
    monkeypatch.setenv("SAMESTYLE_MILVUS_URI", str(tmp_path / "typo.db"))
    code, out, err = _run_main(monkeypatch, capsys, "search", "--product", "X", "--json")
    assert code == 2 and "typo.db" in json.loads(out)["error"]["message"]
    assert list(tmp_path.iterdir()) == []


def test_a_db_held_by_another_process_is_one_line(monkeypatch, capsys, tmp_path):
    db = tmp_path / "milvus.db"
    db.mkdir()
    (db / "LOCK").touch()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(db / "LOCK")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("SAMESTYLE_DATA_DIR", str(tmp_path))
        code, out, err = _run_main(monkeypatch, capsys, "search", "--product", "X")
        assert code == 2 and "is in use by another process" in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()


def test_json_errors_go_to_stdout_with_the_exit_code(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SAMESTYLE_DATA_DIR", str(tmp_path / "d"))
    (tmp_path / "d" / "milvus.db").mkdir(parents=True)  # data exists: the input is checked first
    code, out, err = _run_main(monkeypatch, capsys, "search", "--text", "", "--json")
    assert code == 2
    e = json.loads(out)["error"]
    assert e["code"] == "invalid_input" and e["field"] == "text" and e["exit_code"] == 2
    code, out, _ = _run_main(monkeypatch, capsys, "search", "--json")
    assert code == 2 and json.loads(out)["error"]["code"] == "usage_error"
    code, out, err = _run_main(monkeypatch, capsys, "search", "--text", "  ")
    assert code == 2 and out == "" and "--text is empty" in err


def test_no_traceback_reaches_the_terminal(monkeypatch, capsys, tmp_path):
    @click.command("boom")
    @click.option("--json", "as_json", is_flag=True)
    def boom(as_json):
        raise RuntimeError("kaput")

    monkeypatch.setitem(M._LOADED, "boom", boom)
    monkeypatch.setattr(M, "_SUMMARIES", {**M._summaries(), "boom": ("boom", "")})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code, out, err = _run_main(monkeypatch, capsys, "boom")
    assert code == 1 and "Traceback" not in err and "internal error: RuntimeError: kaput" in err
    log = Path(err.split("details in ")[1].split(" ")[0])
    assert "Traceback" in log.read_text()
    code, out, err = _run_main(monkeypatch, capsys, "boom", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "internal_error" and "Traceback" not in err


def test_progress_notes_reach_stderr():
    import logging

    runner = CliRunner()

    @M.cli.command("note-test")
    def note():
        logging.getLogger(M.PROGRESS_LOGGER).info("starting a local Triton (~15 s)…")

    try:
        M._LOADED["note-test"] = note
        M._summaries()["note-test"] = ("x", "")
        r = runner.invoke(M.cli, ["note-test"])
        assert r.exit_code == 0 and "starting a local Triton (~15 s)…" in r.stderr
    finally:
        M._LOADED.pop("note-test", None)
        M._summaries().pop("note-test", None)
        M.cli.commands.pop("note-test", None)


HITS = {"search_type": "product", "query": {"product_id": "Red-Delicious-Apple-0001"}, "fields": ["fused_vec"],
        "weights": {"fused_vec": 1.0}, "ranker": "weighted", "profile": "default", "took_ms": 3.0, "filter": "",
        "hits": [{"id": "Red-Delicious-Apple-0002", "rank": 1, "score": 0.9, "similarity": 0.9,
                  "scores": {"fused_vec": 0.9}, "matched": "fused_vec",
                  "entity": {"title": "Apple", "category": "Fruit", "brand": None, "origin": "Kent",
                             "price": 1.5, "content_hash": "abc", "has_image": True}},
                 {"id": "P2", "rank": 2, "score": 0.5, "similarity": 0.5, "scores": {"fused_vec": 0.5},
                  "matched": "fused_vec", "entity": {"title": "Pear", "category": "Fruit", "origin": "",
                                                     "price": 2}}]}


def test_table_prints_full_ids_and_the_catalogues_attributes():
    from samestyle.cli.search import _table

    out = CliRunner().invoke(click.command()(lambda: _table(HITS))).output
    assert "Red-Delicious-Apple-0002" in out
    header = out.splitlines()[1]
    assert "origin" in header and "price" in header and "category" in header
    assert "brand" not in header, "an attribute no hit has is not a column"
    assert "content_hash" not in header and "has_image" not in header
    out = CliRunner().invoke(click.command()(lambda: _table(HITS, ["price"]))).output
    header = out.splitlines()[1]
    assert "price" in header and "origin" not in header and "category" not in header


def test_ctrl_c_in_ingest_says_the_rerun_resumes(monkeypatch, capsys):
    @click.command("ingest")
    def fake_ingest():
        raise KeyboardInterrupt

    monkeypatch.setitem(M._LOADED, "ingest", fake_ingest)
    code, out, err = _run_main(monkeypatch, capsys, "ingest")
    assert code == 130 and "resumes from its checkpoint" in err and "Aborted" not in err
    monkeypatch.setitem(M._LOADED, "export", fake_ingest)
    code, out, err = _run_main(monkeypatch, capsys, "export")
    assert code == 130 and err.strip().endswith("interrupted")


def test_rates_after_a_resume_are_this_runs():
    from samestyle.loaders.pipeline import IngestReport

    r = IngestReport("c.csv", "products_v1", "m", read=1000, loaded=900, seconds=10.0,
                     carried={"read": 800, "loaded": 750})
    d = r.to_dict()
    assert d["products_per_s"] == 20.0 and d["encoded_per_s"] == 15.0 and d["read_this_run"] == 200
    assert IngestReport("c.csv", "p", "m", read=100, seconds=10.0).products_per_s == 10.0

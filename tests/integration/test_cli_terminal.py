"""The CLI as a user meets it in a terminal (issue #16, point 5): the real `samestyle`
in a subprocess over real Milvus Lite data dirs and the in-process ONNX encoder. The
README's first search on the demo's data, one clear line (never a traceback) for a
missing collection, `--columns` in the results table, and Ctrl-C during an ingest."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samestyle.config import Settings
from samestyle.loaders.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = Path(sys.executable).parent / "samestyle"  # what `source .venv/bin/activate` puts on PATH


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "samestyle", command
    head = [str(CONSOLE)] if CONSOLE.exists() else [sys.executable, "-c", "from samestyle.cli.main import main; main()"]
    return head + argv[1:]


def _env(data_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMESTYLE_")}
    env["SAMESTYLE_LOG_LEVEL"] = "WARNING"
    if data_dir is not None:
        env["SAMESTYLE_DATA_DIR"] = str(data_dir)
    return env


def _run(command: str, data_dir: Path | None, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(command), cwd=cwd, env=_env(data_dir), capture_output=True, text=True, timeout=timeout)


def _table_ids(stdout: str) -> list[str]:
    """The id column of `samestyle search`'s table (the rows after the `#  id` header)."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "id"])
    return [line.split()[1] for line in lines[head + 1:] if line.split() and line.split()[0].isdigit()]


def _readme_first_search() -> str:
    """The `samestyle search` line of the README's first screen ("Start here")."""
    text = (ROOT / "README.md").read_text()
    start = text.split("## Start here", 1)[1]
    block = start.split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    searches = [line for line in lines if line.startswith("samestyle search")]
    assert len(searches) == 1, block
    return searches[0]


# `samestyle demo` as `make demo` runs it, with its encoder the in-process ONNX one (the
# same graphs Triton serves) rather than a local Triton. A subprocess, as the search
# after it: Milvus Lite keeps a data dir locked by the process that opened it.
DEMO_WITH_ONNX = """
import sys
import samestyle.serve as serve
from samestyle.cli.search import open_encoder

def onnx_for(settings, **kw):
    enc = open_encoder(settings, "onnx")
    enc.url = "in-process ONNX Runtime"
    return enc

serve.encoder_for = onnx_for
sys.argv = ["samestyle", "demo"]
from samestyle.cli.main import main
main()
"""


@pytest.mark.slow  # the demo ingests its whole default catalogue
def test_readme_first_search_works_on_the_demo_data(tmp_path, onnx_bundle):
    """`make demo` runs `samestyle demo` (default size, default data dir ./.samestyle);
    the README's first search, run verbatim from the same directory, finds products of
    the queried product's style group. The demo's encoder is the in-process ONNX one
    (the same graphs Triton serves); a product search needs no encoder."""
    r = subprocess.run([sys.executable, "-c", DEMO_WITH_ONNX], cwd=tmp_path, env=_env(None), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Next, on the same data:" in r.stdout

    command = _readme_first_search()
    pid = re.fullmatch(r"samestyle search --product (\S+)", command).group(1)
    with (tmp_path / ".samestyle" / "demo" / "catalogue" / "catalogue.csv").open(newline="") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    assert pid in rows, f"the README searches for {pid}, which the demo's catalogue does not have"
    group = rows[pid]["style_group"]
    mates = {i for i, row in rows.items() if row["style_group"] == group and i != pid}
    assert group != "-1" and mates, f"{pid} is in no style group of the demo: the README should name one that is"

    s = _run(command, None, tmp_path)
    assert s.returncode == 0, s.stdout + s.stderr
    ids = _table_ids(s.stdout)
    assert ids and pid not in ids and set(ids) <= set(rows), s.stdout
    assert ids[0] in mates, (mates, s.stdout)  # the same style first: its colourways, its re-listing
    assert "Traceback" not in s.stderr


@pytest.mark.slow  # three subprocesses, each importing the store and the CLI afresh
def test_dedup_on_a_missing_collection_is_one_clear_line(tmp_path):
    """A real (empty) Milvus Lite data dir: dedup names the collection and the fix,
    exits non-zero, prints no traceback; in --json mode the error is JSON on stdout."""
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from samestyle.config import Settings; "
                    "from samestyle.store import Store; Store.open(Settings(data_dir=Path(sys.argv[1]))).close()",
                    str(data)], check=True, timeout=120)  # (Milvus Lite keeps a dir locked by its process)
    assert (data / "milvus.db").exists()

    r = _run("samestyle dedup", data, tmp_path)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert "collection [products] does not exist" in r.stderr and "fix: " in r.stderr and "ingest" in r.stderr
    assert "Traceback" not in r.stderr

    r = _run("samestyle dedup --collection no_such_one --json", data, tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "collection_not_found" and err["collection"] == "no_such_one"
    assert "[no_such_one]" in err["message"] and err["fix"] and err["exit_code"] == 2
    assert "Traceback" not in r.stdout + r.stderr


def _long_id_catalogue(root: Path) -> tuple[Path, dict[str, dict]]:
    """A small generated catalogue whose ids are longer than the 12 characters the
    table once cut them to (`P00001-Tshirts-Red`)."""
    cat = generate(root, n_groups=3, n_duplicates=2, n_singletons=2)
    with cat.csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["id"] = f"{row['id']}-{row['articleType']}-{row['baseColour']}"
    with cat.csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return cat.csv_path, {row["id"]: row for row in rows}


@pytest.mark.slow  # an ingest and three searches, each a `samestyle` subprocess loading the model
def test_search_columns_show_the_catalogues_attributes(tmp_path):
    """`search --columns colour,price` on an ingested catalogue: those columns, with each
    hit's own values from the catalogue, and the ids whole. Ingest stores the fashion
    column `baseColour` as the attribute `colour`: `--columns baseColour,price` (the
    catalogue's own names) shows the same column; a name that is not stored is one
    error line listing the stored names, exit 2, no table."""
    csv_path, rows = _long_id_catalogue(tmp_path / "cat")
    data = tmp_path / "data"
    r = _run(f"samestyle ingest {csv_path} --encoder onnx --json", data, tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["loaded"] == len(rows), r.stdout + r.stderr

    pid = next(iter(rows))
    for asked in ("colour,price", "baseColour,price"):
        r = _run(f"samestyle search --product {pid} --columns {asked} -k 5", data, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        header = next(line for line in lines if line.split()[:2] == ["#", "id"])
        assert header.split()[-3:] == ["colour", "price", "title"], (asked, header)
        ids = _table_ids(r.stdout)
        assert len(ids) == 5 and set(ids) <= set(rows), r.stdout  # whole ids, each one a catalogue id
        for hid in ids:
            line = next(x for x in lines if x.split()[1:2] == [hid])
            colour, price = line.split()[-len(rows[hid]["title"].split()) - 2:][:2]
            assert colour == rows[hid]["baseColour"] and float(price) == pytest.approx(float(rows[hid]["price"])), line

    r = _run(f"samestyle search --product {pid} --columns colour,fabric -k 5", data, tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "--columns [fabric]" in err[0], r.stderr
    assert all(name in err[0] for name in ("brand", "colour", "gender", "price")), err[0]  # the stored names
    assert "#" not in r.stdout.split(), r.stdout  # no table


def _checkpoint(data: Path) -> dict | None:
    for p in (data / "checkpoints").glob("*.json"):
        try:
            return json.loads(p.read_text())
        except ValueError:  # written by tmp + rename, so only while it is being replaced
            return None
    return None


@pytest.mark.slow  # two ingests
def test_ctrl_c_during_a_real_ingest_resumes(tmp_path):
    """SIGINT once the first batches are checkpointed: one line saying a re-run resumes,
    exit 130, no traceback; the re-run resumes and every product is stored once."""
    from samestyle.store import Store

    # ~190 products in batches of 4: the interrupt lands after the first checkpoint with
    # dozens of batches still to go (51 products once finished between the poll and the signal)
    cat = generate(tmp_path / "cat", n_groups=60, n_duplicates=2, n_singletons=8)
    data = tmp_path / "data"
    out, err = (tmp_path / "out.txt").open("w+"), (tmp_path / "err.txt").open("w+")
    # preexec_fn: Ctrl-C as a terminal delivers it. A shell starts background jobs with
    # SIGINT ignored, and a Python started that way never raises KeyboardInterrupt; a test
    # run from such a job (nohup make test &) would otherwise see the ingest shrug it off.
    proc = subprocess.Popen(_argv(f"samestyle ingest {cat.csv_path} --encoder onnx --batch-size 4 --json"),
                            cwd=tmp_path, env=_env(data), stdout=out, stderr=err, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while proc.poll() is None and not (_checkpoint(data) or {}).get("next_line"):
            time.sleep(0.02)
        assert proc.poll() is None, "the ingest finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
    stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert rc == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr and "Aborted" not in stderr, stderr
    assert "again and it resumes from its checkpoint" in stderr.strip().splitlines()[-1], stderr
    kept = _checkpoint(data)
    assert kept and 0 < kept["counts"]["loaded"] < cat.n_products, kept

    r = _run(f"samestyle ingest {cat.csv_path} --encoder onnx --batch-size 4 --json", data, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["complete"] and report["resumed_from_line"] and report["read_this_run"] < cat.n_products, report
    with cat.csv_path.open(newline="") as f:
        want = sorted(row["id"] for row in csv.DictReader(f))
    with Store.open(Settings(data_dir=data)) as store:
        name = store.alias_target("products") or "products"
        got = sorted(str(row["id"]) for batch in store.scan(name, ["id"]) for row in batch)
    assert got == want  # each product once: none lost to the interrupt, none stored twice by the re-run

"""`samestyle bench cli`: wall time of the commands a user types, as separate
processes, against the targets of issue 16: with `samestyle serve` running,
`samestyle search --product ID` <= 1.0 s and `--text` <= 1.5 s; `samestyle --help`
<= 0.5 s. Also the direct path (no serve: pymilvus and an in-process encoder imported
by the command) for comparison, and which heavy libraries each command imported.

Set-up (not timed): a generated catalogue ingested with the in-process ONNX encoder
into a fresh data dir, then `samestyle serve` started on it (Triton, a Milvus Lite
server, the HTTP API) and found by the commands through its advert in the data dir,
exactly as a user's commands find it."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from ..heavy import PACKAGES
from ..loaders.synthetic import generate
from ..output import emit, json_option
from ..serve import advert
from ..serve.process import free_port

TARGETS_S = {"help": 0.5, "search_product": 1.0, "search_text": 1.5}
HEAVY = tuple(PACKAGES)
PROBE = ("import sys; sys.argv = ['samestyle', *sys.argv[1:]]\n"
         "from samestyle.cli.main import main\n"
         "try:\n    main()\nfinally:\n"
         f"    print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")


def _exe() -> list[str]:
    script = Path(sys.executable).with_name("samestyle")
    return [str(script)] if script.exists() else [sys.executable, "-m", "samestyle.cli.main"]


def _time(argv: list[str], env: dict, runs: int) -> dict:
    """Wall seconds of `runs` runs (after one untimed warm-up run, which fills the OS
    file cache and the server's lazy state)."""
    def once() -> float:
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise click.ClickException(f"{' '.join(argv[-4:])} failed: {r.stderr.decode()[-500:]}")
        return dt

    first = once()
    ts = sorted(once() for _ in range(runs))
    return {"runs": runs, "first_s": round(first, 3), "median_s": round(statistics.median(ts), 3),
            "min_s": round(ts[0], 3), "p90_s": round(ts[min(len(ts) - 1, int(0.9 * len(ts)))], 3),
            "max_s": round(ts[-1], 3)}


def _heavy(args: list[str], env: dict) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=600)
    line = [x for x in r.stderr.splitlines() if x.startswith("HEAVY")]
    return [m for m in line[-1][len("HEAVY "):].split(",") if m] if line else ["?"]


def _prepare(root: Path, n_groups: int, env: dict) -> tuple[str, str]:
    """A generated catalogue ingested into root by `samestyle ingest --encoder onnx`
    (another process: an embedded Milvus Lite file has one owner at a time);
    (a product id, a phrase)."""
    cat = generate(root / "catalogue", n_groups=n_groups)
    r = subprocess.run([*_exe(), "ingest", str(cat.csv_path), "--encoder", "onnx", "--json"], env=env,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise click.ClickException(f"ingest of the generated catalogue failed: {r.stdout[-300:]}{r.stderr[-500:]}")
    return cat.duplicates[0][0], "red striped t-shirt"


def _start_serve(root: Path, env: dict, timeout_s: float = 300.0) -> subprocess.Popen:
    proc = subprocess.Popen([*_exe(), "serve", "--http-port", str(free_port())], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(root / "serve.log", "wb"),
                            start_new_session=True)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"samestyle serve exited ({proc.returncode}); see {root / 'serve.log'}")
        info = advert.find(root)
        if info and info.get("http_url"):
            return proc
        time.sleep(0.5)
    _stop(proc)
    raise click.ClickException(f"samestyle serve did not come up in {timeout_s:.0f} s; see {root / 'serve.log'}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@click.command("cli")
@click.option("--runs", type=click.IntRange(1, 100), default=10, show_default=True, help="Timed runs per command.")
@click.option("--products", "n_groups", type=click.IntRange(2, 2000), default=40, show_default=True,
              help="Style groups in the generated catalogue (about 3 products each).")
@click.option("--quick", is_flag=True, help="Smoke run: 1 run each, no serve (the direct path only); "
                                            "figures meaningless.")
@click.option("--keep", is_flag=True, help="Keep the temporary data dir (its path is in the output).")
@json_option
@click.pass_obj
def command(settings, runs, n_groups, quick, keep, as_json):
    """Wall time of `samestyle --help`, `search --product` and `search --text` as a user
    runs them, with `samestyle serve` running (the targets) and without it."""
    root = Path(tempfile.mkdtemp(prefix="samestyle-bench-cli-"))
    env = dict(os.environ, SAMESTYLE_DATA_DIR=str(root), SAMESTYLE_LOG_LEVEL="WARNING")
    for k in ("SAMESTYLE_MILVUS_URI", "SAMESTYLE_TRITON_URL", "SAMESTYLE_COLLECTION"):
        env.pop(k, None)
    runs = 1 if quick else runs
    exe = _exe()
    out: dict = {"benchmark": "cli", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                "platform": platform.platform()},
                 "runs": runs, "quick": quick, "targets_s": TARGETS_S, "data_dir": str(root) if keep else None}
    try:
        pid, phrase = _prepare(root, 4 if quick else n_groups, env)
        cmds = {"help": ["--help"], "search_product": ["search", "--product", pid],
                "search_text": ["search", "--text", phrase]}
        direct = {"help": ["--help"], "search_product": ["search", "--product", pid, "--encoder", "onnx"],
                  "search_text": ["search", "--text", phrase, "--encoder", "onnx"]}
        out["without_serve"] = {name: {**_time(exe + args, env, runs), "heavy_imports": _heavy(args, env)}
                                for name, args in direct.items() if not (quick and name == "search_text")}
        if not quick:
            proc = _start_serve(root, env)
            try:
                out["with_serve"] = {name: {**_time(exe + args, env, runs), "heavy_imports": _heavy(args, env)}
                                     for name, args in cmds.items()}
            finally:
                _stop(proc)
            out["met"] = {name: out["with_serve"][name]["median_s"] <= limit for name, limit in TARGETS_S.items()}
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)

    def human(o):
        for mode in ("with_serve", "without_serve"):
            if mode not in o:
                continue
            click.echo(f"{mode.replace('_', ' ')} (median of {o['runs']}, first run apart):")
            for name, r in o[mode].items():
                target = f"  target {TARGETS_S[name]} s: {'met' if o.get('met', {}).get(name) else 'missed'}" \
                    if mode == "with_serve" else ""
                click.echo(f"  {name:<15} {r['median_s']:6.3f} s  (min {r['min_s']:.3f}, first {r['first_s']:.3f}; "
                           f"imports {','.join(r['heavy_imports']) or 'none heavy'}){target}")

    emit(out, as_json, human)


__all__ = ["command"]

"""`samestyle bench heal`: how a `samestyle serve` stack answers while its Triton or
Milvus Lite child is SIGKILLed under concurrent clients, and how long it takes to
answer again.

A small text-only catalogue is ingested (in-process ONNX, into the data dir's Milvus
Lite), then `samestyle serve` is started on it: with a local Triton (`--child triton`)
or with SAMESTYLE_TRITON_URL pointing where nothing listens (`--child milvus`, no
Triton start). `--clients` threads search in a loop — product searches (no encoder)
and, for `--child triton`, text searches (encoder) half and half — while one more
polls /readyz. Once every kind has answered 200 (and `calm_s` passed) the child is
SIGKILLed; the run ends when
serve's supervisor has started a new one and every kind of request has answered 200
for `--hold` seconds (or after `--limit`). Every answer is kept; the report gives,
per kind, the statuses and error codes seen, whether each error has the documented
shape (and 503s a Retry-After), and `recovered_s`: from the kill to the end of the
first success that started after that kind's last failure. Figures are printed
(JSON with --json), never asserted; tests/integration/test_heal.py (Milvus) and
test_supervise.py (Triton) run the same `run` and assert on the answers, not the times."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from ..output import emit, json_option
from . import save_report
from ..serve.process import free_port

CHILD_MARK = {"triton": "tritonserver", "milvus": "milvus_lite"}  # in the child's command line
CLI = [sys.executable, "-c", "from samestyle.cli.main import main; main()"]


@dataclass
class Answer:
    kind: str  # product | text | readyz
    client: int  # which client thread (the /readyz poller is -1)
    start_s: float  # since the kill (negative before it)
    end_s: float
    status: int | None  # None: no HTTP answer (connection refused, client time-out)
    code: str | None = None  # error.code
    shaped: bool = True  # a non-2xx has {"error": {"code", "message"}}
    retry_after: bool = False
    failed: list | None = None  # /readyz: error.failed
    message: str | None = None  # error.message, cut to 200 characters

    @property
    def ok(self) -> bool:
        return self.status == 200


def write_catalogue(path: Path, n: int) -> Path:
    colours = ["red", "blue", "green", "black", "white", "grey", "navy", "olive"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "category"])
        for i in range(n):
            w.writerow([f"h{i}", f"{colours[i % len(colours)]} striped linen shirt {i}", "Shirts"])
    return path


def _call(port: int, path: str, body: dict | None, timeout_s: float = 30.0):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = None
        return exc.code, exc.headers, payload
    except OSError:
        return None, {}, None


def _answer(kind: str, client: int, t0: float, start: float, status, headers, body) -> Answer:
    a = Answer(kind, client, round(start - t0, 3), round(time.monotonic() - t0, 3), status)
    if status is not None and status != 200:
        err = body.get("error") if isinstance(body, dict) else None
        a.shaped = isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)
        a.code = err.get("code") if isinstance(err, dict) else None
        a.message = str(err.get("message"))[:200] if isinstance(err, dict) else None
        a.retry_after = bool(headers.get("Retry-After")) if headers else False
        if kind == "readyz" and isinstance(err, dict):
            a.failed = sorted(err.get("failed") or [])
    elif kind == "readyz" and status == 200:
        a.failed = []
    return a


class Load:
    """`clients` threads searching (kinds round-robin) and one polling /readyz."""

    def __init__(self, port: int, kinds: list[str], clients: int, pause_s: float = 0.05):
        self.port, self.kinds, self.clients, self.pause_s = port, kinds, clients, pause_s
        self.t0 = time.monotonic()  # answers' times count from here until `shift` moves them to the kill
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(kinds[i % len(kinds)], i), daemon=True)
                        for i in range(clients)] + [threading.Thread(target=self._loop, args=("readyz", -1),
                                                                     daemon=True)]

    def _loop(self, kind: str, i: int) -> None:
        path, body = {"product": ("/v1/search/product", {"id": f"h{i}", "k": 5}),
                      "text": ("/v1/search/text", {"text": "striped linen shirt", "k": 5}),
                      "readyz": ("/readyz", None)}[kind]
        while not self.stopping.is_set():
            start = time.monotonic()
            a = _answer(kind, i, self.t0, start, *_call(self.port, path, body))
            with self.lock:
                self.answers.append(a)
            time.sleep(self.pause_s if kind != "readyz" else 0.25)

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)

    def window(self, kind: str, t: float) -> list[Answer]:
        """Answers of `kind` that started at `t` or later or ended after it."""
        with self.lock:
            return [a for a in self.answers if a.kind == kind and (a.start_s >= t or a.end_s > t)]

    def shift(self, t: float) -> None:
        """Make every answer's times count from `t` (the kill)."""
        with self.lock:
            for a in self.answers:
                a.start_s, a.end_s = round(a.start_s - t, 3), round(a.end_s - t, 3)


def children(pid: int) -> dict[int, str]:
    """{pid: command line} of `pid`'s children."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for k in kids:
            try:
                out[int(k)] = Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
    return out


def child_pid(serve_pid: int, child: str) -> int | None:
    return next((p for p, cmd in children(serve_pid).items() if CHILD_MARK[child] in cmd), None)


def summarize(answers: list[Answer], kind: str, calm_failed: list[str]) -> dict:
    """Per kind: what the clients got before and after the kill. An answer is good when
    it is a 200 (for /readyz: when it names what it named before the kill, `calm_failed`)."""
    def good(a: Answer) -> bool:
        return a.failed == calm_failed if kind == "readyz" else a.ok

    def counts(xs: list[Answer]) -> dict:
        by: dict[str, int] = {}
        for a in xs:
            by[str(a.status)] = by.get(str(a.status), 0) + 1
        return {"calls": len(xs), "good": sum(good(a) for a in xs), "by_status": by}

    mine = [a for a in answers if a.kind == kind]
    after = [a for a in mine if a.end_s >= 0]  # answered after the kill (in flight at the kill included)
    bad = [a for a in after if not good(a)]
    last_bad = max((a.start_s for a in bad), default=None)
    back = [a.end_s for a in after if good(a) and (last_bad is None or a.start_s > last_bad)]
    out = {"before_kill": counts([a for a in mine if a.end_s < 0]), "after_kill": counts(after),
           "error_codes": sorted({a.code for a in bad if a.code}),
           "all_errors_shaped": all(a.shaped for a in mine if a.status not in (None, 200)),
           "no_answer": sum(a.status is None for a in bad),
           "all_503_with_retry_after": all(a.retry_after for a in mine if a.status == 503),
           "first_failure_s": min((a.start_s for a in bad), default=None), "last_failure_s": last_bad,
           "recovered_s": (0.0 if last_bad is None else min(back)) if back else None}
    if kind == "readyz":
        out["failed_seen"] = sorted({",".join(a.failed) for a in after if a.failed is not None})
    return out


def start_serve(data_dir: Path, port: int, env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")
    proc = subprocess.Popen([*CLI, "serve", "--http-port", str(port), "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    return proc


def _wait(cond, proc: subprocess.Popen, what: str, limit_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited ({proc.returncode}) {what}: {log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {limit_s:.0f} s; serve's log: {log_path.read_text()[-3000:]}")
        time.sleep(0.3)


def run(work: Path, child: str, *, clients: int = 8, products: int = 16, calm_s: float = 4.0, hold_s: float = 5.0,
        limit_s: float = 300.0, env: dict | None = None) -> dict:
    """The whole scenario in `work` (a fresh folder). Returns the report; raises
    RuntimeError when serve does not start or does not heal within `limit_s`."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env, SAMESTYLE_DATA_DIR=str(work / "data"),
               SAMESTYLE_LOG_LEVEL="WARNING")
    env.pop("SAMESTYLE_MILVUS_URI", None)
    if child == "milvus":
        env["SAMESTYLE_TRITON_URL"] = f"127.0.0.1:{free_port()}"  # nothing listens: no Triton start
    else:
        env.pop("SAMESTYLE_TRITON_URL", None)
    cat = write_catalogue(work / "catalogue.csv", products)
    ing = subprocess.run([*CLI, "ingest", str(cat), "--encoder", "onnx", "--category-col", "category",
                          "--no-progress", "--json"], env=env, capture_output=True, text=True)
    if ing.returncode != 0:
        raise RuntimeError(f"ingest failed: {ing.stderr[-2000:]}")
    port, log_path = free_port(), work / "serve.err"
    proc = start_serve(work / "data", port, env, log_path)
    kinds = ["product", "text"] if child == "triton" else ["product"]
    load = None
    try:
        t_start = time.monotonic()
        healthy = (lambda s, b: s == 200) if child == "triton" else (
            lambda s, b: s == 503 and (b or {}).get("error", {}).get("failed") == ["triton"])
        _wait(lambda: healthy(*_call(port, "/readyz", None)[::2]), proc, "serve was not ready", limit_s, log_path)
        serve_ready_s = time.monotonic() - t_start
        victim = child_pid(proc.pid, child)
        if victim is None:
            raise RuntimeError(f"serve has no {child} child: {children(proc.pid)}")
        load = Load(port, kinds, clients).start()
        time.sleep(calm_s)  # and until every kind has answered 200 at least once
        _wait(lambda: all(any(a.ok for a in load.window(k, 0)) for k in kinds), proc, "no search answered 200",
              limit_s, log_path)
        t_kill = time.monotonic()
        os.kill(victim, 9)
        kill_at = t_kill - load.t0  # in the load's clock
        calm_failed = ["triton"] if child == "milvus" else []
        back = {}

        def fine(a: Answer) -> bool:
            return a.failed == calm_failed if a.kind == "readyz" else a.ok

        def healed() -> bool:
            now = time.monotonic() - t_kill
            pid = child_pid(proc.pid, child)
            if pid is not None and pid != victim:
                back.setdefault("child_pid_s", round(now, 3))
            if "child_pid_s" not in back or now < hold_s:
                return False
            for kind in kinds + ["readyz"]:
                recent = load.window(kind, kill_at + now - hold_s)
                if not recent or not all(fine(a) for a in recent):
                    return False
            return True

        _wait(healed, proc, f"serve did not heal after its {child} was killed", limit_s, log_path)
        load.stop()
        load.shift(kill_at)
    finally:
        if load is not None:
            load.stop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    answers = load.answers
    return {"benchmark": "heal", "child": child, "clients": clients, "products": products,
            "machine": {"cpus": os.cpu_count()}, "serve_ready_s": round(serve_ready_s, 1),
            "new_child_s": back.get("child_pid_s"), "serve_exit": proc.returncode,
            "kinds": {k: summarize(answers, k, calm_failed) for k in kinds + ["readyz"]},
            "answers_kept": len(answers), "_answers": [asdict(a) for a in answers]}


@click.command("heal")
@click.option("--child", type=click.Choice(sorted(CHILD_MARK)), required=True, help="Which of serve's children to kill.")
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--hold", "hold_s", type=float, default=5.0, show_default=True,
              help="Healed = every kind answered 200 (and /readyz as before the kill) this long.")
@click.option("--limit", "limit_s", type=float, default=300.0, show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON report here.")
@json_option
@click.pass_obj
def command(settings, child, clients, hold_s, limit_s, out_path, as_json):
    """SIGKILL serve's Triton or Milvus Lite child under concurrent clients: what the
    clients get meanwhile and how long until each kind of request answers again."""
    with tempfile.TemporaryDirectory(prefix="bench-heal-") as tmp:
        report = run(Path(tmp), child, clients=clients, hold_s=hold_s, limit_s=limit_s)
    report.pop("_answers")
    save_report(report, out_path)

    def human(r):
        click.echo(f"{child} killed under {clients} clients; new child after {r['new_child_s']} s")
        for k, s in r["kinds"].items():
            click.echo(f"  {k:8s} recovered {s['recovered_s']} s after the kill; after it {s['after_kill']}; "
                       f"errors {s['error_codes']}")

    emit(report, as_json, human)

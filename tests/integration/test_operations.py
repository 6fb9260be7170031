"""Operations (issue #12, items 6 and 7) against real processes: the Triton samestyle
starts listens on loopback only, what a killed owner's server left is reaped,
and `samestyle serve` stops its children and exits 0 on SIGTERM, as on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from samestyle.serve.process import free_port
from samestyle.serve import reap


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            local, state = ln.split()[1], ln.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.append(addr)
    return found


@pytest.mark.triton
def test_triton_listens_on_loopback_only(triton_server):
    addrs = _listeners(triton_server.grpc_port)
    assert addrs, "nothing listens on Triton's gRPC port"
    # 127.0.0.1, as IPv4 or IPv4-mapped IPv6 (gRPC's socket); 0.0.0.0 or :: would be every interface
    assert set(addrs) <= {"0100007F", "0000000000000000FFFF00000100007F"}, addrs


def test_a_dead_owners_server_and_regions_are_reaped_a_live_owners_are_not(tmp_path):
    """serve.reap on real processes: a 'server' (its own process group, the record's
    prefix on its command line, as tritonserver and its stubs have) whose owner died
    is killed and its regions removed; a live owner's server and another data dir's
    regions are left alone."""
    run, other = tmp_path / "data" / "logs", tmp_path / "other" / "logs"
    shm = tmp_path / "shm"
    shm.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    servers = {}
    for port in (1111, 2222):
        servers[port] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                          reap.shm_prefix(run, port)], start_new_session=True)
        reap.write_record(run, port, servers[port].pid)
        (shm / f"{reap.shm_prefix(run, port)}region").write_bytes(b"x")
    rec = reap.record_path(run, 1111)
    rec.write_text(json.dumps({**json.loads(rec.read_text()), "owner": dead.pid, "owner_started": 1}))
    foreign = shm / f"{reap.shm_prefix(other, 1111)}region"
    foreign.write_bytes(b"x")
    try:
        got = reap.reap(run, shm_root=shm)
        assert got == {"killed": [servers[1111].pid], "shm": [f"{reap.shm_prefix(run, 1111)}region"]}
        assert servers[1111].wait(10) == -signal.SIGKILL and not rec.exists()
        assert servers[2222].poll() is None and reap.record_path(run, 2222).exists()  # its owner (us) lives
        assert foreign.exists() and (shm / f"{reap.shm_prefix(run, 2222)}region").exists()
    finally:
        for p in servers.values():
            p.kill()
            p.wait()


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


_WORKER_OWNER = """
import sys, threading, time
from pathlib import Path
from samestyle.serve.process import ManagedProcess

# A leader that is armed, and a child of it in its group that is not (as Triton's stubs).
argv = ["sh", "-c", "sleep 600 & echo $! > " + sys.argv[1] + "/child; exec sleep 600"]
proc = ManagedProcess("sleeper", argv, {"PATH": "/usr/bin:/bin"}, Path(sys.argv[1]) / "log", guard_s=5)
t = threading.Thread(target=proc.start)  # a worker thread that ends at once
t.start()
t.join()
while not (Path(sys.argv[1]) / "child").read_text().strip() if (Path(sys.argv[1]) / "child").exists() else True:
    time.sleep(0.05)
print(proc.proc.pid, (Path(sys.argv[1]) / "child").read_text().strip(), proc.guard.pid, flush=True)
time.sleep(600)
"""


def test_a_server_started_from_a_worker_thread_dies_with_its_owner_and_its_group_too(tmp_path):
    """Started from a thread that has ended, a server lives on while its owner does, and
    when the owner is SIGKILLed the kernel stops it (PDEATHSIG armed by the launcher
    thread) and its guard kills what is left in its group (a child nobody armed)."""
    owner = subprocess.Popen([sys.executable, "-c", _WORKER_OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(x) for x in owner.stdout.readline().split()]
        assert len(pids) == 3 and all(_alive(p) for p in pids), pids  # the worker thread's end killed nothing
        os.kill(owner.pid, signal.SIGKILL)
        assert owner.wait(30) == -signal.SIGKILL
        deadline = time.monotonic() + 30  # a bound, not a speed claim (the guard's grace is 5 s)
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in pids if _alive(p)], "a server, its unarmed child or its guard outlived the owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdout.close()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


@pytest.mark.slow  # starts `samestyle serve`, which starts a Milvus Lite server
def test_serve_stops_its_stack_and_exits_0_on_sigterm(tmp_path, samestyle_cli):
    """What a process manager or `docker stop` sends. Triton is given as a URL (not
    started here: this test is about the signal), Milvus Lite is started by serve."""
    http_port = free_port()
    env = dict(os.environ, SAMESTYLE_DATA_DIR=str(tmp_path / "data"), SAMESTYLE_LOG_LEVEL="WARNING",
               SAMESTYLE_TRITON_URL="127.0.0.1:1")
    env.pop("SAMESTYLE_MILVUS_URI", None)
    proc = subprocess.Popen([*samestyle_cli, "serve", "--http-port", str(http_port), "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # waiting for readiness, not timing it
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            time.sleep(0.3)
        kids = _children(proc.pid)
        assert kids, "serve started no Milvus child"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(90)
        assert rc == 0, proc.stderr.read()
        assert not [k for k in kids if _alive(k)], "a child of serve outlived it"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ingest_dead_letters_forged_and_escaping_photos(tmp_path, catalogue, onnx_encoder):
    """Through the real pipeline into Milvus Lite: the forged JPEG, a traversal path and
    a loopback URL are dead-lettered with their reason; the good rows load."""
    import csv

    from samestyle.config import Settings
    from samestyle.loaders.jobs import ingest_catalogue
    from samestyle.loaders.pipeline import IngestOptions
    from samestyle.loaders.transform import ColumnMap
    from samestyle.store import Store
    from tests.unit.test_confinement import forged_jpeg

    with catalogue.csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))[:5]
    root = tmp_path / "cat"
    (root / "img").mkdir(parents=True)
    for r in rows:
        (root / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        (root / r["image"]).write_bytes((catalogue.root / r["image"]).read_bytes())
    (root / "img" / "forged.jpg").write_bytes(forged_jpeg())
    (tmp_path / "outside.jpg").write_bytes((catalogue.root / rows[0]["image"]).read_bytes())
    rows[1]["image"] = "img/forged.jpg"
    rows[2]["image"] = "../outside.jpg"
    rows[3]["image"] = "http://127.0.0.1:9/a.jpg"
    path = root / "cat.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    settings = Settings(data_dir=tmp_path / "data")
    with Store.open(settings) as store:
        rep = ingest_catalogue(path, store=store, encoder=onnx_encoder, columns=ColumnMap(),
                               data_dir=settings.data_dir, options=IngestOptions(batch_size=8), max_failures="3")
    assert rep["loaded"] == 2 and rep["failed"] == 3, rep
    letters = {json.loads(x)["id"]: json.loads(x) for x in Path(rep["dead_letter"]).read_text().splitlines()}
    assert "forged" in letters[rows[1]["id"]]["reason"]
    assert letters[rows[2]["id"]]["kind"] == "refused_photo"
    assert letters[rows[3]["id"]]["kind"] == "refused_photo"


def _carrying(token: str) -> list[int]:
    """Live processes whose command line carries `token` (a Triton of ours, its stubs)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and _alive(int(d.name)):
            try:
                if token.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
@pytest.mark.triton  # two real tritonserver starts (the killed ingest's and the next one's)
def test_a_sigkilled_ingests_triton_dies_with_it_and_the_next_ingest_leaves_nothing(
        tmp_path, catalogue, triton_repo, samestyle_cli):
    """A real `samestyle ingest` (local Triton) SIGKILLed mid-run: its Triton, started
    from a worker thread but forked by the long-lived launcher thread, dies with it
    (PDEATHSIG), its stubs too, before any next command runs. The next ingest on that
    data dir (which would reap leftovers first) completes and leaves nothing."""
    import csv

    from samestyle.config import Settings
    from samestyle.serve.stack import log_dir
    from tests.fixtures.milvus import subprocess_env
    from tests.integration.test_ingest import _wait_for_checkpoint

    with catalogue.csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))[:40]
    path = catalogue.root / "reap40.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    settings = Settings(data_dir=tmp_path / "data")
    env = subprocess_env(settings, SAMESTYLE_TRITON_REPO=triton_repo, SAMESTYLE_LOG_LEVEL="INFO")
    env.pop("SAMESTYLE_TRITON_URL", None)
    cmd = [*samestyle_cli, "ingest", str(path), "--category-col", "articleType", "--batch-size", "8", "--json",
           "--no-progress"]
    token = reap.data_dir_token(log_dir(settings))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_checkpoint(settings.data_dir / "checkpoints", proc, min_line=9, timeout=300)
        running = _carrying(token)
        assert len(running) > 1, running  # tritonserver and its python stubs, serving this ingest
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    try:
        (rec,) = log_dir(settings).glob("triton-*.pid.json")  # the killed ingest's Triton, as it recorded it
        group = json.loads(rec.read_text())["pgid"]
        deadline = time.monotonic() + 30  # a bound, not a speed claim: Triton's exit timeout + the guard's margin
        while (_carrying(token) or reap.group_members(group, token)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not reap.group_members(group, token) and not _carrying(token), \
            "the killed ingest's Triton or a stub outlived it (no next command ran yet)"
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout)["complete"]
        assert not _carrying(token), "a Triton of this data dir outlived the run that started it"
        assert not list(Path("/dev/shm").glob(token + "*")), "shared-memory regions of this data dir are left"
    finally:
        for p in _carrying(token):  # never leave an orphan to other tests, even when failing
            os.kill(p, signal.SIGKILL)


def test_a_dead_owners_milvus_is_reaped_only_by_its_record_and_command_line(tmp_path):
    """serve.reap on a Milvus-kind record (real processes): a dead owner's server whose
    group leader still has the recorded start time and command line is killed; the same
    process under a record with another start time or command line is not (a reused
    pid), nor one whose owner lives."""
    from samestyle.serve.milvus import command_mark

    run = tmp_path / "data" / "logs"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    argv = [sys.executable, "-c", "import time; time.sleep(120)", "-m", "milvus_lite", "server", "--port", "3333"]
    server = subprocess.Popen(argv, start_new_session=True)
    live = subprocess.Popen(argv[:-1] + ["4444"], start_new_session=True)
    try:
        for port, proc in ((3333, server), (4444, live)):
            reap.write_record(run, port, proc.pid, kind="milvus", match=command_mark(argv[:-1] + [str(port)]))
        rec = reap.record_path(run, 3333, "milvus")
        good = json.loads(rec.read_text())
        assert good["kind"] == "milvus" and good["match"] in " ".join(argv) and good["owner"] == os.getpid()
        orphaned = {**good, "owner": dead.pid, "owner_started": 1}
        rec.unlink()
        reap.record_path(run, 1, "milvus").write_text(json.dumps({**orphaned, "started": good["started"] + 1}))
        reap.record_path(run, 2, "milvus").write_text(json.dumps({**orphaned, "match": "milvus_lite server --port 9"}))
        assert reap.reap(run) == {"killed": [], "shm": []}  # neither names this process: untouched
        assert server.poll() is None and not list(run.glob("milvus-[12].pid.json"))
        rec.write_text(json.dumps(orphaned))
        assert reap.reap(run) == {"killed": [server.pid], "shm": []}
        assert server.wait(10) == -signal.SIGKILL and not rec.exists()
        assert live.poll() is None and reap.record_path(run, 4444, "milvus").exists()  # its owner (us) lives
    finally:
        for p in (server, live):
            p.kill()
            p.wait()


_THREAD_OWNER = """
import sys, threading, time
from pathlib import Path
from samestyle.config import Settings
from samestyle.serve import local_stack
from samestyle.serve import process

# The first line of defence off (servers now die with their owner, PR_SET_PDEATHSIG),
# so the second one, the reap by the next command, is what this test sees.
process.die_with_parent = lambda parent=None: None

held = local_stack(Settings(data_dir=Path(sys.argv[1])), need_triton=False)  # kept: never exited


def start():  # from a worker thread, as an embedding application may
    stack = held.__enter__()
    print(stack.milvus.pid, stack.milvus.port, flush=True)

t = threading.Thread(target=start)
t.start()
t.join()
time.sleep(600)
"""


@pytest.mark.slow  # a Milvus Lite server, then an ingest (ONNX) on the same data dir
def test_the_next_command_reaps_the_milvus_a_sigkilled_owner_left(tmp_path, samestyle_cli):
    """A process that started the local stack's Milvus Lite server from a worker thread,
    with the kernel's die-with-parent signal disarmed (the server is normally forked by
    the long-lived launcher thread and dies with its owner), is SIGKILLed: its server
    lives on (adopted by init) holding the data dir's LOCK. While the owner lived, a
    reap left it alone; the next command on that data dir (an ingest into the embedded
    Milvus of the same folder) kills it first and works."""
    from samestyle.config import Settings
    from samestyle.serve.stack import log_dir
    from tests.fixtures.milvus import subprocess_env

    settings = Settings(data_dir=tmp_path / "data")
    env = subprocess_env(settings)
    owner = subprocess.Popen([sys.executable, "-c", _THREAD_OWNER, str(settings.data_dir)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    milvus = None
    try:
        line = owner.stdout.readline()
        assert line, owner.stderr.read()[-3000:]
        milvus, port = map(int, line.split())
        rec = reap.record_path(log_dir(settings), port, "milvus")
        assert json.loads(rec.read_text())["owner"] == owner.pid
        assert reap.reap(log_dir(settings))["killed"] == [] and _alive(milvus) and rec.exists()  # owner alive

        os.kill(owner.pid, signal.SIGKILL)
        assert owner.wait(30) == -signal.SIGKILL
        time.sleep(1)  # what the kernel does to a dead parent's children has happened by now
        assert _alive(milvus), "expected the owner's Milvus Lite server to outlive it"

        cat = tmp_path / "c.csv"
        cat.write_text("id,title,category\n" + "".join(f"m{i},Striped linen shirt {i},Shirts\n" for i in range(6)))
        again = subprocess.run([*samestyle_cli, "ingest", str(cat), "--encoder", "onnx", "--no-progress", "--json",
                                "--category-col", "category"], env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert json.loads(again.stdout)["complete"], again.stdout
        assert "1 processes" in again.stderr, again.stderr[-3000:]  # the reap said what it did
        assert not _alive(milvus), "the killed owner's Milvus Lite server outlived the next command"
        assert not rec.exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdout.close()
        owner.stderr.close()
        if milvus is not None and _alive(milvus):
            os.kill(milvus, signal.SIGKILL)  # never leave an orphan to other tests, even when failing

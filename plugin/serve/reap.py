"""What a SIGKILLed samestyle process leaves behind, found and removed by the next one.

A Triton started from a worker thread (ingest's lazy encoder) is not armed to die
with us (PR_SET_PDEATHSIG follows the forking thread), so a SIGKILLed ingest leaves
tritonserver, its python-backend stubs and their /dev/shm regions running. Each
server we start is therefore recorded in its run directory (the data dir's logs/):
its process group, its start time and the /dev/shm prefix it was given, with the
owning samestyle process and that process's start time. `reap(run_dir)`, called when
the next command starts, kills the group of every record whose owner is gone (only
processes of that group whose command line carries the record's prefix: a reused
pid is never touched), removes the regions with that prefix and the record.

The prefix is per data dir (a hash of the run directory) and per gRPC port, so a
command only ever removes regions of its own data dir's servers.

A Milvus Lite server (`python -m milvus_lite server`, serve.milvus) started from such
a thread is left the same way, holding its data's LOCK so that no later command can
open it. It is recorded in the same format (`milvus-<port>.pid.json`, kind "milvus"),
with the command line it was started with as what its process must carry, and no
shm prefix. Every record names its data dir (`home`) and its process's start time: a
record copied from another data dir, or whose group leader's pid now names another
process, is never acted on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)
SHM = Path("/dev/shm")
KINDS = ("triton", "milvus")  # record files are <kind>-<port>.pid.json


def log_dir(settings) -> Path:
    """Where the servers of `settings.data_dir` keep their logs and pid records."""
    return Path(settings.data_dir) / "logs"


def reap_stale(settings) -> dict:
    """Kill and remove what a SIGKILLed predecessor on this data dir left (its Triton,
    the python-backend stubs, their /dev/shm regions): every command that may start a
    server calls it first."""
    return reap(log_dir(settings))


def data_dir_token(run_dir: Path) -> str:
    """`samestyle_<8 hex>_`: the shm prefix every server of this run dir shares."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"samestyle_{digest}_"


def shm_prefix(run_dir: Path, grpc_port: int) -> str:
    """Name prefix of one server's python-backend regions (`shm-region-prefix-name`)."""
    return f"{data_dir_token(run_dir)}{grpc_port}_"


def record_path(run_dir: Path, port: int, kind: str = "triton") -> Path:
    return Path(run_dir) / f"{kind}-{port}.pid.json"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22),
    None when it does not exist or is a zombie: with the pid it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def group_members(pgid: int, token: str) -> list[int]:
    """Live processes in group `pgid` whose command line carries `token` (tritonserver
    has it in --backend-config, each stub in its region name)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid and token in _cmdline(int(d.name)):
            found.append(int(d.name))
    return found


def write_record(run_dir: Path, port: int, pid: int, *, kind: str = "triton", match: str | None = None) -> Path:
    """Record a server we just started (its pid leads its own process group). A Triton
    (kind "triton") is matched by its shm prefix; another kind by `match`, a string its
    command line carries (a Milvus Lite server's arguments)."""
    path = record_path(run_dir, port, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"kind": kind, "pgid": pid, "started": start_time(pid), "home": data_dir_token(run_dir), "port": port,
           "owner": os.getpid(), "owner_started": start_time(os.getpid())}
    if kind == "triton":
        rec["prefix"] = rec["match"] = shm_prefix(run_dir, port)
    else:
        if not match:
            raise ValueError(f"a {kind} record needs the string its command line carries (match=)")
        rec["match"] = match
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, path)
    return path


def remove_shm(prefix: str, root: Path = SHM) -> list[str]:
    removed = []
    for p in root.glob(prefix + "*"):
        p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def _holding_locks(pids: list[int]) -> bool:
    """Whether /proc/locks still lists a lock of one of `pids`: a killed process's files
    are closed (and a Milvus Lite server's LOCK freed) a moment after it is a zombie."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    want = {str(p) for p in pids}
    return any(len(f) > 4 and f[4] in want for f in ([w for w in ln.split() if w != "->"] for ln in lines))


def _owner_alive(rec: dict) -> bool:
    return rec.get("owner_started") is not None and start_time(rec["owner"]) == rec["owner_started"]


def _kill_group(pgid: int, token: str, started: int | None = None, wait_s: float = 10.0) -> list[int]:
    leader = start_time(pgid)
    if started is not None and leader is not None and leader != started:
        return []  # the leader's pid names another process now: not the group recorded
    pids = group_members(pgid, token)
    if not pids:
        return []
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return []
    deadline = time.monotonic() + wait_s  # not our children (init adopted them): wait until they are gone
    while (group_members(pgid, token) or _holding_locks(pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def reap(run_dir: Path, shm_root: Path = SHM) -> dict:
    """Kill and remove what servers of dead owners left in `run_dir`'s data dir.
    Returns {"killed": [pids], "shm": [region names]} (empty lists when nothing)."""
    run_dir = Path(run_dir)
    killed: list[int] = []
    removed: list[str] = []
    live_prefixes = []
    for path in sorted(p for kind in KINDS for p in run_dir.glob(f"{kind}-*.pid.json")):
        try:
            rec = json.loads(path.read_text())
            pgid, match = int(rec["pgid"]), str(rec.get("match") or rec["prefix"])
            home = str(rec.get("home") or rec["prefix"])  # records before `home`: the prefix starts with it
            started = None if rec.get("started") is None else int(rec["started"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # half-written or foreign: nothing to act on
            continue
        if not home.startswith(data_dir_token(run_dir)) or not match:
            path.unlink(missing_ok=True)  # copied from another data dir: never ours to kill
            continue
        if _owner_alive(rec):
            if rec.get("prefix"):
                live_prefixes.append(str(rec["prefix"]))  # its owner still runs: in use
            continue
        killed += _kill_group(pgid, match, started)
        path.unlink(missing_ok=True)
    # Regions of this data dir's servers that no live owner's record claims (the
    # server died too, or its record was lost), the killed ones' included.
    for p in shm_root.glob(data_dir_token(run_dir) + "*"):
        if not any(p.name.startswith(lp) for lp in live_prefixes):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    if killed or removed:
        log.warning("removed what a killed samestyle process left in %s: %d processes (%s), %d /dev/shm regions",
                    run_dir, len(killed), ", ".join(map(str, killed)) or "none", len(removed))
    return {"killed": killed, "shm": removed}

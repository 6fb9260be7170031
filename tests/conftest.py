"""Shared fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py; they are
all loaded here so any test can use any fixture."""

from __future__ import annotations

import os
import pkgutil
import threading
from pathlib import Path

import pytest

import tests.fixtures as _fx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules(_fx.__path__)]

ROOT = Path(__file__).resolve().parent.parent
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra"


@pytest.fixture(scope="session")
def myntra_dir() -> Path:
    if not (MYNTRA / "products.csv").exists():
        pytest.skip(f"Myntra catalogue not found at {MYNTRA} (it lives in ../shared/datasets/myntra)")
    return MYNTRA


# `make test-quick` runs `-m "not slow and not myntra"` and starts no server. Whatever
# starts one (tritonserver, a Milvus Lite gRPC server, Docker containers, Chromium) is
# slow by construction, so it is marked here from the fixtures and markers it uses rather
# than by hand; other long tests carry @pytest.mark.slow themselves. A quick run also
# watches this session's processes (below) and fails, with its name, any test during
# which a server process appeared anyway: started by the test itself or by a CLI
# subprocess it ran. Servers as threads of this process (embedded Milvus Lite, a
# uvicorn or http.server thread on 127.0.0.1) are not server processes.
SLOW_MARKERS = ("triton", "docker")
SLOW_FIXTURES = {"triton_server", "triton_url", "deployed_stack", "milvus_lite_server"}
WATCH_EVERY_S = 0.5  # a poll costs ~5 ms; a server lives seconds at least


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or any(
                item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


def server_kind(argv: list[str]) -> str | None:
    """Which server a process's argv starts, if any (pure). Read from the program and its
    first arguments only: a stand-in that merely carries a server's words later on its
    command line (as the reap tests' sleepers do) is not one."""
    if not argv:
        return None
    prog = os.path.basename(argv[0])
    if prog == "tritonserver":
        return "tritonserver"
    if argv[1:4] == ["-m", "milvus_lite", "server"]:
        return "a Milvus Lite gRPC server"
    if prog.startswith(("chrome", "chromium", "headless_shell")):
        return "Chromium"
    if prog in ("docker", "dockerd", "docker-compose", "containerd"):
        return "Docker"
    if prog == "samestyle":
        verb = argv[1:2]
    elif argv[1:3] == ["-m", "samestyle.cli.main"] or (argv[1:2] == ["-c"] and "samestyle.cli.main" in argv[2]):
        verb = argv[3:4]
    else:
        verb = []
    return "samestyle serve" if verb == ["serve"] and "--help" not in argv else None


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


class ServerWatch:
    """Polls the descendants of this pytest process and notes each server process seen
    (pid -> what, argv) against the test running at the time."""

    def __init__(self, kind=server_kind) -> None:
        self.kind = kind
        self.current: str | None = None
        self.seen: dict[int, tuple[str, str, str]] = {}  # pid -> (test, what, argv)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-watch", daemon=True)

    def start(self) -> "ServerWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def poll(self) -> None:
        kids = _children()
        todo = list(kids.get(os.getpid(), ()))
        while todo:
            pid = todo.pop()
            todo += kids.get(pid, ())
            if pid not in self.seen and (what := self.kind(argv := _argv(pid))):
                self.seen[pid] = (self.current or "(between tests)", what, " ".join(argv)[:300])

    def _run(self) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            self.poll()

    def during(self, nodeid: str) -> list[str]:
        return [f"{what} (pid {pid}): {argv}" for pid, (test, what, argv) in self.seen.items() if test == nodeid]


WATCH = pytest.StashKey[ServerWatch]()


def _quick_run(config) -> bool:
    return "not slow" in (config.getoption("markexpr", "") or "") and Path("/proc/self/stat").exists()


def pytest_configure(config):
    if _quick_run(config):
        config.stash[WATCH] = ServerWatch().start()


def pytest_unconfigure(config):
    if (watch := config.stash.get(WATCH, None)) is not None:
        watch.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    watch = item.config.stash.get(WATCH, None)
    if watch is not None:
        watch.current = item.nodeid
    yield
    if watch is not None:
        watch.current = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    watch = item.config.stash.get(WATCH, None)
    if watch is None or call.when != "teardown":
        return
    watch.poll()
    if started := watch.during(item.nodeid):
        report = outcome.get_result()
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} started a server in a quick run (-m 'not slow'):\n  "
                           + "\n  ".join(started)
                           + "\nfix: mark the test @pytest.mark.slow (or use a fixture in SLOW_FIXTURES, "
                             "which marks it), or test without the server")


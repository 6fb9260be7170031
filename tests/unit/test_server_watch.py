"""The quick run's guard (tests/conftest.py): which argv is a server, and the watcher
that finds such a process among this session's descendants, grandchildren included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ServerWatch, server_kind

CLI = [sys.executable, "-c", "from samestyle.cli.main import main; main()"]


@pytest.mark.parametrize("argv, kind", [
    (["/opt/x/tritonserver", "--model-repository", "r"], "tritonserver"),
    ([sys.executable, "-m", "milvus_lite", "server", "--port", "19530"], "a Milvus Lite gRPC server"),
    (["/usr/lib/chromium/chromium", "--headless"], "Chromium"),
    (["docker", "compose", "up"], "Docker"),
    ([*CLI, "serve", "--http-port", "8000"], "samestyle serve"),
    ([".venv/bin/samestyle", "serve"], "samestyle serve"),
    ([*CLI, "serve", "--help"], None),
    ([*CLI, "ingest", "c.csv"], None),
    ([sys.executable, "-m", "samestyle.cli.main", "serve"], "samestyle serve"),
    ([sys.executable, "-m", "pip", "wheel", "."], None),
    # stand-ins that carry a server's words later on (tests of serve.reap): not servers
    ([sys.executable, "-c", "import time; time.sleep(120)", "-m", "milvus_lite", "server", "--port", "1"], None),
    ([sys.executable, "-c", "import time; time.sleep(120)", "tritonserver", "serve"], None),
    ([], None),
])
def test_server_kind(argv, kind):
    assert server_kind(argv) == kind


GRANDCHILD = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
# the child spells the marker only in its grandchild's argv
CHILD = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {GRANDCHILD!r}, 'server-watch-' + 'probe'])"


def test_the_watch_finds_a_grandchild_and_names_the_test():
    watch = ServerWatch(kind=lambda argv: "probe" if "server-watch-probe" in argv else None)
    watch.current = "t::one"
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        watch.poll()
        os.kill(grandchild, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    found = watch.during("t::one")
    assert found == [f"probe (pid {grandchild}): {sys.executable} -c {GRANDCHILD} server-watch-probe"], found
    assert watch.during("t::two") == []

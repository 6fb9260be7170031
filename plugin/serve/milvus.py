"""A local Milvus Lite gRPC server (`python -m milvus_lite server`) on the data
directory, so several processes (the HTTP API, ingest, search) share one Milvus.

It serves the same folder the embedded client opens (`<data dir>/milvus.db` is a
directory of the same layout), so data ingested embedded is there when served, and
the other way round. Only one process may hold it at a time (a LOCK file).

Each server started is recorded in its log directory as serve.reap records a Triton
(`milvus-<port>.pid.json`: its process, the owner, the command line it carries), and
every start first reaps the servers there whose owner is gone: one started from a
thread that is not armed to die with its owner (PR_SET_PDEATHSIG follows the forking
thread) outlives a SIGKILLed owner and would hold the data's LOCK."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from ..errors import ServeError
from . import reap
from .process import LocalServer, ManagedProcess

log = logging.getLogger(__name__)


def milvus_command(data_dir: Path, port: int, python: str = sys.executable) -> list[str]:
    """argv of the server (pure). Bound to loopback: this is a dev/single-box stack."""
    return [python, "-m", "milvus_lite", "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--port", str(port)]


def command_mark(argv: list[str]) -> str:
    """What the server's /proc cmdline carries (its arguments, without the interpreter):
    how serve.reap tells our server from whatever else now has its pid (pure)."""
    return " ".join(argv[1:])


class MilvusServer(LocalServer):
    def __init__(self, data_dir: str | Path, *, log_dir: str | Path, port: int | None = None,
                 startup_timeout_s: float = 60.0):
        super().__init__(log_dir, port, startup_timeout_s)
        self.data_dir = Path(data_dir)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (benchmarks sample its memory)."""
        return self._proc.proc.pid if self.running else None

    def start(self) -> "MilvusServer":
        self._take_port("Milvus", "--milvus-port")
        reap.reap(self.log_dir)  # a SIGKILLed owner's server would hold the data's LOCK
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its "listening" line is the readiness signal
        argv = milvus_command(self.data_dir, self.port)
        self._launch(ManagedProcess("milvus-lite", argv, env, self.log_dir / f"milvus-{self.port}.log"),
                     lambda pid: reap.write_record(self.log_dir, self.port, pid, kind="milvus",
                                                   match=command_mark(argv)))
        log.info("Milvus Lite ready at %s (data %s)", self.uri, self.data_dir)
        return self

    def _probe(self) -> bool:
        # The server logs this line once its gRPC service is started; a bare TCP
        # connect can succeed a moment earlier.
        tail = self._proc.log_tail(20) if self._proc else ""
        # The log is appended to: only this start's lines count (after its "==== " header),
        # else a restart on the same port reads the last run's line and is "ready" early.
        if "listening on" not in tail.rsplit("\n==== ", 1)[-1]:
            return False
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def _exit_error(self, tail: str) -> ServeError:
        if "LOCK" in tail or "lock" in tail:
            return ServeError(f"Milvus data {self.data_dir} is held by another process", fix=(
                "stop the other samestyle process using it, or set SAMESTYLE_MILVUS_URI to its server; log:\n" + tail))
        if "in use" in tail:
            return ServeError(f"port {self.port} for Milvus is already in use", port=self.port,
                              fix="pass another --milvus-port")
        return ServeError(f"Milvus Lite exited while starting (log {self._proc.log_path if self._proc else '?'})",
                          fix=f"read the log; last lines:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
            reap.record_path(self.log_dir, self.port, "milvus").unlink(missing_ok=True)

"""`samestyle serve` keeps its children alive: a Triton or Milvus Lite server that
exits is started again on the same port (so every URL handed out stays right), at most
`max_restarts` times per child within RESTART_WINDOW_S. Past that, or when a restart
fails, `on_fatal(reason)` is called once and the supervisor stops: serve then exits
non-zero with that reason.

The supervisor thread lives until serve stops it, so the servers it restarts are
armed to die with it (PR_SET_PDEATHSIG follows the thread that forked; see
samestyle.serve.process.long_lived)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..errors import SamestyleError
from .process import long_lived

log = logging.getLogger(__name__)
PROGRESS = "samestyle.progress"
RESTART_WINDOW_S = 600.0
POLL_S = 1.0


class Supervisor(threading.Thread):
    def __init__(self, stack, on_fatal: Callable[[str], None], *, max_restarts: int = 3, poll_s: float = POLL_S):
        super().__init__(name="samestyle-supervisor", daemon=True)
        self.stack = stack
        self.on_fatal = on_fatal
        self.max_restarts = max_restarts
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.fatal: str | None = None
        self.restarts: dict[str, list[float]] = {}

    def children(self):
        return [(n, s) for n, s in (("Triton", self.stack.triton), ("Milvus", self.stack.milvus)) if s is not None]

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=300)  # a restart in progress finishes (or fails) first

    def run(self) -> None:
        with long_lived():
            while not self.stopping.wait(self.poll_s):
                for name, server in self.children():
                    if self.stopping.is_set() or server.running:
                        continue
                    reason = self._restart(name, server)
                    if reason is not None:
                        self.fatal = reason
                        logging.getLogger(PROGRESS).error("%s", reason)
                        self.on_fatal(reason)
                        return

    def _restart(self, name: str, server) -> str | None:
        """None when `server` runs again, else why it does not."""
        proc = server._proc
        code = proc.proc.returncode if proc is not None and proc.proc is not None else None
        tail = proc.log_tail(8) if proc is not None else ""
        where = f"(exit code {code}; log {proc.log_path if proc else '?'})"
        now = time.monotonic()
        recent = [t for t in self.restarts.get(name, []) if now - t < RESTART_WINDOW_S]
        if len(recent) >= self.max_restarts:
            why = ("restarts are off (--max-restarts 0)" if self.max_restarts == 0 else
                   f"it was restarted {len(recent)} times in the last {RESTART_WINDOW_S / 60:.0f} min")
            return f"{name} exited {where} and {why}; last log lines:\n{tail}"
        logging.getLogger(PROGRESS).warning("%s exited %s; restarting it", name, where)
        if proc is not None:
            proc.stop()  # reap it and whatever it left in its process group (python-backend stubs)
        server._proc = None
        self.restarts[name] = [*recent, now]
        try:
            server.start()
        except SamestyleError as exc:
            return f"{name} exited {where} and could not be restarted: {exc}" + (f" ({exc.fix})" if exc.fix else "")
        except Exception as exc:  # noqa: BLE001 - any failure to restart is fatal for serve
            return f"{name} exited {where} and could not be restarted: {type(exc).__name__}: {exc}"
        logging.getLogger(PROGRESS).warning("%s restarted (%d of %d restarts allowed per %.0f min)", name,
                                            len(self.restarts[name]), self.max_restarts, RESTART_WINDOW_S / 60)
        return None

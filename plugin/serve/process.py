"""A server child process that does not outlive us: its own process group (so stopping
it takes its children along, e.g. Triton's python-backend stubs), stopped at
interpreter exit if nobody stopped it, killed by the kernel if we die without exiting
(PR_SET_PDEATHSIG, armed in a thread that lives as long as the process: the main
thread, or our one launcher thread for servers started from any other); output to a
log file."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import functools
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from ..errors import ServeError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as the servers themselves set it: a port left in TIME_WAIT by
        # a server we just stopped is free to them, a listening one is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def check_port(port: int, what: str, option: str) -> None:
    """Fail early, naming the port and the option to change it."""
    if not port_is_free(port):
        raise ServeError(f"port {port} for {what} is already in use", port=port,
                         fix=f"pass another {option}, or stop the process listening on {port}")


try:  # resolved here, not in the child: dlopen after fork in a threaded parent can deadlock
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel for SIGTERM when our parent dies. Runs in the child: between
    fork and exec for a server, or as a worker pool's initializer. With `parent`
    (its pid), a child whose parent died before the signal was armed exits now."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


_LIVE: "weakref.WeakSet[ManagedProcess]" = weakref.WeakSet()
_LONG_LIVED: set[int] = set()  # idents of threads that live as long as what they start


@contextlib.contextmanager
def long_lived():
    """Within it, servers started by this thread are armed with PDEATHSIG as from the
    main thread: the caller promises the thread outlives them (serve's supervisor,
    which stops only when serve does)."""
    me = threading.get_ident()
    _LONG_LIVED.add(me)
    try:
        yield
    finally:
        _LONG_LIVED.discard(me)


class _Launcher:
    """One daemon thread, started on first use, that lives as long as the process and
    forks the servers other threads ask for: PDEATHSIG fires when the *thread* that
    forked exits, so a server forked by a short-lived worker (ingest's encoder thread)
    would either die with that thread or, unarmed, outlive a SIGKILLed owner."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as e:  # handed to the caller's thread
                    fut.set_exception(e)

    def call(self, fn: Callable):
        """fn() run in the launcher thread; its result (or its exception) here."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="samestyle-launcher", daemon=True)
                self._thread.start()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((fn, fut))
        return fut.result()


_LAUNCHER = _Launcher()
os.register_at_fork(after_in_child=_LAUNCHER.__init__)  # a forked child has no launcher thread

# A server's group guard: PDEATHSIG reaches only the group leader, and Triton's python
# stubs (its children, same group) outlive a leader that dies without stopping them.
# Armed like the server, the guard waits for the group to end; when the owner dies it
# gives the leader `grace` seconds to stop its children, then SIGKILLs the group.
_GUARD = """
import os, signal, sys, time
owner, group, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False
def gone():
    try:
        os.killpg(group, 0)
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
def owner_died(*_):
    deadline = time.monotonic() + grace
    while alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
    os._exit(0)
signal.signal(signal.SIGTERM, owner_died)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked until now: see _arm_guard
if os.getppid() != owner:
    owner_died()
while not gone():
    time.sleep(0.5)
"""


def _arm_guard() -> None:
    """The guard's preexec: SIGTERM blocked (the mask survives exec) until its handler is
    set, so an owner dying while the guard's interpreter starts is not missed."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    die_with_parent()


@atexit.register
def _stop_all() -> None:
    """A server nobody stopped (an encoder never closed) goes when we do."""
    for p in list(_LIVE):
        p.stop(timeout_s=5)


class ManagedProcess:
    """One server process. `start` returns at once; `wait_ready` polls a probe."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path, cwd: Path | None = None,
                 guard_s: float | None = None):
        """`guard_s`: also start a group guard (see _GUARD) giving the leader that long."""
        self.name, self.argv, self.env, self.log_path, self.cwd = name, argv, env, Path(log_path), cwd
        self.guard_s = guard_s
        self.proc: subprocess.Popen | None = None
        self.guard: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.argv)}\n".encode())
            out.flush()
            # PDEATHSIG fires when the *thread* that forked exits, so only a thread that
            # lives as long as the process may fork: the main thread, or the launcher.
            main = threading.current_thread() is threading.main_thread() or threading.get_ident() in _LONG_LIVED
            popen = functools.partial(subprocess.Popen, self.argv, env=self.env, cwd=self.cwd, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=functools.partial(die_with_parent, os.getpid()))
            self.proc = popen() if main else _LAUNCHER.call(popen)
            if self.guard_s is not None:
                guard = functools.partial(
                    subprocess.Popen, [sys.executable, "-S", "-c", _GUARD, str(os.getpid()), str(self.proc.pid),
                                       str(self.guard_s)], stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, preexec_fn=_arm_guard)
                try:
                    self.guard = guard() if main else _LAUNCHER.call(guard)
                except BaseException:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # never a server without its guard
                    self.proc.wait()
                    raise
        _LIVE.add(self)
        log.info("started %s (pid %d), log %s", self.name, self.proc.pid, self.log_path)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        keep = [ln for ln in text if "Timeout " not in ln and ln.strip() and not ln.startswith(("+", "|"))]
        return "\n".join(keep[-lines:])

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, on_exit: Callable[[str], ServeError]) -> None:
        """Poll `probe` until it says yes; if the process dies first, raise what
        `on_exit(log_tail)` builds; on timeout, stop it and raise."""
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        while time.monotonic() < deadline:
            if not self.running:
                raise on_exit(self.log_tail())
            try:
                if probe():
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        tail = self.log_tail()
        self.stop()
        raise ServeError(f"{self.name} was not ready after {timeout_s:.0f} s", log=str(self.log_path),
                         fix=f"see the log {self.log_path}; last lines:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL for the whole process group: no orphan either way."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout_s)
        try:
            os.killpg(pgid, signal.SIGKILL)  # whatever is left in its group (stubs)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self._end_guard()
        log.info("stopped %s (pid %d)", self.name, pgid)
        self.proc = None

    def _end_guard(self) -> None:
        if self.guard is not None:
            self.guard.kill()
            self.guard.wait()
            self.guard = None

    def kill(self) -> None:
        """SIGKILL the group at once (tests of crash recovery)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self._end_guard()
            self.proc = None


class LocalServer:
    """What the local servers (serve.milvus.MilvusServer, serve.triton.TritonServer) share:
    the port (a free one, or the one asked for, checked), the launch (the process started,
    recorded for serve.reap, ready when the subclass's `_probe` says so, its `_exit_error`
    when it exits first, stopped when it never gets ready) and use as a context manager.
    A subclass defines `start`, `stop`, `_probe` and `_exit_error`."""

    def __init__(self, log_dir: str | Path, port: int | None, startup_timeout_s: float):
        self.log_dir = Path(log_dir)  # its log and its serve.reap record
        self.port = port  # None: a free one, picked by `start`
        self.startup_timeout_s = startup_timeout_s
        self._proc: ManagedProcess | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    def _take_port(self, what: str, option: str) -> int:
        """A free port when none was asked for; else the one asked for, checked free (the
        ServeError of check_port names `what` and `option`)."""
        if self.port is None:
            self.port = free_port()
        else:
            check_port(self.port, what, option)
        return self.port

    def _launch(self, proc: ManagedProcess, record: Callable[[int], object]) -> None:
        """Start `proc`, `record` its pid, and wait until it is ready; stop it when it is not."""
        self._proc = proc
        proc.start()
        record(proc.proc.pid)
        try:
            proc.wait_ready(self._probe, self.startup_timeout_s, self._exit_error)
        except BaseException:
            self.stop()
            raise

    def __enter__(self):
        return self.start() if not self.running else self

    def __exit__(self, *exc) -> None:
        self.stop()

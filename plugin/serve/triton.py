"""A local tritonserver: the one shipped in the nvidia-pytriton wheel, run with the
serving environment (.venv-serve, numpy<2; see requirements/serve.txt).

How the pieces fit (found the hard way, kept here so nobody has to again):
- the python backend starts `triton_python_backend_stub` from the backend directory;
  the wheel ships it per Python version, so the 3.11 one is copied beside
  libtriton_python.so once (idempotent; `make setup` does the same);
- the stub embeds libpython, which finds its prefix by looking up `python3` on PATH and
  reading the pyvenv.cfg beside it; the stub ignores PYTHONPATH, so the serving env's
  bin directory goes first on PATH, or the models would import the system numpy 2 and
  get garbage STRING tensors;
- LD_LIBRARY_PATH needs the wheel's nvidia_pytriton.libs and libpython's directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ServeError
from ..triton_repo import missing_files
from . import reap
from .process import LocalServer, ManagedProcess

log = logging.getLogger(__name__)
EXIT_TIMEOUT_S = 5  # tritonserver waits this long for in-flight requests on SIGTERM


@dataclass(frozen=True)
class ServeEnv:
    python: Path  # the serving env's python, unresolved (its bin dir holds pyvenv.cfg's sibling)
    site_packages: Path
    libdir: Path  # where libpython3.X lives
    pytriton: Path
    py_version: str

    @property
    def server_dir(self) -> Path:
        return self.pytriton / "tritonserver"

    @property
    def tritonserver(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.server_dir / "backends"

    @property
    def libs(self) -> Path:
        return self.site_packages / "nvidia_pytriton.libs"


_PROBE = ("import json, os, sys, sysconfig, pytriton; print(json.dumps({'site': sysconfig.get_paths()['purelib'], "
          "'libdir': sysconfig.get_config_var('LIBDIR'), 'pytriton': os.path.dirname(pytriton.__file__), "
          "'version': '%d.%d' % sys.version_info[:2]}))")


@lru_cache(maxsize=4)
def serve_env(python: Path) -> ServeEnv:
    """Ask the serving python where things are (one short subprocess, cached)."""
    fix = ("create it: python3.11 -m venv .venv-serve && .venv-serve/bin/pip install -r requirements/serve.txt "
           "(or `make setup`), or point SAMESTYLE_SERVE_PYTHON at it")
    if not Path(python).exists():
        raise ServeError(f"serving python {python} not found", fix=fix)
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    except subprocess.CalledProcessError as exc:
        raise ServeError(f"serving python {python} cannot import pytriton: {exc.stderr.strip()[-300:]}", fix=fix) from None
    info = json.loads(out.stdout)
    env = ServeEnv(Path(python), Path(info["site"]), Path(info["libdir"]), Path(info["pytriton"]), info["version"])
    if not env.tritonserver.exists():
        raise ServeError(f"no tritonserver binary at {env.tritonserver}", fix="reinstall nvidia-pytriton in the serving env")
    return env


def ensure_stub(env: ServeEnv) -> Path:
    """Copy the python-backend stub for the serving Python beside libtriton_python.so."""
    dst = env.backends / "python" / "triton_python_backend_stub"
    src = env.server_dir / "python_backend_stubs" / env.py_version / "triton_python_backend_stub"
    if not dst.exists():
        if not src.exists():
            raise ServeError(f"nvidia-pytriton has no python backend stub for Python {env.py_version}",
                             fix="build .venv-serve with a Python the wheel supports (3.8-3.13)")
        tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
        log.info("installed the python backend stub %s", dst)
    return dst


def triton_command(env: ServeEnv, repo: Path, grpc_port: int, base_env: dict,
                   shm_prefix: str) -> tuple[list[str], dict]:
    """argv and environment of tritonserver (pure). gRPC only: the client, the
    statistics and the readiness probe all use it, so HTTP and metrics stay off."""
    argv = [
        str(env.tritonserver),
        # Our own prefix (per data dir and port), so regions a crashed server leaves can
        # be found and removed (serve.reap).
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        f"--model-repository={repo}",
        f"--backend-directory={env.backends}",
        "--model-control-mode=none",
        f"--grpc-port={grpc_port}",
        "--grpc-address=127.0.0.1",  # a local encoder server: never reachable from other machines
        "--allow-http=false",
        "--allow-metrics=false",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        "--log-verbose=0",
    ]
    e = dict(base_env)
    e["PATH"] = f"{env.python.parent}{os.pathsep}{e.get('PATH', '')}"
    libs = [str(env.libs), str(env.libdir)] + ([e["LD_LIBRARY_PATH"]] if e.get("LD_LIBRARY_PATH") else [])
    e["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    e["PYTHONPATH"] = str(env.site_packages)  # ignored by the stub today; harmless, and right if that changes
    e.pop("PYTHONHOME", None)
    return argv, e


class TritonServer(LocalServer):
    """A local tritonserver on `grpc_port` (free one if None), logging to
    `log_dir/triton-<port>.log` and recorded there (serve.reap: a killed owner's server
    is reaped by the next start). Use as a context manager, or start()/stop()."""

    def __init__(self, repo: str | Path, *, serve_python: str | Path, log_dir: str | Path,
                 grpc_port: int | None = None, startup_timeout_s: float = 180.0):
        super().__init__(log_dir, grpc_port, startup_timeout_s)
        self.repo = Path(repo).resolve()
        self.serve_python = Path(serve_python)

    @property
    def grpc_port(self) -> int | None:
        """Its one port (`port`): gRPC, as HTTP and metrics stay off."""
        return self.port

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"triton-{self.grpc_port}.log"

    @property
    def shm_prefix(self) -> str:
        return reap.shm_prefix(self.log_dir, self.grpc_port)

    def _forget(self) -> None:
        """After the group is gone: its regions and its record."""
        reap.remove_shm(self.shm_prefix)
        reap.record_path(self.log_dir, self.grpc_port).unlink(missing_ok=True)

    def check_repository(self) -> None:
        missing = missing_files(self.repo)
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ServeError(f"model repository {self.repo} is incomplete: missing {shown}", repository=str(self.repo),
                             fix=f"run `samestyle export --out {self.repo}`")

    def start(self) -> "TritonServer":
        self.check_repository()
        reap.reap(self.log_dir)  # what a SIGKILLed predecessor on this data dir left
        env = serve_env(self.serve_python)
        ensure_stub(env)
        self._take_port("Triton gRPC", "--triton-grpc-port")
        reap.remove_shm(self.shm_prefix)  # the port is free: a region with its prefix is a dead server's
        argv, e = triton_command(env, self.repo, self.grpc_port, os.environ, self.shm_prefix)
        # The guard SIGKILLs the group (the stubs) if a dead owner's Triton has not
        # stopped them in its exit timeout plus a margin.
        proc = ManagedProcess("tritonserver", argv, e, self.log_path, cwd=self.log_dir, guard_s=EXIT_TIMEOUT_S + 10)
        self._launch(proc, lambda pid: reap.write_record(self.log_dir, self.grpc_port, pid))
        log.info("Triton ready at %s (repository %s)", self.url, self.repo)
        return self

    def _probe(self) -> bool:
        import tritonclient.grpc as grpcclient

        with grpcclient.InferenceServerClient(self.url) as c:
            return c.is_server_ready(client_timeout=2)

    def _exit_error(self, tail: str) -> ServeError:
        if "already in use" in tail:
            return ServeError(f"port {self.grpc_port} for Triton gRPC is already in use", port=self.grpc_port,
                              fix="pass another --triton-grpc-port, or stop the process listening on it")
        return ServeError(f"tritonserver exited while starting (log {self.log_path})", log=str(self.log_path),
                          fix=f"read the log; last lines:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop(timeout_s=EXIT_TIMEOUT_S + 10)
            self._proc = None
            self._forget()

    def kill(self) -> None:
        """Crash it (SIGKILL to its process group), for recovery tests."""
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
            self._forget()

    def restart(self) -> "TritonServer":
        """Start again on the same port."""
        self.stop()
        return self.start()

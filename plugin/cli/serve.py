"""`samestyle serve`: the local stack (Triton, Milvus Lite, the HTTP API) until Ctrl-C."""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading

import click

from ..errors import ServeError
from .. import serve
from ..serve import advert
from ..serve.process import check_port
from ..serve.supervise import Supervisor
from .common import emit, json_option

log = logging.getLogger(__name__)


def _http_app(settings):
    """samestyle.http:create_app, when that module exists (imported lazily: it pulls in
    FastAPI and the query layer, which serving encoders alone does not need)."""
    if importlib.util.find_spec("samestyle.http") is None:
        log.warning("samestyle.http not found: serving Triton and Milvus without the HTTP API")
        return None
    from samestyle.http import create_app

    return create_app(settings)


def _wait_for_signal(supervisor) -> None:
    """Without the HTTP API: until Ctrl-C/SIGTERM, or the supervisor gives up."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0) and supervisor.fatal is None:
        pass


@click.command("serve")
@click.option("--triton-grpc-port", type=click.IntRange(1, 65535), default=None, envvar="SAMESTYLE_TRITON_GRPC_PORT",
              help="Port of the local Triton's gRPC endpoint. [default: a free port]")
@click.option("--milvus-port", type=click.IntRange(1, 65535), default=None, envvar="SAMESTYLE_MILVUS_PORT",
              help="Port of the local Milvus Lite server. [default: a free port]")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              envvar="SAMESTYLE_HTTP_PORT", help="Port of the HTTP API.")
@click.option("--http-host", default="127.0.0.1", show_default=True, envvar="SAMESTYLE_HTTP_HOST",
              help="Interface the HTTP API listens on.")
@click.option("--export/--no-export", default=True, show_default=True,
              help="Export the model into the Triton repository when it is missing or stale.")
@click.option("--max-restarts", type=click.IntRange(0, 100), default=3, show_default=True,
              envvar="SAMESTYLE_SERVE_MAX_RESTARTS",
              help="Times a Triton or Milvus child that exits is started again (per child, per 10 min) "
                   "before serve gives up and exits 1.")
@json_option
@click.pass_obj
def command(settings, triton_grpc_port, milvus_port, http_port, http_host, export, max_restarts, as_json):
    """Run the local stack until interrupted.

    Starts Triton (the tritonserver of nvidia-pytriton, with the serving environment)
    unless SAMESTYLE_TRITON_URL is set, and a Milvus Lite server on the data directory
    unless SAMESTYLE_MILVUS_URI is set, then the HTTP API. Other samestyle commands
    reach them through the printed SAMESTYLE_TRITON_URL and SAMESTYLE_MILVUS_URI.
    Logs go to <data dir>/logs.

    A Triton or Milvus Lite child that exits is started again on its port; past
    --max-restarts, or when that fails, serve stops and exits 1 saying why.
    """
    if importlib.util.find_spec("samestyle.http") is not None:
        check_port(http_port, "the HTTP API", "--http-port")  # before minutes of start-up, not after
    with serve.local_stack(settings, triton_grpc_port=triton_grpc_port, milvus_port=milvus_port,
                           export=export) as stack:
        info = stack.describe()
        app = _http_app(stack.settings)
        info["http_url"] = f"http://{http_host}:{http_port}" if app is not None else None

        def human(o):
            click.echo(f"Triton  {o['triton_url']}" + (f"  (log {o['triton_log']})" if o["triton_log"] else ""))
            click.echo(f"Milvus  {o['milvus_uri']}")
            if o["http_url"]:
                click.echo(f"HTTP    {o['http_url']}")
            click.echo(f"\nexport SAMESTYLE_TRITON_URL={o['triton_url']}")
            click.echo(f"export SAMESTYLE_MILVUS_URI={o['milvus_uri']}")
            click.echo("\nCtrl-C to stop.")

        emit(info, as_json, human)
        advert.write(settings.data_dir, info)  # other commands find this stack (removed at exit)
        uv = None

        def give_up(reason: str) -> None:
            if uv is not None:
                uv.should_exit = True  # uvicorn drains and returns; the stack is stopped below

        supervisor = Supervisor(stack, give_up, max_restarts=max_restarts)
        if app is None:
            supervisor.start()
            _wait_for_signal(supervisor)
        else:
            import uvicorn

            # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with
            # the handler it found installed. With the default SIGTERM handler that kills us
            # before the stack below is stopped (Triton and Milvus orphaned); with this one it
            # unwinds through local_stack's clean-up and exits 0, as Ctrl-C does.
            def _stop(signum, frame):
                raise SystemExit(0)

            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _stop)
            uv = uvicorn.Server(uvicorn.Config(app, host=http_host, port=http_port,
                                               log_level=settings.log_level.lower()))
            supervisor.start()
            try:
                uv.run()
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise
            finally:
                supervisor.stop()
        supervisor.stop()
        if supervisor.fatal is not None:
            raise ServeError(f"serve stopped: {supervisor.fatal}",
                             fix="read the child's log; --max-restarts sets how often serve restarts it")

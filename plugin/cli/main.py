"""`samestyle` command line. Each verb lives in its own module in this package and
exposes a click command named `command`; they are found here, so adding a verb is
adding a file. Settings are built here, at the edge, and handed down.

Fast by construction: `samestyle --help` reads the verbs' names and one-line help from
their source (no verb module is imported), and `samestyle VERB` imports that verb's
module alone; heavy libraries (torch, pymilvus, tritonclient) are imported inside the
commands that use them. Every command but `serve` first looks for a stack that
`samestyle serve` advertises in the data directory (samestyle.serve.advert) and uses
its Triton and Milvus instead of starting its own.

Errors never reach the terminal as a traceback: a SamestyleError is one line (or, with
--json, {"error": {...}} on stdout), exit 2 for the caller's input and 1 otherwise;
anything else is one line naming the log to read, exit 1; Ctrl-C exits 130."""

from __future__ import annotations

import ast
import importlib
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

import click

from .. import config as config_mod
from ..errors import SamestyleError, ConfigError
from ..output import set_progress
from ..serve import advert
from ..serve.reap import reap_stale

ENV_HELP = "\b\n" + "\n".join(f"{k:26s} {v}" for k, v in config_mod.ENV_VARS.items())
HERE = Path(__file__).resolve().parent
PROGRESS_LOGGER = "samestyle.progress"  # one-line notes for the user ("starting a local Triton ...")


def _json_mode() -> bool:
    return "--json" in sys.argv[1:]


def report_error(exc: SamestyleError, as_json: bool | None = None) -> int:
    """Print a SamestyleError for the user; the exit code it maps to."""
    code = 2 if exc.user_error else 1
    if _json_mode() if as_json is None else as_json:
        click.echo(json.dumps({"error": {**exc.to_dict(), "exit_code": code}}, default=str))
    else:
        click.secho(f"error: {exc}", fg="red", err=True)
    return code


def _report_crash(exc: BaseException) -> int:
    log_file = _crash_log(exc)
    where = f"; details in {log_file}" if log_file else ""
    msg = f"internal error: {type(exc).__name__}: {exc}"[:500]
    if _json_mode():
        click.echo(json.dumps({"error": {"code": "internal_error", "message": msg, "log": str(log_file or ""),
                                         "exit_code": 1}}))
    else:
        click.secho(f"error: {msg}{where} (please report it)", fg="red", err=True)
    return 1


def _crash_log(exc: BaseException) -> Path | None:
    """The traceback goes to a file in the temp dir (never into the data dir, which a
    read-only command must not create), or to the log at DEBUG level."""
    text = "".join(traceback.format_exception(exc))
    logging.getLogger(__name__).debug("%s", text)
    try:
        fd, name = tempfile.mkstemp(prefix="samestyle-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(" ".join(sys.argv) + "\n\n" + text)
        return Path(name)
    except OSError:
        return None


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(_summaries())

    def get_command(self, ctx, name):
        return _load(name)

    def format_commands(self, ctx, formatter):
        """The verb list from the modules' source: no verb is imported for --help."""
        rows = []
        limit = formatter.width - 6 - max((len(n) for n in _summaries()), default=0)
        for name, (_, short) in sorted(_summaries().items()):
            rows.append((name, click.utils.make_default_short_help(short, max(limit, 45))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def parse_args(self, ctx, args):
        ctx.meta["samestyle.json"] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SamestyleError as exc:
            ctx.exit(report_error(exc, ctx.meta.get("samestyle.json")))


def _summaries() -> dict[str, tuple[str, str]]:
    """{verb: (module, help)} read from the source of this package's modules."""
    global _SUMMARIES
    if _SUMMARIES is None:
        found = {}
        for path in sorted(HERE.glob("*.py")):
            name = path.stem
            if name in ("main", "common") or name.startswith("_"):
                continue
            info = _summary(path)
            if info is None:  # not readable statically: import it
                cmd = _import(name)
                if cmd is not None:
                    found[cmd.name] = (name, cmd.help or "")
            else:
                found[info[0]] = (name, info[1])
        _SUMMARIES = found
    return _SUMMARIES


_SUMMARIES: dict | None = None
_LOADED: dict[str, click.Command] = {}


def _summary(path: Path) -> tuple[str, str] | None:
    """(name, help) of the function `command` decorated with click.command("name") or
    click.group("name"), or None when the module does not have that shape."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name != "command":
            continue
        for dec in node.decorator_list:
            if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                    and dec.func.attr in ("command", "group") and dec.args
                    and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str)):
                doc = (ast.get_docstring(node, clean=True) or "").split("\f")[0]  # = click's cleandoc
                return dec.args[0].value, doc
    return None


def _import(module: str) -> click.Command | None:
    m = importlib.import_module(f"{__package__}.{module}")
    cmd = getattr(m, "command", None)
    return cmd if isinstance(cmd, click.Command) else None


def _load(name: str) -> click.Command | None:
    if name not in _LOADED:
        entry = _summaries().get(name)
        cmd = _import(entry[0]) if entry else None
        if cmd is None:
            return None
        _LOADED[name] = cmd
    return _LOADED[name]


def _commands() -> dict:
    """Every verb, imported: {name: click.Command}."""
    return {name: cmd for name in _summaries() if (cmd := _load(name)) is not None}


def _progress_logging() -> None:
    """Bare one-line notes (logger samestyle.progress) on stderr, whatever the log level."""
    log = logging.getLogger(PROGRESS_LOGGER)
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


# Verbs that only read the collection: they never create a data dir or a .db.
READ_ONLY = {"search", "collections", "dedup"}
# pymilvus logs every failed call at ERROR with a traceback, before raising the error
# the CLI reports in one line; its per-module loggers are quieted unless DEBUG.
_NOISY = ("pymilvus.decorators", "pymilvus.milvus_client.milvus_client", "pymilvus.client.grpc_handler",
          "pymilvus.orm.connections", "pymilvus.client.connection_manager", "milvus_lite")


def _db_locked(db: Path) -> bool:
    """True when another process holds Milvus Lite's lock on the .db folder (Linux:
    /proc/locks; this process's own lock, an open client here, does not count)."""
    lock = db / "LOCK"
    try:
        st = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    inode = f":{st.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].endswith(inode):
            dev = parts[5].rsplit(":", 1)[0]
            if int(dev.split(":")[1], 16) == os.minor(st.st_dev) and parts[4] != str(os.getpid()):
                return True
    return False


def preflight(settings, verb: str) -> None:
    """Fail early, in one line, where the embedded Milvus Lite cannot serve the verb:
    a read-only verb on a .db that does not exist (nothing is created), or a .db
    another process holds (a `samestyle serve` that advertises nothing, an ingest)."""
    uri = settings.resolved_milvus_uri
    if "://" in uri or not uri.endswith(".db"):
        return
    db = Path(uri)
    where = "SAMESTYLE_MILVUS_URI" if settings.milvus_uri else f"SAMESTYLE_DATA_DIR ({settings.data_dir})"
    if verb in READ_ONLY and not db.exists():
        raise ConfigError(f"there is no product data at [{db}] (from {where})",
                          fix="run `samestyle demo` or `samestyle ingest CATALOGUE` first, or point "
                              "SAMESTYLE_DATA_DIR / SAMESTYLE_MILVUS_URI at existing data")
    if db.is_dir() and _db_locked(db):
        # A Milvus Lite server whose samestyle owner was SIGKILLed may be what holds it
        # (serve.reap): removed here, and the LOCK checked again.
        if reap_stale(settings)["killed"] and not _db_locked(db):
            return
        raise ConfigError(f"[{db}] is in use by another process (a `samestyle serve` or an ingest)",
                          fix="let it finish, or use the Milvus a running serve prints "
                              "(export SAMESTYLE_MILVUS_URI=http://127.0.0.1:PORT)")


@click.group(cls=_Group, epilog=f"Environment variables:\n\n{ENV_HELP}", context_settings={"max_content_width": 110})
@click.version_option(package_name="samestyle")
@click.pass_context
def cli(ctx):
    """samestyle: same-style product retrieval over Milvus, with encoders on Triton.

    Start with `samestyle demo`, or `samestyle ingest CATALOGUE`, then
    `samestyle search --text "red dress"`.
    """
    settings = config_mod.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    _progress_logging()
    set_progress(settings.progress)
    if settings.log_level.upper() != "DEBUG":
        for name in _NOISY:  # `disabled` survives pymilvus' dictConfig at import (a level would not)
            logging.getLogger(name).disabled = True
    verb = ctx.invoked_subcommand
    if verb not in (None, "serve"):
        settings, found = advert.apply(settings)
        if found:
            logging.getLogger(__name__).info("using the stack `samestyle serve` (pid %s) advertises in %s",
                                             found.get("pid"), settings.data_dir)
        ctx.meta["samestyle.stack"] = found
        if "--help" not in sys.argv[1:] and "--help" not in ctx.args:
            preflight(settings, verb)
    ctx.obj = settings


def _interrupted() -> str:
    verb = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    if verb in ("ingest", "reindex"):
        return (f"interrupted: what was loaded is kept; run the same `samestyle {verb} ...` again and it resumes "
                "from its checkpoint (unchanged products are skipped)")
    return "interrupted"


def main() -> None:
    try:
        rv = cli.main(prog_name="samestyle", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo(_interrupted(), err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if _json_mode():
            click.echo(json.dumps({"error": {"code": "usage_error", "message": exc.format_message(),
                                             "exit_code": exc.exit_code}}))
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except SamestyleError as exc:
        sys.exit(report_error(exc))
    except Exception as exc:  # a bug: one line and a log, never a traceback on the terminal
        sys.exit(_report_crash(exc))
    # without standalone mode click returns ctx.exit()'s code (--help, --version, errors)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


if __name__ == "__main__":
    main()

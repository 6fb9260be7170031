"""`samestyle` command line. Each verb lives in its own module in this package and
exposes a click command named `command`; they are found here, so adding a verb is
adding a file. Settings are built here, at the edge, and handed down."""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import sys

import click

from .. import config as config_mod
from ..errors import SamestyleError

ENV_HELP = "\b\n" + "\n".join(f"{k:26s} {v}" for k, v in config_mod.ENV_VARS.items())


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(_commands())

    def get_command(self, ctx, name):
        return _commands().get(name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SamestyleError as exc:
            # One clean line (or JSON) for the user, not a traceback.
            if "--json" in sys.argv:
                click.echo(json.dumps({"error": exc.to_dict()}), err=True)
            else:
                click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2 if exc.user_error else 1)


_CACHE: dict | None = None


def _commands() -> dict:
    global _CACHE
    if _CACHE is None:
        found = {}
        pkg = importlib.import_module(__package__)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name in ("main", "common") or mod.name.startswith("_"):
                continue
            m = importlib.import_module(f"{__package__}.{mod.name}")
            cmd = getattr(m, "command", None)
            if isinstance(cmd, click.Command):
                found[cmd.name] = cmd
        _CACHE = found
    return _CACHE


@click.group(cls=_Group, epilog=f"Environment variables:\n\n{ENV_HELP}", context_settings={"max_content_width": 110})
@click.version_option(package_name="samestyle")
@click.pass_context
def cli(ctx):
    """samestyle: same-style product retrieval over Milvus, with encoders on Triton.

    Start with `samestyle ingest CATALOGUE`, then `samestyle search --text "red dress"`.
    """
    settings = config_mod.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = settings


def main() -> None:
    cli(prog_name="samestyle")


if __name__ == "__main__":
    main()

"""`samestyle bench <name>`: benchmarks. Each is a module plugin/bench/<name>.py (or a
package, plugin/bench/<name>/) with a click command named `command`, found here like the
verbs in samestyle.cli.main, so adding a benchmark is adding a file. Figures go to stdout
as JSON, not into tests."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import click

import samestyle.bench as pkg

log = logging.getLogger(__name__)
_CACHE: dict | None = None


def _benchmarks() -> dict:
    global _CACHE
    if _CACHE is None:
        found = {}
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name.startswith("_"):
                continue
            try:
                m = importlib.import_module(f"{pkg.__name__}.{mod.name}")
            except ImportError as exc:  # one broken benchmark must not hide the others
                log.warning("benchmark %s not available: %s", mod.name, exc)
                continue
            cmd = getattr(m, "command", None)
            if isinstance(cmd, click.Command):
                found[cmd.name] = cmd
        _CACHE = found
    return _CACHE


class _BenchGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(_benchmarks())

    def get_command(self, ctx, name):
        return _benchmarks().get(name)


@click.group("bench", cls=_BenchGroup)
def command():
    """Benchmarks; each prints its figures as JSON (--json) and can plot them (--plot).

    \b
    samestyle bench encode --json        # Triton vs in-process ONNX Runtime
    """


__all__ = ["command"]

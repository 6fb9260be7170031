"""How a job's report reaches a person or a program: JSON on stdout (`--json`) or a
human rendering, and whether progress bars are worth drawing. Used by the CLI verbs
(through samestyle.cli.common) and by the benchmarks, which are library jobs with a
click front of their own and import nothing from the CLI layer."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Iterable, Mapping

import click

from .config import PROGRESS_MODES

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


def emit(obj, as_json: bool, human=None) -> None:
    """JSON on stdout for machines, or a human rendering."""
    if as_json:
        click.echo(json.dumps(obj, indent=2, default=str))
    elif human is not None:
        human(obj)
    else:
        click.echo(json.dumps(obj, indent=2, default=str))


def echo_sections(report: Mapping, sections: Mapping[str, Callable[[Any], str | Iterable[str]]]) -> None:
    """Print the optional sections of a report, in `sections` order: for each key the
    report has a value for, the line (or lines) its function makes of that value."""
    for key, lines in sections.items():
        if report.get(key):
            out = lines(report[key])
            for line in [out] if isinstance(out, str) else out:
                click.echo(line)


# SAMESTYLE_PROGRESS (config.PROGRESS_MODES): how long work shows its progress on stderr.
# auto: a bar on a terminal, nothing otherwise; bar; lines: a plain line now and then, for the
# log of a background job; off. The CLI sets it once from the settings (set_progress);
# samestyle.bars draws it.
_progress = "auto"


def set_progress(mode: str) -> None:
    global _progress
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode [{mode}]: use one of {', '.join(PROGRESS_MODES)}")
    _progress = mode


def progress_mode() -> str:
    """bar, lines or off: the setting, with auto resolved against stderr."""
    if _progress == "auto":
        return "bar" if sys.stderr.isatty() else "off"
    return _progress


def progress_enabled() -> bool:
    """Progress shown at all: a bar for a person watching stderr, or lines for a log."""
    return progress_mode() != "off"

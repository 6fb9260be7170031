"""Benchmarks behind `samestyle bench <name>`: one module per benchmark, each exposing a
click command named `command` that the `bench` group in samestyle.cli.bench collects."""

import json
from pathlib import Path


def save_report(report: dict, out_path: Path | None) -> None:
    """Write a benchmark's JSON report to --out (parents made), when given."""
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2))

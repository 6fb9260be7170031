"""Benchmarks behind `samestyle bench <name>`: one module per benchmark, each exposing a
click command named `command` that the `bench` group in samestyle.cli.bench collects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import dataset
from ..model.manifest import read_manifest
from ..config import ROOT
from ..output import json_option

if TYPE_CHECKING:
    import numpy as np

DEFAULT_PHOTO_DIR = ROOT.parent / "shared" / "datasets" / "myntra"


def heldout_split(model_dir: Path | None, labels, heldout: float, split_seed: int) -> tuple[np.ndarray, str]:
    """Held-out mask: the model's own split when --model is given (as `samestyle eval`
    does), else --heldout / --split-seed."""
    if model_dir is not None:
        tr = read_manifest(model_dir).get("training", {})
        if "heldout" not in tr:
            raise click.UsageError(f"model {model_dir} records no held-out split; pass --heldout instead of --model")
        heldout, split_seed = tr["heldout"], tr.get("split_seed", 0)
    return dataset.heldout_groups(labels, heldout, split_seed), f"heldout {heldout}, seed {split_seed}"


def split_options(fn):
    """--label-col, --model, --heldout, --split-seed: which products train and which are
    queried, as `samestyle train` and `samestyle eval` split them (see `heldout_split`)."""
    for option in reversed((
            click.option("--label-col", required=True,
                         help="Same-style label column (queries: products of held-out labels)."),
            click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                         help="Take the held-out split from this model's manifest (as `samestyle eval` does)."),
            click.option("--heldout", type=float, default=0.27, show_default=True,
                         help="Held-out share of groups without --model (the shipped recipe's)."),
            click.option("--split-seed", type=int, default=0, show_default=True))):
        fn = option(fn)
    return fn


def save_report(report: dict, out_path: Path | None) -> None:
    """Write a benchmark's JSON report to --out (parents made), when given."""
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2))


def photo_base(photo_dir: Path | None) -> Path:
    """Where relative image_uri values are read from: --photo-dir, else DEFAULT_PHOTO_DIR
    when present, else the working directory."""
    return photo_dir or (DEFAULT_PHOTO_DIR if DEFAULT_PHOTO_DIR.is_dir() else Path("."))


# Options several benchmarks take, spelled once.
photo_dir_option = click.option(
    "--photo-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help=f"Base folder of relative image_uri values. [default: {DEFAULT_PHOTO_DIR} when present]")
collection_option = click.option("--collection", metavar="NAME", help="Collection or alias. [default: SAMESTYLE_COLLECTION]")
out_option = click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
                          help="Also write the JSON here.")


def plot_options(default_plot: Path):
    """--plot and --plot-file (default `default_plot`)."""
    plot = click.option("--plot", "do_plot", is_flag=True, help="Write a PNG plot to --plot-file.")
    plot_file = click.option("--plot-file", type=click.Path(dir_okay=False, path_type=Path), default=default_plot,
                             show_default=True)
    return lambda fn: plot(plot_file(fn))


def run_options(quick_help: str, default_plot: Path):
    """The options that end a measuring benchmark's command, in this order: --seed,
    --quick (`quick_help`), --plot / --plot-file, --out, --json; the command then
    receives the settings (click's obj) as its first argument."""
    stack = (click.option("--seed", type=int, default=0, show_default=True),
             click.option("--quick", is_flag=True, help=quick_help),
             plot_options(default_plot), out_option, json_option, click.pass_obj)

    def apply(fn):
        for option in reversed(stack):
            fn = option(fn)
        return fn
    return apply

"""`samestyle pairs`: positive pairs from click logs (and labelled groups)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import catalogue_columns, emit, json_option, progress_enabled


@click.group("pairs")
def command():
    """Mine same-style training pairs from click logs, or make a synthetic log."""


@command.command("mine")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clicks", "click_log", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Click log, CSV or JSONL: query_id, clicked_id, clicks[, dwell seconds].")
@catalogue_columns
@click.option("--label-col", help="Also emit pairs within these labelled groups (e.g. style_group).")
@click.option("--min-clicks", default=2, show_default=True, envvar="SAMESTYLE_PAIRS_MIN_CLICKS")
@click.option("--min-dwell", default=5.0, show_default=True, envvar="SAMESTYLE_PAIRS_MIN_DWELL",
              help="Mean dwell seconds (applied when the log has dwell).")
@click.option("--sim-floor", type=float, default=0.3, show_default=True, envvar="SAMESTYLE_PAIRS_SIM_FLOOR",
              help="Minimum similarity of the pretrained backbones (photo+title); negative disables.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV of pairs to write.")
@json_option
@click.pass_obj
def mine_cmd(settings, catalogue, click_log, id_col, title_col, image_col, category_col, attr_cols, label_col,
             min_clicks, min_dwell, sim_floor, out, as_json):
    """Keep click pairs that share a leaf category and pass the relevance
    thresholds; drop self and duplicate pairs; report what each rule removed."""
    from ..pairs import mine_catalogue

    columns = {"id_col": id_col, "title_col": title_col, "image_col": image_col, "category_col": category_col}
    result = mine_catalogue(catalogue, click_log, out, columns=columns, label_col=label_col, min_clicks=min_clicks,
                            min_dwell=min_dwell, sim_floor=sim_floor, cache_dir=settings.data_dir / "cache",
                            progress=progress_enabled())
    emit(result, as_json, lambda r: click.echo(
        f"read {r['read']} click rows, kept {r['kept']} pairs (+{r['label_pairs']} from labels) -> {r['out']}\n"
        + "removed: " + ", ".join(f"{k} {v}" for k, v in r["removed"].items())))


@command.command("synth")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@catalogue_columns
@click.option("--label-col", default="style_group", show_default=True)
@click.option("--noise", default=1.0, show_default=True, help="Noise rows per true pair.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Click log (.csv or .jsonl).")
@json_option
def synth_cmd(catalogue, id_col, title_col, image_col, category_col, attr_cols, label_col, noise, seed, out, as_json):
    """Write a noisy synthetic click log from labelled groups (for testing the miner)."""
    from ..pairs import write_synthetic_log

    columns = {"id_col": id_col, "title_col": title_col, "image_col": image_col, "category_col": category_col}
    result = write_synthetic_log(catalogue, out, columns=columns, label_col=label_col, noise=noise, seed=seed)
    emit(result, as_json,
         lambda r: click.echo(f"wrote {r['rows']} click rows ({r['true_pairs']} true pairs) -> {r['out']}"))

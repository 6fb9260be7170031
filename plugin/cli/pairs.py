"""`samestyle pairs`: positive pairs from click logs (and labelled groups)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import numpy as np

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
    from ..model import dataset, features
    from ..pairs import MinerConfig, group_pairs, mine, read_click_log

    data = dataset.read(catalogue, id_col=id_col, title_col=title_col, image_col=image_col,
                        category_col=category_col, label_col=label_col)
    category = dict(zip(data.ids, data.categories))
    similarity = None
    if sim_floor is not None and sim_floor >= 0:
        feats = features.for_catalogue(data, settings.data_dir / "cache", progress=progress_enabled())
        base = features.backbone_vectors(feats)
        joint = np.concatenate([base["image"], base["text"]], axis=1)
        joint /= np.maximum(np.linalg.norm(joint, axis=1, keepdims=True), 1e-12)
        index = {pid: i for i, pid in enumerate(data.ids)}

        def similarity(a, b):
            ia = np.array([index[x] for x in a])
            ib = np.array([index[x] for x in b])
            return (joint[ia] * joint[ib]).sum(1).tolist()

    cfg = MinerConfig(min_clicks=min_clicks, min_dwell=min_dwell, sim_floor=sim_floor if sim_floor >= 0 else None)
    pairs, report = mine(read_click_log(click_log), category, cfg, similarity)
    labelled = group_pairs(data.ids, data.labels) if label_col else []
    seen = set(pairs)
    extra = [p for p in labelled if p not in seen]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        for a, b in pairs:
            w.writerow([a, b, "clicks"])
        for a, b in extra:
            w.writerow([a, b, "label"])
    result = {**report.to_dict(), "label_pairs": len(extra), "written": len(pairs) + len(extra), "out": str(out)}
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
    from ..model import dataset
    from ..pairs import synthetic_click_log

    data = dataset.read(catalogue, id_col=id_col, title_col=title_col, image_col=image_col,
                        category_col=category_col, label_col=label_col)
    rows, truth = synthetic_click_log(data.ids, data.labels.tolist(), dict(zip(data.ids, data.categories)), seed, noise)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".jsonl", ".ndjson"):
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["query_id", "clicked_id", "clicks", "dwell"])
            w.writeheader()
            w.writerows(rows)
    emit({"rows": len(rows), "true_pairs": len(truth), "out": str(out)}, as_json,
         lambda r: click.echo(f"wrote {r['rows']} click rows ({r['true_pairs']} true pairs) -> {r['out']}"))

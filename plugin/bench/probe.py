"""`samestyle bench probe`: the photo <-> title ceiling of the frozen features
(samestyle.probe), on the same held-out queries as `samestyle eval`, beside a model's
own figures when --model is given. Reads the feature cache that training and eval
share ($SAMESTYLE_DATA_DIR/cache), computing it once when absent (about 15 min for
the 42k Myntra catalogue on 2 cores)."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import torch

from .. import dataset, probe
from .. import evaluate as ev
from ..model import features
from ..bars import progress_bar
from ..output import emit, json_option, progress_enabled
from . import heldout_split, out_option, save_report, split_options


def _render(r: dict) -> None:
    click.echo(f"probe ({r['config']['pool']} photo features, "
               f"{'linear' if not r['config']['hidden'] else 'hidden ' + str(r['config']['hidden'])} heads, "
               f"{r['config']['steps']} steps, {r['train_products']} training products, {r['seconds']} s) "
               f"on {r['queries']} held-out queries of {r['products']} products")
    for name, m in [*r["directions"].items(), *r["own_pair"].items()]:
        click.echo(f"  {name:<20} R@1 {m['r@1']:.3f}  R@10 {m['r@10']:.3f}")


@click.command("probe")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@split_options
@click.option("--steps", type=int, default=1500, show_default=True)
@click.option("--batch-size", type=int, default=512, show_default=True)
@click.option("--hidden", type=int, default=0, show_default=True, help="Hidden width of the heads (0: linear).")
@click.option("--pool", type=click.Choice(probe.POOLS), default="mean", show_default=True,
              help="Photo features: the mean of the backbone's tokens, or all of them side by side.")
@click.option("--limit", type=int, help="Only the first N products (quick runs).")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@out_option
@json_option
@click.pass_obj
def command(settings, catalogue, label_col, model_dir, heldout, split_seed, steps, batch_size, hidden, pool,
            limit, threads, seed, out_path, as_json):
    """How well a contrastive head on the FROZEN backbones aligns photos with titles:
    the ceiling a model's cross-modal figures can be read against."""
    torch.set_num_threads(threads)
    cfg = probe.ProbeConfig(steps=steps, batch_size=batch_size, hidden=hidden, pool=pool, seed=seed)
    data = dataset.read(catalogue, label_col=label_col, limit=limit)
    feats = features.for_catalogue(data, settings.data_dir / "cache", progress=progress_enabled())
    held, split = heldout_split(model_dir, data.labels, heldout, split_seed)
    train_idx = np.flatnonzero(~held & feats.has_image)
    queries = ev.label_queries(data.labels, np.flatnonzero(held), None, seed)
    if not len(queries):
        raise click.UsageError(f"no held-out product shares its [{label_col}] with another: nothing to query")
    bar = progress_bar(total=steps, desc="probe", unit="step")
    t0 = time.perf_counter()
    photo_v, title_v, history = probe.fit(probe.photo_inputs(feats.image_tokens, pool),
                                          probe.title_inputs(feats.text_tokens, feats.attention_mask),
                                          train_idx, cfg, on_step=bar.update)
    bar.close()
    r = probe.report(photo_v, title_v, feats.has_image, data.labels, queries, cfg, history)
    r.update(catalogue=str(catalogue), products=len(data), train_products=int(len(train_idx)), split=split,
             seconds=round(time.perf_counter() - t0, 1))
    save_report(r, out_path)
    emit(r, as_json, _render)

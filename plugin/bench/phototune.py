"""`samestyle bench photo-tune`: fine-tune the whole photo tower on CPU
(samestyle.phototune) and measure photo search with it, beside the raw ImageNet
backbone, on the same held-out queries and whole-catalogue gallery as `samestyle eval`.

Both towers are scored the way `samestyle eval` scores its raw-backbone line: each
photo through serving's preprocessing (`preprocess.decode_image`, 160 px), the global
average of the head map, L2-normalised; the tuned tower's projection head is scored
too. Writes the tuned backbone (`image_backbone.pth`) into --out-dir, where a rerun
resumes an interrupted training."""

from __future__ import annotations

import time
from dataclasses import asdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import torch

from .. import contract as C
from .. import dataset, phototune
from .. import evaluate as ev
from ..model import features
from ..model import preprocess as pp
from ..model.onnx import session
from ..bars import progress_bar
from ..output import emit, json_option
from . import heldout_split, out_option, save_report, split_options


def _read_all(paths: list[Path | None], fn, desc: str) -> tuple[list, np.ndarray, list[str]]:
    """fn(path) for every product with a photo, 4 threads; a photo that fails is
    reported by product row and reason, and counts as no photo."""
    out: list = [None] * len(paths)
    errors: list[str] = []

    def one(i):
        try:
            return i, fn(paths[i]), None
        except (OSError, pp.PreprocessError) as exc:
            return i, None, f"row {i} [{paths[i]}]: {exc}"

    todo = [i for i, p in enumerate(paths) if p is not None]
    with ThreadPoolExecutor(4) as ex:
        for i, val, err in progress_bar(ex.map(one, todo), total=len(todo), desc=desc, unit="photo"):
            out[i] = val
            if err:
                errors.append(err)
    has = np.array([v is not None for v in out], dtype=bool)
    return out, has, errors


def _line(r: dict) -> str:
    return f"R@1 {r['r@1']:.3f}  R@10 {r['r@10']:.3f}  MRR {r['mrr']:.3f}"


def _render(r: dict) -> None:
    c = r["config"]
    click.echo(f"photo tower fine-tuned on CPU: {c['steps']} steps x {c['batch_pairs']} pairs at {c['size']} px, "
               f"{r['train_products']} training photos, {r['train_groups']} groups; training {r['seconds']['train']} s")
    click.echo(f"i->i on {r['queries']} held-out queries, gallery {r['products']} products, served at {r['eval_size']} px:")
    for name, m in r["i2i"].items():
        click.echo(f"  {name:<24} {_line(m)}")
    for name, m in r.get("own_pair", {}).items():
        click.echo(f"  {name + ' (heads)':<24} {_line(m)}")
    for cat, lines in r["category_check"].items():
        click.echo(f"i->i inside {cat} (left out of training), {lines['queries']} queries:")
        for name, m in lines.items():
            if name != "queries":
                click.echo(f"  {name:<24} {_line(m)}")


def _own_pairs(tower, titles: np.ndarray, photo_heads: np.ndarray, candidates: np.ndarray, seed: int,
               n: int = 5000) -> dict:
    """Title -> own photo and back through the two heads, on up to `n` held-out products
    with a photo (as `samestyle eval --own-queries`), the whole catalogue as gallery."""
    with torch.no_grad():
        t = tower.embed_titles(torch.from_numpy(titles)).numpy()
    pool = candidates
    if n < len(pool):
        pool = np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))
    return {"title->own photo": ev.own_pair(t, photo_heads, pool), "photo->own title": ev.own_pair(photo_heads, t, pool)}


@click.command("photo-tune")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@split_options
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the tuned weights and the resumable training state go.")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--batch-pairs", type=int, default=48, show_default=True, help="Pairs per step (two photos each).")
@click.option("--size", type=int, default=128, show_default=True, help="Training input size, px (served: 160).")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Backbone learning rate.")
@click.option("--style-share", type=float, default=0.5, show_default=True,
              help="Share of each batch's pairs that are same-style pairs (the rest: one photo, two augmentations).")
@click.option("--w-title", type=float, default=0.0, show_default=True,
              help="Weight of the own photo <-> own title term (the frozen MiniLM title through a trained "
                   "linear map); 0 trains on photos alone. Scores title->own photo through the heads too.")
@click.option("--title-head", type=click.Choice(["shared", "apart"]), default="shared", show_default=True,
              help="The photo side of the own-title term: through the photo head (shared) or a projection of its "
                   "own (apart), so instance discrimination does not fight it. Needs --w-title.")
@click.option("--title-negatives", type=int, default=0, show_default=True,
              help="Extra random training titles per step as photo -> title negatives (cheap: titles are frozen "
                   "vectors). Needs --w-title.")
@click.option("--exclude", "excludes", multiple=True, metavar="COL=VALUE",
              help="Leave every product with this attribute value out of training (e.g. masterCategory=Footwear); "
                   "photo search inside it is then scored too, the generalisation check.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also score the raw ImageNet backbone (one more pass over every photo).")
@click.option("--limit", type=int, help="Only the first N products (quick runs).")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@out_option
@json_option
@click.pass_obj
def command(settings, catalogue, label_col, model_dir, heldout, split_seed, out_dir, steps, batch_pairs, size, lr,
            style_share, w_title, title_head, title_negatives, excludes, baseline, limit, threads, seed, out_path, as_json):
    """Fine-tune EVERY block of the photo tower on augmented photos (same-style pairs and
    two views of one photo), then score photo search on held-out style groups against
    the raw backbone. A long job: 1,000 steps took 44 minutes on 2 cores (docs/model.md, run 13).

    \b
    samestyle bench photo-tune ../shared/datasets/myntra/products.csv --label-col style_group \\
        --model plugin/model/default --out-dir build/runs/photo-tune --json
    """
    torch.set_num_threads(threads)
    cfg = phototune.TuneConfig(steps=steps, batch_pairs=batch_pairs, size=size, lr=lr, style_share=style_share,
                               seed=seed, w_title=w_title, title_head_apart=title_head == "apart",
                               title_negatives=title_negatives)
    data = dataset.read(catalogue, label_col=label_col, limit=limit)
    held, split = heldout_split(model_dir, data.labels, heldout, split_seed)
    rules = dataset.parse_rules(excludes)
    excluded = dataset.matching(catalogue, rules, len(data)) if rules else np.zeros(len(data), dtype=bool)
    consts = C.preprocess_constants(photo_input=cfg.photo_input)
    t0 = time.perf_counter()
    squares, has, errors = _read_all(data.photos, lambda p: phototune.read_photo(p, consts), "photos")
    photos = np.stack([s if s is not None else np.full((phototune.STORE_SIDE,) * 2 + (3,), 255, np.uint8)
                       for s in squares])
    train_idx = np.flatnonzero(~held & ~excluded & has)
    queries = ev.label_queries(data.labels, np.flatnonzero(held), None, seed)  # as `samestyle eval`
    if not len(queries):
        raise click.UsageError(f"no held-out product with a photo shares its [{label_col}] with another: "
                               "nothing to query")
    titles = None
    if w_title > 0:
        bar = progress_bar(total=len(data), desc="title vectors", unit="title")
        titles = features.title_vectors(data.titles, settings.data_dir / "cache", threads=threads, on_batch=bar.update)
        bar.close()
    t_load = time.perf_counter() - t0
    bar = progress_bar(total=steps, desc="photo-tune", unit="step")
    t0 = time.perf_counter()
    tower, history = phototune.train(photos, data.labels, train_idx, cfg, out_dir, on_step=bar.update, titles=titles)
    bar.close()
    t_train = time.perf_counter() - t0

    served = lambda idx: np.stack([pp.decode_image(Path(data.photos[i]).read_bytes(), consts) for i in idx])  # noqa: E731
    towers = {"tuned": tower}
    if baseline:
        towers = {"raw": phototune.PhotoTower(cfg), **towers}
    checks = {f"{c}={v}": ev.label_queries(data.labels, np.flatnonzero(dataset.matching(catalogue, [(c, v)], len(data))),
                                           None, seed) for c, v in rules}
    t0 = time.perf_counter()
    i2i, by_category = {}, {k: {"queries": int(len(q))} for k, q in checks.items()}
    for name, tw in towers.items():
        sess = session(phototune.pooled_onnx(tw, out_dir / f"pooled-{name}.onnx"), threads)
        bar = progress_bar(total=int(has.sum()), desc=f"encode {name}", unit="photo")
        heads = [tw.head] + ([tw.photo_title_head] if tw.photo_title_head is not None else [])
        pooled, head, *apart = phototune.encode(lambda x: sess.run(None, {"pixel_values": x})[0], heads, served,
                                                len(data), has, on_batch=bar.update)
        bar.close()
        i2i[f"{name} pooled"] = ev.table({"image": pooled}, data.labels, queries, ("i2i",))["i2i"]
        for k, q in checks.items():
            by_category[k][f"{name} pooled"] = ev.table({"image": pooled}, data.labels, q, ("i2i",))["i2i"]
        if name == "tuned":
            i2i["tuned projection head"] = ev.table({"image": head}, data.labels, queries, ("i2i",))["i2i"]
            if titles is not None:
                own = _own_pairs(tower, titles, apart[0] if apart else head, np.flatnonzero(held & has), seed)
    r = {"benchmark": "photo-tune", "catalogue": str(catalogue), "products": len(data),
         "photo_errors": errors[:20], "photo_error_count": len(errors), "split": split,
         "train_products": int(len(train_idx)), "train_groups": len(phototune.style_groups(data.labels, train_idx)),
         "queries": int(len(queries)), "eval_size": C.IMAGE_SIZE, "config": asdict(cfg),
         "loss": history, "out_dir": str(out_dir), "i2i": i2i, **({"own_pair": own} if titles is not None else {}),
         "excluded": [f"{c}={v}" for c, v in rules], "category_check": by_category,
         "seconds": {"load": round(t_load, 1), "train": round(t_train, 1),
                     "encode": round(time.perf_counter() - t0, 1)}}
    save_report(r, out_path)
    emit(r, as_json, _render)

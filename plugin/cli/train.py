"""`samestyle train`: fit the fusion encoder on a labelled catalogue (and mined pairs)."""

from __future__ import annotations

import csv
import hashlib
import shlex
import sys
import time
from pathlib import Path

import click
import numpy as np

from .. import contract as C
from .common import catalogue_columns, emit, json_option, progress_enabled


@click.command("train")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@catalogue_columns
@click.option("--label-col", default="style_group", show_default=True, help="Same-style group column (-1/empty = none).")
@click.option("--pairs", "pairs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra positive pairs (CSV id_a,id_b from `samestyle pairs mine`).")
@click.option("--heldout", default=0.25, show_default=True, help="Share of labelled groups held out of training for eval.")
@click.option("--split-seed", default=0, show_default=True)
@click.option("--steps", default=1500, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--lr", default=5e-4, show_default=True)
@click.option("--loss", type=click.Choice(["hinge", "infonce"]), default="hinge", show_default=True)
@click.option("--margin", default=0.2, show_default=True)
@click.option("--temperature", default=0.05, show_default=True, help="InfoNCE temperature.")
@click.option("--self-temperature", type=float,
              help="InfoNCE temperature of the self-distinctiveness term (default: --temperature).")
@click.option("--w-fused", default=1.0, show_default=True, help="Weight of the fused->fused pair term.")
@click.option("--w-text", default=1.0, show_default=True, help="Weight of the text->fused pair term.")
@click.option("--w-image", default=1.0, show_default=True, help="Weight of the image->fused pair term.")
@click.option("--w-self", default=1.0, show_default=True, help="Weight of the self-distinctiveness term.")
@click.option("--w-ii", default=0.0, show_default=True, help="Weight of the photo->partner's photo term.")
@click.option("--w-ti", default=0.0, show_default=True, help="Weight of the title->partner's photo term.")
@click.option("--w-mod", default=0.0, show_default=True,
              help="Weight of the modifier term: photo of a colourway + a colour phrase -> that colourway "
                   "(needs --colour-col).")
@click.option("--mod-target", type=click.Choice(["fused", "image"]), default="fused", show_default=True,
              help="The view the modifier query learns to find: the target colourway's fused view, or its photo "
                   "view (keeps the fused view colour-blind; photo+modifier searches then go to image_vec).")
@click.option("--mod-temperature", type=float,
              help="InfoNCE temperature of the modifier term (default: --self-temperature).")
@click.option("--w-local", default=0.1, show_default=True, help="Weight of the locality-consistency term.")
@click.option("--w-local-image", default=0.0, show_default=True,
              help="Weight of the photo-view locality term (keeps the ImageNet neighbourhoods).")
@click.option("--tail-lr", default=0.0, show_default=True,
              help="Learning rate of the photo tower's tail (EfficientNet-Lite0's last block + head); 0 = frozen.")
@click.option("--tail-from", default=C.IMAGE_TAIL_FROM, show_default=True, type=click.IntRange(11, 15),
              help="First MBConv block of the photo tower's trained tail; the blocks before it stay at ImageNet "
                   "(their activations are cached once per split). 11 trains the last 5 blocks, 15 only the last.")
@click.option("--photo-input", type=click.Choice(list(C.PHOTO_INPUTS)), default=C.PHOTO_INPUT, show_default=True,
              help="What the photo tower sees: the photo as it is, or its luminance (shape, the same in every "
                   "colourway) with a soft colour histogram of each region beside the features.")
@click.option("--image-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start the photo tower from these fine-tuned EfficientNet-Lite0 weights (the image_backbone.pth "
                   "`samestyle bench photo-tune` writes): its stem is frozen (and shipped in the checkpoint as "
                   "image_stem.safetensors), its tail trains on from there (needs --tail-lr).")
@click.option("--histogram-apart/--no-histogram-apart", default=False, show_default=True,
              help="With --photo-input grey-colour: the colour histogram channels of the photo tokens get their own "
                   "LayerNorm and projection in the fusion encoder instead of sharing one with the 1,280 others.")
@click.option("--colour-from-histogram/--no-colour-from-histogram", default=False, show_default=True,
              help="With --photo-input grey-colour and --colour-dims: colour split by construction. The fusion "
                   "encoder sees the grey features alone; the photo view's colour part is read straight from the "
                   "histograms by a small MLP (fused and title views keep the transformer's colour part). "
                   "An alternative to --histogram-apart.")
@click.option("--self-colour-negatives/--no-self-colour-negatives", default=False, show_default=True,
              help="Other colourways of a product's group are negatives in the self (own photo<->title) term.")
@click.option("--colour-col", help="Colour column (e.g. baseColour) for the modifier and colour terms.")
@click.option("--colour-dims", default=0, show_default=True,
              help="Keep colour apart: the vector's last N dimensions carry the colour (normalised on their own), "
                   "the rest the colour-blind style that the same-style terms train. 0 = one undivided vector.")
@click.option("--colour-weight", default=0.0, show_default=True,
              help="The colour part's share of the unit vector's norm, in (0, 1) with --colour-dims "
                   "(colour moves a score by at most 2 * weight^2).")
@click.option("--w-colour", default=0.0, show_default=True,
              help="Weight of the colour term: the colour part of every view (and of the modifier query) names "
                   "its colour (needs --colour-dims and --colour-col).")
@click.option("--exclude", "excludes", multiple=True, metavar="COL=VALUE",
              help="Leave every product with this attribute value out of training (e.g. masterCategory=Footwear, "
                   "to check generalisation to an unseen category). Repeatable.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Save the run's state in --out every 50 steps and continue from it when rerun.")
@click.option("--embed-dim", default=256, show_default=True, help="Output vector dimension.")
@click.option("--skip/--no-skip", default=True, show_default=True,
              help="Linear path from the pooled backbone features to the output, beside the transformer.")
@click.option("--image-lock/--no-image-lock", default=False, show_default=True,
              help="Do not learn the photo view: it is the backbone's pooled photo features through a fixed "
                   "orthonormal projection, so photo search keeps the pretrained neighbourhoods on any catalogue; "
                   "titles and photo+text queries learn to meet it. Needs --tail-lr 0.")
@click.option("--image-anchor", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="Anchor the photo view: its style part becomes (1 - A) x the learned view + A x the tower's own "
                   "pooled features through a fixed orthonormal projection, so part of photo search keeps the "
                   "tower's neighbourhoods on catalogues unlike the training one (0 = off).")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option("--limit", type=int, help="Read only the first N catalogue rows (quick runs).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Checkpoint folder to write.")
@json_option
@click.pass_obj
def command(settings, catalogue, id_col, title_col, image_col, category_col, attr_cols, label_col, pairs_file,
            heldout, split_seed, steps, batch_size, lr, loss, margin, temperature, self_temperature, w_fused,
            w_text, w_image, w_self, w_ii, w_ti, w_mod, mod_target, mod_temperature, w_local, w_local_image, tail_lr, tail_from, photo_input, image_weights, histogram_apart, colour_from_histogram, self_colour_negatives,
            colour_col, colour_dims, colour_weight, w_colour, excludes, resume, embed_dim, skip, image_lock, image_anchor, seed, threads, limit, out, as_json):
    """Train the fusion encoder and the photo tower's tail (on cached activations
    of the frozen stem) and write a versioned checkpoint (fusion.safetensors,
    image_tail.safetensors, manifest.json) to --out. The exact command of the
    shipped model is in its manifest and in `make train-default`."""
    from .. import dataset
    from ..model import checkpoint, features
    from ..model.backbones import ImageBackbone
    from ..pairs import group_pairs
    from ..train import TrainConfig, data_hash, train

    # the settings are checked before any work: caching the features can take minutes
    if histogram_apart and colour_from_histogram:
        raise click.UsageError("--histogram-apart and --colour-from-histogram are alternatives (the histogram "
                               "summed into the photo tokens, or kept out of them for the colour part): pick one")
    try:
        cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, loss=loss, margin=margin, temperature=temperature,
                          self_temperature=self_temperature, w_fused=w_fused, w_text=w_text, w_image=w_image,
                          w_self=w_self, w_ii=w_ii, w_ti=w_ti, w_mod=w_mod, mod_target=mod_target,
                          mod_temperature=mod_temperature, w_local=w_local,
                          w_local_image=w_local_image, tail_lr=tail_lr, tail_from=tail_from,
                          photo_input=photo_input, image_weights=str(image_weights) if image_weights else None,
                          self_colour_negatives=self_colour_negatives,
                          w_colour=w_colour, seed=seed, threads=threads,
                          fusion={"embed_dim": embed_dim, "skip": skip, "image_lock": image_lock,
                                  **({"image_anchor": image_anchor} if image_anchor else {}),
                                  **({"image_colour_channels": C.COLOUR_BINS}
                                     if histogram_apart or colour_from_histogram else {}),
                                  **({"colour_from_histogram": True} if colour_from_histogram else {}),
                                  **({"colour_dims": colour_dims, "colour_weight": colour_weight} if colour_dims else {})})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    rules = dataset.parse_rules(excludes)
    data = dataset.read(catalogue, id_col=id_col, title_col=title_col, image_col=image_col,
                        category_col=category_col, label_col=label_col, colour_col=colour_col, limit=limit)
    start = ImageBackbone(image_weights, tail_from=tail_from, photo_input=photo_input) if image_weights else None
    feats = features.for_catalogue(data, settings.data_dir / "cache", progress=progress_enabled(), backbone=start,
                                   tokens=tail_lr <= 0, tail_from=tail_from, photo_input=photo_input)
    held = dataset.heldout_groups(data.labels, heldout, split_seed)
    if rules:
        held = held | dataset.matching(catalogue, rules, len(data))
    train_idx = np.flatnonzero(~held)
    index = {pid: i for i, pid in enumerate(data.ids)}
    ids_train = [data.ids[i] for i in train_idx]
    pairs = group_pairs(ids_train, data.labels[train_idx])
    if pairs_file:
        with pairs_file.open() as f:
            for r in csv.reader(f):
                if len(r) >= 2 and r[0] in index and r[1] in index and not held[index[r[0]]] and not held[index[r[1]]]:
                    pairs.append((r[0], r[1]))
    pair_idx = np.array([(index[a], index[b]) for a, b in pairs], dtype=np.int64).reshape(-1, 2)
    cat_sha = hashlib.sha256(catalogue.read_bytes()).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / ".train-state.pt" if resume else None
    t0 = time.time()
    model, tail, history = train(feats, data.labels, train_idx, pair_idx, cfg, progress=progress_enabled(),
                                 colours=data.colours, state_file=state_file, cache_dir=settings.data_dir / "cache")
    manifest = checkpoint.save(out, model, image_tail=tail.tail_state() if tail is not None else None,
                               image_stem=tail.stem_state() if tail is not None and tail.stem_tuned else None,
                               tail_from=cfg.tail_from, photo_input=cfg.photo_input, training={
        "command": "samestyle train " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        "catalogue": catalogue.name,
        "catalogue_sha256": cat_sha,
        "data_sha256": data_hash(cat_sha, pair_idx, train_idx),
        "label_col": label_col,
        "heldout": heldout,
        "split_seed": split_seed,
        "excluded": [f"{c}={v}" for c, v in rules],
        "colour_col": colour_col,
        **({"image_weights": {"path": str(image_weights), "sha256": hashlib.sha256(image_weights.read_bytes()).hexdigest()}}
           if image_weights else {}),
        "train_seconds_this_run": round(time.time() - t0, 1),
        "train_products": int(len(train_idx)),
        "train_pairs": int(len(pair_idx)),
        "config": cfg.to_dict(),
        "history": history[-3:],
    })
    result = {"model_version": manifest["model_version"], "out": str(out), "train_products": int(len(train_idx)),
              "train_pairs": int(len(pair_idx)), "final": history[-1] if history else None}
    if state_file is not None and state_file.exists():
        state_file.unlink()  # the checkpoint is written; a rerun starts afresh
    emit(result, as_json, lambda r: click.echo(
        f"wrote {r['out']} ({r['model_version']}): {r['train_products']} products, {r['train_pairs']} pairs, "
        f"final loss {r['final']['loss'] if r['final'] else 'n/a'}"))

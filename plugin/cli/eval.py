"""`samestyle eval`: the paper's retrieval table on a labelled catalogue."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from pathlib import Path

import click
import numpy as np

from .. import serve
from ..bars import progress_bar
from ..bench import out_option, save_report
from ..query import requests as R
from .common import catalogue_columns, emit, json_option, progress_enabled


def _encode_all(encoder, data, progress: bool) -> dict[str, np.ndarray]:
    """Views of every product through a served/in-process encoder, in batches."""
    from ..encoders.base import ProductInput

    n = len(data)
    out = {v: np.zeros((n, encoder.dim), dtype=np.float32) for v in ("image", "text", "fused")}
    bar = progress_bar(total=n, desc="encode", unit="product", enabled=progress)
    bs = 64
    for s in range(0, n, bs):
        items = []
        for i in range(s, min(n, s + bs)):
            p = data.photos[i]
            img = p.read_bytes() if p is not None and p.exists() else None
            items.append(ProductInput(data.ids[i], img, data.titles[i]))
        enc = encoder.encode_batch(items)
        for v in out:
            out[v][s : s + len(items)] = enc.view(v)
        bar.update(len(items))
    bar.close()
    return out


def _render(r: dict) -> None:
    click.echo(f"model {r['model_version']} on {r['catalogue']} ({r['products']} products, "
               f"{r['queries']} same-style queries, encoder {r['encoder']})")
    cols = ["mrr", "r@1", "r@5", "r@10", "r@20"]
    click.echo(f"{'direction':<22}" + "".join(f"{c:>8}" for c in cols))
    rows = [(k, v) for k, v in r["directions"].items()]
    rows += [(f"baseline {k}", v) for k, v in r["baselines"].items()]
    rows += [(k, v) for k, v in r["own_pair"].items()]
    for name, m in rows:
        click.echo(f"{name:<22}" + "".join(f"{(m[c] if m[c] is not None else float('nan')):>8.3f}" for c in cols))
    if r.get("with_colour"):
        w = r["with_colour"]
        click.echo("with the query's colour at full weight (--colour 1):")
        for name, m in [*w["directions"].items(), ("title->own photo", w["title->own photo"]),
                        ("photo->own title", w["photo->own title"])]:
            click.echo(f"  {name:<20}" + "".join(f"{(m[c] if m[c] is not None else float('nan')):>8.3f}" for c in cols))
    if r.get("modifier"):
        click.echo(f"modifier queries ({r['modifier']['queries']}): the group's product of the asked colour")
        for name, m in r["modifier"].items():
            if isinstance(m, dict):
                click.echo(f"  {name:<40} hit@1 {m['hit@1']:.3f}  hit@10 {m['hit@10']:.3f}")
    for name, c in (r.get("category_check") or {}).items():
        click.echo(f"category {name} ({c['products']} products): i->i R@1 {c['i2i']['r@1']} "
                   f"(raw backbone {c['i2i raw backbone']['r@1']}), R@10 {c['i2i']['r@10']} "
                   f"(raw {c['i2i raw backbone']['r@10']})")


@click.command("eval")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@catalogue_columns
@click.option("--label-col", required=True, help="Same-style label column (e.g. style_group; -1/empty = none).")
@click.option("--queries", "n_queries", type=int, help="Sample this many same-style queries (default: all).")
@click.option("--own-queries", type=int, default=5000, show_default=True,
              help="Products sampled for title->own-photo and photo->own-title.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Checkpoint folder (default: SAMESTYLE_MODEL or the shipped model).")
@click.option("--encoder", type=click.Choice(["triton", "onnx", "local"]), default="triton", show_default=True,
              help="triton: through the Triton server (started locally when SAMESTYLE_TRITON_URL is unset); "
                   "onnx: in-process ONNX Runtime; local: cached backbone features + torch fusion (fastest).")
@click.option("--all-groups", is_flag=True,
              help="Query every labelled group, not only the groups the model held out of training.")
@click.option("--colour-col", help="Colour column (e.g. baseColour): adds the modifier direction, photo of one "
                                   "colourway + a colour word -> the group's product of that colour (hit@10).")
@click.option("--modifier-queries", type=int, default=3000, show_default=True,
              help="Photo+colour queries sampled for the modifier direction.")
@click.option("--category-check", "category_checks", multiple=True, metavar="COL=VALUE",
              help="Photo search (i->i) on the products with this attribute value, beside the raw backbone "
                   "(default: the values the model was trained without, from its manifest). Repeatable.")
@click.option("--limit", type=int, help="Read only the first N catalogue rows.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="torch CPU threads (--encoder local).")
@out_option
@json_option
@click.pass_obj
def command(settings, catalogue, id_col, title_col, image_col, category_col, attr_cols, label_col, n_queries,
            own_queries, model_dir, encoder, all_groups, colour_col, modifier_queries, category_checks, limit, seed,
            threads, out_path, as_json):
    """Retrieval table: i->i, i->t, i->m, t->i, t->t, t->m, m->m (query view ->
    gallery field) with MRR and R@1/5/10/20 over the whole catalogue, the query
    product excluded; title->own-photo and photo->own-title; and the raw
    backbones (photo features alone, MiniLM alone) side by side.

    Queries come from the style groups the model held out of training (recorded
    in its manifest), unless --all-groups."""
    from .. import evaluate as ev
    from .. import dataset
    from ..model import checkpoint, features
    import torch

    torch.set_num_threads(threads)
    model_dir = model_dir or settings.model_dir
    fusion, manifest = checkpoint.load(model_dir)
    data = dataset.read(catalogue, id_col=id_col, title_col=title_col, image_col=image_col,
                        category_col=category_col, label_col=label_col, colour_col=colour_col, limit=limit)
    feats = features.for_catalogue(data, settings.data_dir / "cache", progress=progress_enabled(),
                                   backbone=checkpoint.image_backbone(model_dir, manifest)
                                   if encoder == "local" and manifest.get("image_tail") else None,
                                   tail_from=checkpoint.tail_from_block(manifest),
                                   photo_input=checkpoint.photo_input(manifest))
    tr = manifest.get("training", {})
    same_data = tr.get("catalogue_sha256") and tr.get("label_col") == label_col
    if same_data and not all_groups:
        same_data = hashlib.sha256(catalogue.read_bytes()).hexdigest() == tr["catalogue_sha256"]
    if same_data and not all_groups:
        held = dataset.heldout_groups(data.labels, tr["heldout"], tr.get("split_seed", 0))
        candidates, split = np.flatnonzero(held), "held-out groups"
    else:
        candidates, split = np.arange(len(data)), "all groups"
    queries = ev.label_queries(data.labels, candidates, n_queries, seed)
    mods = []
    if colour_col:
        mods = ev.modifier_queries(data.labels, data.colours, candidates, feats.has_image, modifier_queries, seed)
    mod_views = {}
    if encoder == "local":
        views = features.fused_views(fusion, feats)
        if mods:
            mod_views = _modifier_local(fusion, feats, mods)
    else:
        if encoder == "onnx":
            from ..encoders.onnx import OnnxEncoder
            from ..export import ensure_onnx

            ctx = nullcontext(OnnxEncoder(ensure_onnx(model_dir)))
        else:
            ctx = serve.encoder_for(settings.with_(model_dir=model_dir))
        with ctx as enc:
            views = _encode_all(enc, data, progress_enabled())
            if mods:
                mod_views = _modifier_encoded(enc, data, mods)
    # As served: each search type sends its query with the colour part scaled by its
    # default (a model that keeps colour apart; samestyle.query.requests.DEFAULT_COLOUR).
    colour_dims = int(manifest["fusion"].get("colour_dims", 0))
    q_views = {"image": R.with_colour(views["image"], colour_dims, R.DEFAULT_COLOUR["photo"]),
               "text": R.with_colour(views["text"], colour_dims, R.DEFAULT_COLOUR["text"]),
               "fused": R.with_colour(views["fused"], colour_dims, R.DEFAULT_COLOUR["product"])}
    mod_views = {k: R.with_colour(v, colour_dims, R.DEFAULT_COLOUR["photo_text"]) for k, v in mod_views.items()}
    # the raw-backbone baselines: the untrained ImageNet tail over the same cached stem
    # (over ImageNet's own stem when the model's was fine-tuned: the baseline stays the raw backbone)
    if feats.stem_digest is not None:
        feats = features.for_catalogue(data, settings.data_dir / "cache", progress=progress_enabled(),
                                       tail_from=checkpoint.tail_from_block(manifest),
                                       photo_input=checkpoint.photo_input(manifest))
    else:
        feats.image_tokens = features.imagenet_tokens(feats, settings.data_dir / "cache")
    base = features.backbone_vectors(feats)
    pool = ev.own_pair_queries(feats.has_image, data.titles, candidates, own_queries, seed)
    rel = ev.same_label_index(data.labels)
    result = {
        "model_version": manifest["model_version"],
        "catalogue": str(catalogue),
        "products": len(data),
        "label_col": label_col,
        "query_split": split,
        "queries": int(len(queries)),
        "encoder": encoder,
        "query_colour": {"colour_dims": colour_dims, **R.DEFAULT_COLOUR} if colour_dims else None,
        "directions": ev.table(views, data.labels, queries, query_views=q_views),
        "baselines": {
            "i2i (EfficientNet-Lite0)": ev.metrics(ev.first_relevant_ranks(base["image"][queries], base["image"], queries, rel)),
            "t2t (MiniLM)": ev.metrics(ev.first_relevant_ranks(base["text"][queries], base["text"], queries, rel)),
        },
        "own_pair": {
            "title->own photo": ev.own_pair(q_views["text"], views["image"], pool),
            "photo->own title": ev.own_pair(q_views["image"], views["text"], pool),
        },
    }
    if colour_dims:
        # the same directions with the query's colour at full weight (SearchOptions.colour = 1)
        result["with_colour"] = {
            "directions": ev.table(views, data.labels, queries, directions=("i2i", "t2i", "i2t", "t2t", "m2m")),
            "title->own photo": ev.own_pair(views["text"], views["image"], pool),
            "photo->own title": ev.own_pair(views["image"], views["text"], pool),
        }
    if mods:
        rel_mod = [r for _, _, r in mods]
        own = np.array([a for a, _, _ in mods], dtype=np.int64)
        result["modifier"] = {
            "queries": len(mods),
            "photo + colour word": ev.hits(mod_views["word"], views["fused"], rel_mod, own),
            "photo + 'but in <colour>'": ev.hits(mod_views["but"], views["fused"], rel_mod, own),
            "photo alone": ev.hits(q_views["image"][own], views["fused"], rel_mod, own),
            # the same queries against the photo view (image_vec): where a model trained
            # with --mod-target image puts the colourway
            "photo + colour word -> image_vec": ev.hits(mod_views["word"], views["image"], rel_mod, own),
            "photo + 'but in <colour>' -> image_vec": ev.hits(mod_views["but"], views["image"], rel_mod, own),
            "photo alone -> image_vec": ev.hits(q_views["image"][own], views["image"], rel_mod, own),
        }
    checks = [c.partition("=")[::2] for c in category_checks] or [
        c.partition("=")[::2] for c in manifest.get("training", {}).get("excluded", [])]
    if checks:
        result["category_check"] = _category_checks(catalogue, checks, data, views, q_views, base, seed)
    save_report(result, out_path)
    emit(result, as_json, _render)


def _modifier_local(fusion, feats, mods) -> dict[str, np.ndarray]:
    """Photo + colour phrase query vectors with the torch fusion encoder."""
    import torch

    from ..train import Phrases

    colours = sorted({c for _, c, _ in mods})
    ph = Phrases(colours)
    out = {}
    for name, template in (("word", 0), ("but", 2)):
        vecs = []
        with torch.no_grad():
            for s in range(0, len(mods), 512):
                chunk = mods[s : s + 512]
                a = np.array([m[0] for m in chunk])
                rows = torch.tensor([ph.colour_index[m[1]] * ph.n_templates + template for m in chunk])
                it = torch.from_numpy(feats.image_tokens[a].astype(np.float32))
                im = torch.ones(len(a), it.shape[1], dtype=torch.long)
                vecs.append(fusion(it, im, ph.tokens[rows], ph.mask[rows]).numpy())
        out[name] = np.concatenate(vecs)
    return out


def _modifier_encoded(enc, data, mods) -> dict[str, np.ndarray]:
    """The same queries through a served/in-process encoder (photo bytes + text)."""
    from ..encoders.base import ProductInput
    from ..train import MODIFIER_TEMPLATES

    out = {}
    for name, template in (("word", 0), ("but", 2)):
        vecs = []
        for s in range(0, len(mods), 64):
            items = [ProductInput(data.ids[a], data.photos[a].read_bytes(),
                                  MODIFIER_TEMPLATES[template].format(c=c.lower())) for a, c, _ in mods[s : s + 64]]
            vecs.append(enc.encode_batch(items).view("fused"))
        out[name] = np.concatenate(vecs)
    return out


def _category_checks(catalogue, checks, data, views, q_views, base, seed) -> dict:
    """i->i on the same-style queries inside a category (whole catalogue as gallery),
    the model's photo view beside the raw backbone's."""
    from .. import evaluate as ev
    from .. import dataset

    out = {}
    for col, val in checks:
        inside = np.flatnonzero(dataset.matching(catalogue, [(col, val)], len(data)))
        q = ev.label_queries(data.labels, inside, None, seed)
        rel = ev.same_label_index(data.labels)
        out[f"{col}={val}"] = {
            "products": int(len(inside)),
            "i2i": ev.metrics(ev.first_relevant_ranks(q_views["image"][q], views["image"], q, rel)),
            "i2i raw backbone": ev.metrics(ev.first_relevant_ranks(base["image"][q], base["image"], q, rel)),
        }
    return out

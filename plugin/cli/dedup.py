"""`samestyle dedup`: near-duplicate listings in the collection, as JSONL clusters."""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path

import click

from .. import contract as C
from ..bars import progress_bar
from ..errors import InputError
from .common import emit, json_option


def _read_labels(path: Path, id_col: str, label_col: str) -> dict[str, str]:
    """id -> label from a CSV or JSONL catalogue (for labels not stored in Milvus)."""
    out: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            rows = (json.loads(line) for line in f if line.strip())
        else:
            rows = csv.DictReader(f)
        for n, row in enumerate(rows, 1):
            if id_col not in row or label_col not in row:
                raise InputError(f"{path}: record {n} has no [{id_col}] or [{label_col}] column", record=str(n),
                                 field=label_col if id_col in row else id_col,
                                 fix="pass --id-col / --label-col naming the catalogue's columns")
            out[str(row[id_col])] = row[label_col]
    return out


def _floats(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--sweep [{text}] is not a list of numbers", field="sweep", fix="e.g. --sweep 0.9,0.95") from None
    if any(not -1 <= v <= 1 for v in vals):
        raise InputError(f"--sweep values must be scores in -1..1, got {vals}", field="sweep")
    return vals


DEFAULT_THRESHOLD = C.DEDUP_THRESHOLD


@click.command("dedup")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=DEFAULT_THRESHOLD, show_default=True,
              envvar="SAMESTYLE_DEDUP_THRESHOLD",
              help="Link two products of one category at this score or above (photo+title: "
                   f"{C.DEDUP_IMAGE_WEIGHT:g} x photo + {1 - C.DEDUP_IMAGE_WEIGHT:g} x title overlap, the photo "
                   f"{1 - C.DEDUP_HASH_WEIGHT:g} x image cosine + {C.DEDUP_HASH_WEIGHT:g} x photo-signature "
                   "similarity where both have one, the cosine alone otherwise; "
                   "a vector field: its cosine). The default is the one `samestyle bench dedup` tuned.")
@click.option("--field", "vector_field", type=click.Choice(list(C.DEDUP_METHODS)), default=C.DEDUP_PHOTO_TITLE,
              show_default=True, help="photo+title: the photo and the title scored apart, mutual best matches "
                                      "only, never two products stored under two colours; a vector field: its "
                                      "cosine, linked transitively.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the clusters here as JSONL (one cluster per line). [default: no file]")
@click.option("--label-col", help="Field holding a true grouping (e.g. style_group) to score the clusters against.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read --label-col from this CSV/JSONL catalogue instead of the collection.")
@click.option("--id-col", default="id", show_default=True, help="Id column of --labels.")
@click.option("--sweep", metavar="X[,X]", help="Also score these thresholds (>= the lowest is computed once).")
@click.option("--filter", "filters", multiple=True, metavar="K=V",
              help="Only products matching (same syntax as `samestyle search --filter`).")
@click.option("--block", type=click.IntRange(16, 65536), default=1024, show_default=True,
              help="Rows per similarity block (memory: block x largest category floats).")
@click.option("--collection", metavar="NAME", help="Collection or alias. [default: SAMESTYLE_COLLECTION or products]")
@click.option("--show", type=click.IntRange(0, None), default=10, show_default=True,
              help="Clusters listed in the table, largest first (--json and --out have them all).")
@json_option
@click.pass_obj
def command(settings, threshold, vector_field, out_path, label_col, labels_path, id_col, sweep, filters, block,
            collection, show, as_json):
    """Find near-duplicate listings: products of one category listed twice. By default
    each product's photo and title are scored apart against its nearest neighbours and
    a pair links when it is the best match of both products and scores at least
    --threshold; with --field VECTOR_FIELD, every pair whose vectors are at least
    --threshold alike links, transitively.

    \b
    Examples:
      samestyle dedup --out dups.jsonl
      samestyle dedup --label-col style_group --sweep 0.9,0.95,0.98 --json
      samestyle dedup --field image_vec --threshold 0.99
      samestyle dedup --labels products.csv --label-col style_group --filter category=Tshirts
    """
    from .. import dedup as D
    from ..store import Store
    from ..thumbs import Thumbnails

    if labels_path and not label_col:
        raise click.UsageError("--labels needs --label-col")

    @contextmanager
    def bar(desc, total):
        with progress_bar(total=total, desc=desc, unit="rows") as b:
            yield b.update

    labels = _read_labels(labels_path, id_col, label_col) if labels_path else None
    with Store.open(settings) as store:
        report = D.run(store, collection or settings.collection, threshold=threshold, vector_field=vector_field,
                       label_field=label_col, labels=labels, sweep=_floats(sweep), filters=filters, block=block,
                       out_path=out_path, bar=bar, thumbnails=Thumbnails(settings.data_dir))

    def human(r):
        click.echo(f"{r['products']} products, {r['field']}, threshold {r['threshold']}: {r['clusters']} clusters "
                   f"({r['clustered']} products, {r['links']} links)" + (f" -> {r['out']}" if r["out"] else ""))
        for rec in r["duplicates"][:show]:
            span = (f", score {rec['score_min']:.3f}-{rec['score_max']:.3f}" if rec["score_min"] is not None else "")
            click.echo(f"  {rec['category'] or '(no category)'}: {rec['size']} products{span}: "
                       + " ".join(rec["members"]))
        if len(r["duplicates"]) > show:
            click.echo(f"  ... {len(r['duplicates']) - show} more clusters (--show N, --json or --out FILE for all)")
        if r["label"]:
            click.echo(f"\nagainst [{r['label']}] ({r['true_pairs']} true pairs):")
            click.echo(f"{'threshold':>9} {'clusters':>8} {'pairs':>8} {'precision':>9} {'recall':>7} {'F1':>6}")
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            for s in r["sweep"]:
                click.echo(f"{s['threshold']:>9} {s['clusters']:>8} {s['predicted_pairs']:>8} {fmt(s['precision']):>9} "
                           f"{fmt(s['recall']):>7} {fmt(s['f1']):>6}")

    emit(report, as_json, human)

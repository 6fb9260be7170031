"""`samestyle dedup`: near-duplicate listings in the collection, as JSONL clusters."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from .. import contract as C
from ..errors import InputError
from .common import emit, json_option, progress_enabled


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
        raise InputError(f"--sweep values must be cosines in -1..1, got {vals}", field="sweep")
    return vals


# The threshold `dedup` recommends (its default): `samestyle bench dedup` scores it against
# re-listed products (docs/benchmarks).
DEFAULT_THRESHOLD = 0.95


@click.command("dedup")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=DEFAULT_THRESHOLD, show_default=True,
              envvar="SAMESTYLE_DEDUP_THRESHOLD", help="Link two products of one category at this cosine or above.")
@click.option("--field", "vector_field", type=click.Choice(list(C.VECTOR_FIELDS.values())), default="fused_vec",
              show_default=True, help="Vector field compared.")
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
    """Find near-duplicate listings: products of one category whose vectors are at
    least --threshold alike, linked into clusters (transitively).

    \b
    Examples:
      samestyle dedup --out dups.jsonl
      samestyle dedup --label-col style_group --sweep 0.9,0.97,0.99 --json
      samestyle dedup --labels products.csv --label-col style_group --filter category=Tshirts
    """
    from tqdm import tqdm

    from .. import dedup as D
    from ..query import filters as F
    from ..query.search import Searcher
    from ..store import connect

    if labels_path and not label_col:
        raise click.UsageError("--labels needs --label-col")
    name = collection or settings.collection
    client = connect(settings)
    try:
        expr = ""
        if filters:
            s = Searcher(client, name)
            expr = F.to_expr(F.parse_cli(list(filters), s.schema()), s.schema())
        from ..store import search as store

        total = store.count(client, name)
        model = store.model_version(store.describe(client, name))
        with tqdm(total=total, desc="fetch", unit="rows", disable=not progress_enabled(), file=sys.stderr) as bar:
            cat = D.load(client, name, vector_field=vector_field, label_field=None if labels_path else label_col,
                         expr=expr, progress=bar.update)
    finally:
        client.close()
    if labels_path:
        by_id = _read_labels(labels_path, id_col, label_col)
        cat.labels = [by_id.get(i) for i in cat.ids]
    thresholds = sorted({threshold, *_floats(sweep)})
    with tqdm(total=len(cat.ids), desc="compare", unit="rows", disable=not progress_enabled(), file=sys.stderr) as bar:
        pairs = D.find_pairs(cat.vectors, cat.groups, thresholds[0], block=block, progress=bar.update)
    results = {}
    for t in thresholds:
        p = pairs.above(t)
        cids = D.cluster_ids(len(cat.ids), p)
        results[t] = D.evaluate(cids, cat.labels, len(p), t)
        if t == threshold:
            main_cids, main_pairs = cids, p
    records = list(D.cluster_records(cat.ids, cat.groups, main_cids, main_pairs, cat.labels))
    written = 0
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                written += 1
    report = {"collection": name, "model_version": model, "field": vector_field, "products": len(cat.ids),
              "threshold": threshold,
              "out": str(out_path) if out_path else None, "clusters_written": written,
              "label": label_col, **results[threshold].to_dict(),
              "sweep": [results[t].to_dict() for t in thresholds],
              "duplicates": records}

    def human(r):
        click.echo(f"{r['products']} products, {r['field']}, threshold {r['threshold']}: {r['clusters']} clusters "
                   f"({r['clustered']} products, {r['links']} links)" + (f" -> {r['out']}" if r["out"] else ""))
        for rec in r["duplicates"][:show]:
            span = (f", cosine {rec['score_min']:.3f}-{rec['score_max']:.3f}" if rec["score_min"] is not None else "")
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

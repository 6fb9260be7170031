"""`samestyle bench search`: latency and throughput of each same-style search type
over a filled collection, HNSW recall against exact search, and (with a label
column) the same-style hit rate of product search.

- Latency p50/p95/p99 and QPS at client concurrency 1 and 8 (threads sharing one
  Searcher, as the HTTP API does) for product, text, photo, photo + modifier and
  3-field hybrid searches, end to end: encoding the query (Triton, or in-process
  ONNX with --encoder onnx), the Milvus call, per-field scores.
- Recall@k of each vector field's index: Milvus's top k against brute force (numpy)
  over the same stored vectors, for stored vectors as queries. A hit scoring at
  least the exact k-th score counts (ties between identical vectors are not misses).
- Hit rate: share of labelled products whose product search (top k, itself
  excluded) returns another product with the same label (Myntra `style_group`).
Figures are printed, never asserted; `--quick` is the smoke run the tests use.
"""

from __future__ import annotations

import os
import platform
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np

from .. import contract as C
from ..cli.common import emit, json_option
from ..config import ROOT

DEFAULT_PHOTO_DIR = ROOT.parent / "shared" / "datasets" / "myntra"
DEFAULT_PLOT = ROOT / "docs" / "benchmarks" / "search.png"
TYPES = ("product", "text", "photo", "photo_text", "hybrid")
MODIFIERS = ("but in white", "in black", "with stripes", "for women", "in blue")


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "mean": round(float(a.mean()), 2)}


def run_load(fn, queries: list, concurrency: int) -> dict:
    """Each query once, `concurrency` at a time; latency per call and overall QPS."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(q):
        t0 = time.perf_counter()
        try:
            fn(q)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports failures, it does not stop
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, queries))
    wall = time.perf_counter() - t0
    out = {"concurrency": concurrency, "queries": len(queries), "errors": len(errors),
           "qps": round(len(lat) / wall, 2) if wall > 0 else None}
    if lat:
        out["latency_ms"] = percentiles(lat)
    if errors:
        out["first_error"] = errors[0]
    return out


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, float]:
    s = x @ q
    if exclude is not None:
        s[exclude] = -np.inf
    top = np.argpartition(-s, k - 1)[:k]
    return top, float(s[top].min())


def recall_at_k(client, collection: str, ids: list[str], x: np.ndarray, field: str, sample: list[int], k: int,
                params: dict) -> dict:
    """Milvus (the field's index) vs exact search, stored vectors as queries."""
    from ..query import requests as R
    from ..store import search as store

    norms = np.linalg.norm(x, axis=1)
    pos = {pid: j for j, pid in enumerate(ids)}
    rec = []
    for i in sample:
        if norms[i] < 1e-6:
            continue  # a missing view is not a query
        plan = R.plan({field: x[i]}, [field], k=k, params=params)
        got = [h["id"] for h in store.run(client, collection, plan)]
        _, kth = exact_topk(x, x[i], k)
        ok = sum(1 for pid in got if pid in pos and float(x[pos[pid]] @ x[i]) >= kth - 1e-5)
        rec.append(ok / k)
    return {"queries": len(rec), "recall": round(float(np.mean(rec)), 4) if rec else None}


def batched_products(searcher, ids: list[str], k: int) -> dict:
    """The product queries again through `Searcher.by_products` (many to a Milvus call):
    what a bulk same-style job pays per product, against one call each above."""
    _say(f"  product, batched: {len(ids)} queries")
    t = time.perf_counter()
    res = searcher.by_products(ids, k=k)
    sec = time.perf_counter() - t
    return {"products": len(ids), "answered": len(res.results), "errors": len(res.errors), "calls": res.calls,
            "seconds": round(sec, 3), "per_product_ms": round(sec * 1000 / max(1, len(ids)), 2),
            "products_per_s": round(len(ids) / max(sec, 1e-9), 1)}


def _load_rows(client, collection: str, label_col: str | None):
    from ..store import search as store

    fields = ["title", "image_uri", C.CATEGORY_FIELD, *C.VECTOR_FIELDS.values()] + ([label_col] if label_col else [])
    rows: list[dict] = []
    for batch in store.scan(client, collection, fields, batch_size=2000):
        rows.extend(batch)
    return rows


def hit_rate(searcher, rows: list[dict], label_col: str, sample: list[int], k: int) -> dict:
    labels = {r[C.PRIMARY_KEY]: r.get(label_col) for r in rows}
    hits, n = 0, 0
    for i in sample:
        pid, lab = rows[i][C.PRIMARY_KEY], rows[i].get(label_col)
        if lab in (None, "", -1, "-1"):
            continue
        res = searcher.by_product(pid, k=k)
        n += 1
        hits += any(labels.get(h) == lab for h in res.ids)
    return {"label": label_col, "k": k, "queries": n, "hit_rate": round(hits / n, 4) if n else None}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [t for t in report["types"] if isinstance(report["latency"].get(t), list)]
    conc = report["concurrency"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / (2 * len(conc))
    x = np.arange(len(types))
    for ci, c in enumerate(conc):
        for pi, p in enumerate(("p50", "p99")):
            vals = [next((r["latency_ms"][p] for r in report["latency"][t] if r["concurrency"] == c
                          and "latency_ms" in r), 0) for t in types]
            ax.bar(x + (2 * ci + pi - len(conc) + 0.5) * width, vals, width, label=f"{p}, concurrency {c}")
    ax.set_xticks(x, types)
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Search latency, {report['products']} products ({report['machine']['cpus']} CPU cores, "
                 f"encoder {report['encoder']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("search")
@click.option("--queries", "n", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Queries per search type and concurrency.")
@click.option("--concurrency", default="1,8", show_default=True, help="Client concurrencies, comma-separated.")
@click.option("--types", default=",".join(TYPES), show_default=True, help="Search types to measure.")
@click.option("-k", "k", type=click.IntRange(1, C.MAX_SEARCH_K), default=10, show_default=True)
@click.option("--recall-queries", type=click.IntRange(0, 100_000), default=200, show_default=True,
              help="Stored vectors used as queries for recall@k per field (0: skip).")
@click.option("--label-col", help="Label field for the product-search hit rate (e.g. style_group).")
@click.option("--hit-queries", type=click.IntRange(0, 1_000_000), default=2000, show_default=True,
              help="Labelled products used for the hit rate.")
@click.option("--encoder", "encoder_kind", type=click.Choice(["triton", "onnx"]), default="triton", show_default=True,
              help="Query encoder: Triton (SAMESTYLE_TRITON_URL or a local one) or in-process ONNX Runtime.")
@click.option("--photo-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Base folder of relative image_uri values. [default: {DEFAULT_PHOTO_DIR} when present]")
@click.option("--collection", metavar="NAME", help="Collection or alias. [default: SAMESTYLE_COLLECTION]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="Smoke run (10 queries, concurrency 1 and 2); figures meaningless.")
@click.option("--plot", "do_plot", is_flag=True, help="Write a PNG plot to --plot-file.")
@click.option("--plot-file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PLOT, show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the JSON here.")
@json_option
@click.pass_obj
def command(settings, n, concurrency, types, k, recall_queries, label_col, hit_queries, encoder_kind, photo_dir,
            collection, seed, quick, do_plot, plot_file, out_path, as_json):
    """Latency (p50/p95/p99) and QPS of each search type at concurrency 1 and 8,
    recall@k of the HNSW indexes against exact search, and the same-style hit rate."""
    import json

    from ..query.search import Searcher

    conc = (1, 2) if quick else tuple(int(c) for c in concurrency.split(",") if c.strip())
    if quick:
        n, recall_queries, hit_queries = 10, 10, 20
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    bad = [t for t in wanted if t not in TYPES]
    if bad:
        raise click.BadParameter(f"unknown search types {bad}; use {', '.join(TYPES)}", param_hint="--types")
    searcher = Searcher.from_settings(settings, collection=collection)
    name = searcher.collection
    rng = random.Random(seed)
    _say(f"bench search: reading {name}...")
    rows = _load_rows(searcher.client, name, label_col)
    if not rows:
        raise click.ClickException(f"collection [{name}] is empty")
    ids = [str(r[C.PRIMARY_KEY]) for r in rows]
    base = photo_dir or (DEFAULT_PHOTO_DIR if DEFAULT_PHOTO_DIR.is_dir() else Path("."))

    def photo_of(r) -> Path | None:
        uri = r.get("image_uri") or ""
        if not uri or ":" in uri.split("/")[0]:
            return None
        p = Path(uri) if Path(uri).is_absolute() else base / uri
        return p if p.is_file() else None

    sample = [rows[i] for i in rng.sample(range(len(rows)), min(n, len(rows)))]
    with_photo = [(r, p) for r in sample if (p := photo_of(r)) is not None]
    report = {"benchmark": "search", "collection": name, "products": len(rows), "k": k, "concurrency": list(conc),
              "types": wanted, "encoder": encoder_kind, "quick": quick, "queries_per_run": n,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "latency": {}}
    need_encoder = any(t != "product" for t in wanted)
    if need_encoder:
        if encoder_kind == "onnx":
            from ..encoders.onnx import OnnxEncoder
            from ..export import ensure_onnx

            searcher.encoder = OnnxEncoder(ensure_onnx(settings.model_dir))
        else:
            from ..serve import encoder_for

            searcher.encoder = encoder_for(settings)
        report["model_version"] = searcher.encoder.model_version
    runs = {
        "product": ([str(r[C.PRIMARY_KEY]) for r in sample], lambda q: searcher.by_product(q, k=k)),
        "text": ([r["title"] for r in sample if r.get("title")], lambda q: searcher.by_text(q, k=k)),
        "photo": ([p for _, p in with_photo], lambda q: searcher.by_photo(q, k=k)),
        "photo_text": ([(p, rng.choice(MODIFIERS)) for _, p in with_photo],
                       lambda q: searcher.by_photo_text(q[0], q[1], k=k)),
        "hybrid": ([(r["title"], p) for r, p in with_photo] or [(r["title"], None) for r in sample],
                   lambda q: searcher.hybrid(text=q[0], photo=q[1], k=k)),
    }
    try:
        for t in wanted:
            queries, fn = runs[t]
            if not queries:
                report["latency"][t] = {"skipped": f"no usable queries (photos under [{base}]?)"}
                continue
            fn(queries[0])  # warm-up: connections, lazy schema, encoder sessions
            report["latency"][t] = []
            for c in conc:
                _say(f"  {t}, concurrency {c}: {len(queries)} queries")
                report["latency"][t].append(run_load(fn, queries, c))
        if "product" in wanted:
            report["product_batched"] = batched_products(searcher, runs["product"][0], k)
        if recall_queries:
            _say("  recall@k against exact search...")
            idx = rng.sample(range(len(rows)), min(recall_queries, len(rows)))
            report["recall"] = {}
            for f in C.VECTOR_FIELDS.values():
                x = np.asarray([r[f] for r in rows], dtype=np.float32)
                report["recall"][f] = recall_at_k(searcher.client, name, ids, x, f, idx, k, searcher.index_params)
        if label_col:
            _say(f"  hit rate against [{label_col}]...")
            idx = rng.sample(range(len(rows)), min(hit_queries, len(rows)))
            report["hit_rate"] = hit_rate(searcher, rows, label_col, idx, k)
    finally:
        if searcher.encoder is not None:
            searcher.encoder.close()
        searcher.close()
    if do_plot:
        plot(report, plot_file)
        report["plot"] = str(plot_file)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2))
    emit(report, as_json, _human)


def _human(r: dict) -> None:
    click.echo(f"{r['products']} products in {r['collection']}, k={r['k']}, encoder {r['encoder']}")
    click.echo(f"{'search':12s} {'conc':>4} {'qps':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for t, series in r["latency"].items():
        if not isinstance(series, list):
            click.echo(f"{t:12s} skipped: {series['skipped']}")
            continue
        for s in series:
            lat = s.get("latency_ms", {})
            click.echo(f"{t:12s} {s['concurrency']:>4} {s['qps'] or 0:>8.1f} {lat.get('p50', 0):>8.1f} "
                       f"{lat.get('p95', 0):>8.1f} {lat.get('p99', 0):>8.1f} {s['errors']:>6}")
    if r.get("product_batched"):
        b = r["product_batched"]
        click.echo(f"product, batched: {b['products']} products in {b['calls']} calls, {b['per_product_ms']} ms a "
                   f"product ({b['products_per_s']} products/s)")
    for f, v in (r.get("recall") or {}).items():
        click.echo(f"recall@{r['k']} {f}: {v['recall']} ({v['queries']} queries)")
    if r.get("hit_rate"):
        h = r["hit_rate"]
        click.echo(f"same-style hit rate@{h['k']} ({h['label']}): {h['hit_rate']} over {h['queries']} products")

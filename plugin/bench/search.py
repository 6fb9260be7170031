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
from . import collection_option, photo_base, photo_dir_option, run_options, save_report
from ..encoders.onnx import OnnxEncoder
from ..output import echo_sections, emit
from ..config import ROOT
from ..query import requests as R
from ..query.search import Searcher
from .. import serve

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


def recall_at_k(store, collection: str, ids: list[str], x: np.ndarray, field: str, sample: list[int], k: int,
                params: dict) -> dict:
    """Milvus (the field's index) vs exact search, stored vectors as queries."""
    norms = np.linalg.norm(x, axis=1)
    pos = {pid: j for j, pid in enumerate(ids)}
    rec = []
    for i in sample:
        if norms[i] < 1e-6:
            continue  # a missing view is not a query
        plan = R.plan({field: x[i]}, [field], k=k, params=params)
        got = [h["id"] for h in store.search(collection, plan)]
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


def _p50(fn, items) -> float:
    ms = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        ms.append((time.perf_counter() - t) * 1000)
    return round(float(np.percentile(ms, 50)), 2)


def _recall(got: list[str], s: np.ndarray, pos: dict, k: int, exclude: int | None = None) -> float:
    """Share of `got` (k at most) scoring at least the exact k-th score of `s` (ties
    between identical vectors are not misses); `exclude` is left out of the exact list."""
    if exclude is not None:
        s = s.copy()
        s[exclude] = -np.inf
    kth = float(np.partition(s, len(s) - k)[len(s) - k])
    return sum(1 for pid in got[:k] if pid in pos and s[pos[pid]] >= kth - 1e-5) / k


def hybrid_fusion(searcher, rows: list[dict], ids: list[str], sample: list[int], k: int) -> dict:
    """The 3-field weighted hybrid search (stored products as queries, each category's
    weights) three ways, side by side: hybrid_search with Milvus's WeightedRanker, one
    call on the composite field (when the collection has one), and exact numpy fusion
    over the same stored vectors (the ceiling, and the truth recall is measured against).
    The single-field product search (fused_vec) is the per-call baseline."""
    fields = list(R.FIELDS)
    x = {f: np.asarray([r[f] for r in rows], dtype=np.float32) for f in fields}
    pos = {pid: j for j, pid in enumerate(ids)}
    qids = [ids[i] for i in sample]
    comp = searcher.composite

    def exact(i: int, weights: dict) -> np.ndarray:
        return sum(w * (x[f] @ x[f][i]) for f, w in weights.items() if w)

    def exact_topk(i: int) -> None:
        _, prof = searcher.profiles.for_category(rows[i].get(C.CATEGORY_FIELD))
        ws = R.normalise_weights(fields, None, prof)
        s = exact(i, dict(zip(fields, ws)))
        s[i] = -np.inf
        np.argpartition(-s, k)[:k]

    out: dict = {"queries": len(sample), "k": k, "composite_field": comp}
    _say(f"  hybrid fusion: {len(sample)} queries, single field / hybrid_search / composite / exact")
    searcher.by_product(qids[0], k=k)  # warm-up
    out["single_p50_ms"] = _p50(lambda q: searcher.by_product(q, k=k), qids)
    out["exact_single_p50_ms"] = _p50(lambda i: np.argpartition(-(x[C.FUSED_VEC] @ x[C.FUSED_VEC][i]), k)[:k], sample)
    out["exact_hybrid_p50_ms"] = _p50(exact_topk, sample)
    ways = [("hybrid_search", False)] + ([("composite", True)] if comp else [])
    for name, use in ways:
        searcher.use_composite = use
        try:
            res = {q: searcher.by_product(q, k=k, fields=fields) for q in qids[:1]}  # warm-up
            t_ms = []
            for q in qids:
                t = time.perf_counter()
                res[q] = searcher.by_product(q, k=k, fields=fields)
                t_ms.append((time.perf_counter() - t) * 1000)
        finally:
            searcher.use_composite = True
        rec = [_recall(res[ids[i]].ids, exact(i, res[ids[i]].weights), pos, k, exclude=i) for i in sample]
        out[name] = {"p50_ms": round(float(np.percentile(t_ms, 50)), 2),
                     "p99_ms": round(float(np.percentile(t_ms, 99)), 2),
                     "recall_vs_exact_fusion": round(float(np.mean(rec)), 4),
                     "ratio_to_single": round(float(np.percentile(t_ms, 50)) / out["single_p50_ms"], 2)}
    return out


def batched_texts(searcher, texts: list[str], k: int, one_by_one_qps: float | None) -> dict:
    """The text queries again through `Searcher.by_texts` (one encoder batch, many to a
    Milvus call), with each result checked against its single search."""
    _say(f"  text, batched: {len(texts)} queries")
    t = time.perf_counter()
    res = searcher.by_texts(texts, k=k)
    sec = time.perf_counter() - t
    same = sum(1 for i, q in enumerate(texts[:50]) if str(i) in res.results
               and res.results[str(i)].ids == searcher.by_text(q, k=k).ids)
    qps = len(texts) / max(sec, 1e-9)
    return {"queries": len(texts), "answered": len(res.results), "errors": len(res.errors), "calls": res.calls,
            "seconds": round(sec, 3), "qps": round(qps, 1),
            "speedup_vs_one_by_one": round(qps / one_by_one_qps, 2) if one_by_one_qps else None,
            "checked_against_single": min(50, len(texts)), "identical_to_single": same}


def exact_ceiling(rows: list[dict], k: int, n: int = 50) -> dict:
    """What the arithmetic costs: exact top-k by numpy over the same stored vectors, per
    query (one field; three fields weighted), beside every Milvus figure of the run."""
    x = {f: np.asarray([r[f] for r in rows], dtype=np.float32) for f in R.FIELDS}
    qs = list(range(0, len(rows), max(1, len(rows) // n)))[:n]
    single = _p50(lambda i: np.argpartition(-(x[C.FUSED_VEC] @ x[C.FUSED_VEC][i]), k)[:k], qs)
    three = _p50(lambda i: np.argpartition(-sum(x[f] @ x[f][i] for f in R.FIELDS), k)[:k], qs)
    return {"single_field": single, "three_fields": three, "queries": len(qs), "rows": len(rows)}


def _load_rows(store, collection: str, label_col: str | None):
    fields = ["title", "image_uri", C.CATEGORY_FIELD, *C.VECTOR_FIELDS.values()] + ([label_col] if label_col else [])
    rows: list[dict] = []
    for batch in store.scan(collection, fields, batch_size=2000):
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


def plot_fusion(report: dict, path: Path) -> None:
    """p50 per query of the 3-field weighted search three ways plus the single-field
    search and the exact numpy ceiling, with each way's recall against exact fusion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = report["hybrid_fusion"]
    bars = [("single field\n(Milvus)", h["single_p50_ms"], None),
            ("3 fields\nhybrid_search", h["hybrid_search"]["p50_ms"], h["hybrid_search"]["recall_vs_exact_fusion"])]
    if "composite" in h:
        bars.append(("3 fields\ncomposite", h["composite"]["p50_ms"], h["composite"]["recall_vs_exact_fusion"]))
    bars += [("exact numpy\n1 field", h["exact_single_p50_ms"], None),
             ("exact numpy\n3 fields", h["exact_hybrid_p50_ms"], 1.0)]
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = np.arange(len(bars))
    ax.bar(xs, [b[1] for b in bars], color=["#888", "#c44", "#4a4", "#48c", "#48c"][:len(bars)])
    for x_, (_, v, r) in zip(xs, bars):
        ax.text(x_, v, f"{v:.1f} ms" + (f"\nrecall {r:.3f}" if r is not None else ""), ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(xs, [b[0] for b in bars], fontsize=8)
    ax.set_ylim(top=max(b[1] for b in bars) * 1.2)  # room for the labels
    ax.set_ylabel("p50 per query (ms)")
    ax.set_title(f"Weighted 3-field search, {report['products']:,} products: recall@{h['k']} against exact "
                 f"weighted fusion", fontsize=9)
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
@photo_dir_option
@collection_option
@click.option("--fusion-queries", type=click.IntRange(0, 100_000), default=200, show_default=True,
              help="Stored products used to compare hybrid_search, the composite field and exact fusion (0: skip).")
@run_options("Smoke run (10 queries, concurrency 1 and 2); figures meaningless.", DEFAULT_PLOT)
def command(settings, n, concurrency, types, k, recall_queries, label_col, hit_queries, encoder_kind, photo_dir,
            collection, seed, fusion_queries, quick, do_plot, plot_file, out_path, as_json):
    """Latency (p50/p95/p99) and QPS of each search type at concurrency 1 and 8,
    recall@k of the HNSW indexes against exact search, and the same-style hit rate."""
    conc = (1, 2) if quick else tuple(int(c) for c in concurrency.split(",") if c.strip())
    if quick:
        n, recall_queries, hit_queries, fusion_queries = 10, 10, 20, min(fusion_queries, 10)
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    bad = [t for t in wanted if t not in TYPES]
    if bad:
        raise click.BadParameter(f"unknown search types {bad}; use {', '.join(TYPES)}", param_hint="--types")
    searcher = Searcher.from_settings(settings, collection=collection)
    name = searcher.collection
    rng = random.Random(seed)
    _say(f"bench search: reading {name}...")
    rows = _load_rows(searcher.store, name, label_col)
    if not rows:
        raise click.ClickException(f"collection [{name}] is empty")
    ids = [str(r[C.PRIMARY_KEY]) for r in rows]
    base = photo_base(photo_dir)

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
            from ..export import ensure_onnx

            searcher.encoder = OnnxEncoder(ensure_onnx(settings.model_dir))
        else:
            searcher.encoder = serve.encoder_for(settings)
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
        if "text" in wanted and isinstance(report["latency"].get("text"), list):
            one = report["latency"]["text"][0]["qps"]
            report["text_batched"] = batched_texts(searcher, runs["text"][0], k, one)
        if "hybrid" in wanted and fusion_queries:
            idx = rng.sample(range(len(rows)), min(fusion_queries, len(rows)))
            report["hybrid_fusion"] = hybrid_fusion(searcher, rows, ids, idx, k)
        report["exact_ceiling_ms"] = exact_ceiling(rows, k)
        if recall_queries:
            _say("  recall@k against exact search...")
            idx = rng.sample(range(len(rows)), min(recall_queries, len(rows)))
            report["recall"] = {}
            for f in C.VECTOR_FIELDS.values():
                x = np.asarray([r[f] for r in rows], dtype=np.float32)
                report["recall"][f] = recall_at_k(searcher.store, name, ids, x, f, idx, k, searcher.index_params)
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
        if report.get("hybrid_fusion"):
            fusion_file = plot_file.with_name(plot_file.stem + "-fusion.png")
            plot_fusion(report, fusion_file)
            report["plot_fusion"] = str(fusion_file)
    save_report(report, out_path)
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
    echo_sections(r, {
        "product_batched": lambda b: f"product, batched: {b['products']} products in {b['calls']} calls, "
                                     f"{b['per_product_ms']} ms a product ({b['products_per_s']} products/s)",
        "text_batched": lambda b: f"text, batched: {b['queries']} queries in {b['calls']} calls, {b['qps']} queries/s "
                                  f"({b['speedup_vs_one_by_one']}x one by one); {b['identical_to_single']}/"
                                  f"{b['checked_against_single']} identical to single searches",
        "hybrid_fusion": _fusion_lines,
        "exact_ceiling_ms": lambda e: f"exact numpy ceiling: {e['single_field']} ms (1 field), {e['three_fields']} ms "
                                      "(3 fields) a query",
        "recall": lambda rec: [f"recall@{r['k']} {f}: {v['recall']} ({v['queries']} queries)" for f, v in rec.items()],
        "hit_rate": lambda h: f"same-style hit rate@{h['k']} ({h['label']}): {h['hit_rate']} over {h['queries']} "
                              "products",
    })


def _fusion_lines(h: dict) -> list[str]:
    return [f"3-field weighted search ({h['queries']} products): single field p50 {h['single_p50_ms']} ms; "
            f"exact numpy {h['exact_single_p50_ms']} / {h['exact_hybrid_p50_ms']} ms (1 / 3 fields)",
            *(f"  {way:13s} p50 {h[way]['p50_ms']} ms ({h[way]['ratio_to_single']}x single), recall@{h['k']} "
              f"vs exact fusion {h[way]['recall_vs_exact_fusion']}"
              for way in ("hybrid_search", "composite") if way in h)]

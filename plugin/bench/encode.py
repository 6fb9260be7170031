"""`samestyle bench encode`: encoding throughput through Triton against the in-process
ONNX Runtime ceiling.

Measured on the same products (photos from --photos, by default the Myntra 224 px
photos when present, else the generated catalogue):
- Triton with dynamic batching at client concurrency 1, 8 and 32, one product per
  request (the live-query pattern, where only the server can batch), with Triton's
  statistics over each run (inference_count / execution_count = average batch);
- the same repository on a second server with dynamic_batching removed;
- the naive path: one product per request, sequentially (concurrency 1);
- the ingest path: TritonEncoder defaults (several products per request, a few in
  flight), what `samestyle ingest` does;
- in-process ONNX Runtime (OnnxEncoder) at several batch sizes; the best is the ceiling.
Figures are printed, never asserted; `--quick` is the smoke run the tests use.
"""

from __future__ import annotations

import csv
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np

from .. import contract as C
from ..encoders.onnx import OnnxEncoder
from ..encoders.triton import TritonEncoder
from ..output import emit, json_option
from . import plot_options
from ..config import ROOT
from ..encoders.base import ProductInput
from .. import serve
from ..serve.stack import log_dir
from ..triton_repo import without_dynamic_batching
from samestyle.loaders.synthetic import generate

DEFAULT_PHOTOS = ROOT.parent / "shared" / "datasets" / "myntra" / "images_224"
DEFAULT_PLOT = ROOT / "docs" / "benchmarks" / "encode.png"
CONCURRENCY = (1, 8, 32)
CEILING_BATCHES = (1, 8, 32, 64)
TARGETS = {"c32_vs_no_batching": 2.0, "c32_vs_ceiling": 0.7}  # issue 3's done-when


def _say(msg: str) -> None:
    click.echo(msg, err=True)


# --- products --------------------------------------------------------------------
def _titles_beside(photos: Path) -> dict[str, str]:
    """Titles by photo stem from a products.csv next to the photo folder, if any."""
    for cand in (photos.parent / "products.csv", photos / "catalogue.csv", photos.parent / "catalogue.csv"):
        if cand.exists():
            with open(cand, newline="", encoding="utf-8") as f:
                return {Path(r.get("image", "")).stem or r.get("id", ""): r.get("title", "") for r in csv.DictReader(f)}
    return {}


def load_products(photos: Path | None, n: int) -> tuple[list[ProductInput], str]:
    """n products (photo + title), cycling through the source if it is smaller."""
    tmp = None
    if photos is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-encode-")
        cat = generate(tmp.name)
        photos, source = Path(tmp.name) / "images", f"generated catalogue ({cat.n_products} products)"
    else:
        source = str(photos)
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))[:n]
    if not files:
        raise click.UsageError(f"no JPEG/PNG/WebP photos in {photos}")
    titles = _titles_beside(photos)
    base = [ProductInput(p.stem, p.read_bytes(), titles.get(p.stem) or p.stem.replace("_", " ")) for p in files]
    if tmp is not None:
        tmp.cleanup()
    out = [ProductInput(f"{base[i % len(base)].id}#{i}", base[i % len(base)].image, base[i % len(base)].text)
           for i in range(n)]
    return out, source


# --- measurements ----------------------------------------------------------------
def _stats(enc) -> dict:
    return {m: enc.statistics(m) for m in (C.ENTRY_MODEL, C.IMAGE_MODEL, C.TEXT_MODEL, C.FUSION_MODEL)}


def _stats_delta(before: dict, after: dict) -> dict:
    out = {}
    for m in after:
        inf = after[m]["inference_count"] - before[m]["inference_count"]
        exe = after[m]["execution_count"] - before[m]["execution_count"]
        out[m] = {"inference_count": inf, "execution_count": exe, "avg_batch": round(inf / exe, 2) if exe else None}
    return out


def _settled_stats(enc, before: dict, expected: int, wait_s: float = 2.0) -> dict:
    """Triton records statistics just after it sends a response, so the last
    request's counts can lag the client by a moment."""
    deadline = time.monotonic() + wait_s
    while True:
        after = _stats(enc)
        done = after[C.ENTRY_MODEL]["inference_count"] - before[C.ENTRY_MODEL]["inference_count"]
        if done >= expected or time.monotonic() > deadline:
            return after
        time.sleep(0.05)


def run_concurrent(url: str, products: list[ProductInput], concurrency: int, per_request: int = 1) -> dict:
    """`concurrency` client threads, each sending `per_request` products per request
    until all products are encoded. Returns throughput, latency and server stats."""
    enc = TritonEncoder(url, batch_size=per_request, max_in_flight=concurrency)
    try:
        enc.encode_batch(products[: min(len(products), 2 * per_request)])  # connection + first-call warmup
        chunks = [products[i:i + per_request] for i in range(0, len(products), per_request)]
        lock, lat, failed = threading.Lock(), [], [0]
        it = iter(chunks)

        def worker():
            while True:
                with lock:
                    chunk = next(it, None)
                if chunk is None:
                    return
                t = time.perf_counter()
                res = enc.encode_batch(chunk)
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    failed[0] += sum(e is not None for e in res.errors)

        before = _stats(enc)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        after = _settled_stats(enc, before, len(products))
    finally:
        enc.close()
    ms = np.asarray(lat) * 1000
    return {
        "concurrency": concurrency, "products_per_request": per_request, "products": len(products),
        "failed": failed[0], "seconds": round(wall, 3), "products_per_s": round(len(products) / wall, 2),
        "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1)},
        "triton_stats": _stats_delta(before, after),
    }


def onnx_ceiling(bundle: Path, products: list[ProductInput], batches=CEILING_BATCHES) -> dict:
    """In-process ONNX Runtime (same graphs, same preprocessing) per batch size."""
    enc = OnnxEncoder(bundle)
    by_batch = {}
    try:
        enc.encode_batch(products[:2])
        for b in batches:
            if b > len(products) and by_batch:
                continue
            t0 = time.perf_counter()
            for i in range(0, len(products), b):
                enc.encode_batch(products[i:i + b])
            by_batch[b] = round(len(products) / (time.perf_counter() - t0), 2)
    finally:
        enc.close()
    best = max(by_batch, key=by_batch.get)
    return {"best_batch": best, "products_per_s": by_batch[best], "by_batch": by_batch,
            "threads": min(4, os.cpu_count() or 1)}


def _series(url, products, concurrency, label) -> list[dict]:
    out = []
    for c in concurrency:
        _say(f"  {label}: concurrency {c}...")
        out.append(run_concurrent(url, products, c))
    return out


def summarise(report: dict) -> dict:
    """Ratios the issue's done-when asks for (pure)."""
    def at(series, c):
        for r in series if isinstance(series, list) else []:
            if r["concurrency"] == c:
                return r["products_per_s"]
        return None

    top = max(report["concurrency"])
    db = at(report["triton"]["dynamic_batching"], top)
    nodb = at(report["triton"].get("no_dynamic_batching"), top)
    ceil = report["onnx_ceiling"]["products_per_s"]
    s = {"concurrency": top,
         "c32_vs_no_batching": round(db / nodb, 2) if db and nodb else None,
         "c32_vs_ceiling": round(db / ceil, 2) if db and ceil else None,
         "targets": TARGETS}
    s["met"] = {k: (s[k] is not None and s[k] >= v) for k, v in TARGETS.items()}
    return s


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    cs = report["concurrency"]
    x = np.arange(len(cs))
    db = [r["products_per_s"] for r in report["triton"]["dynamic_batching"]]
    ax.bar(x - 0.2, db, 0.4, label="Triton, dynamic batching")
    nodb = report["triton"].get("no_dynamic_batching")
    if isinstance(nodb, list):
        ax.bar(x + 0.2, [r["products_per_s"] for r in nodb], 0.4, label="Triton, no dynamic batching")
    ceil = report["onnx_ceiling"]
    ax.axhline(ceil["products_per_s"], color="k", ls="--", lw=1,
               label=f"in-process ONNX Runtime, batch {ceil['best_batch']}")
    ax.set_xticks(x, [str(c) for c in cs])
    ax.set_xlabel("client concurrency (one product per request)")
    ax.set_ylabel("products / s")
    ax.set_title(f"Encoding throughput ({report['machine']['cpus']} CPU cores, {report['products']} products)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _concurrency(ctx, param, value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(c) for c in value.split(",") if c.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got [{value}]") from None
    if not out or min(out) < 1 or max(out) > 1024:
        raise click.BadParameter(f"concurrencies must be 1..1024, got [{value}]")
    return out


@click.command("encode")
@click.option("--products", "n", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="Products per measured run.")
@click.option("--photos", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              envvar="SAMESTYLE_BENCH_PHOTOS",
              help=f"Folder of product photos (titles from a products.csv beside it). "
                   f"[default: {DEFAULT_PHOTOS} when present, else the generated catalogue]")
@click.option("--concurrency", default=",".join(map(str, CONCURRENCY)), show_default=True, callback=_concurrency,
              help="Client concurrencies to measure, comma-separated.")
@click.option("--quick", is_flag=True, help="Smoke run (16 products, concurrency 1 and 4); figures meaningless.")
@click.option("--no-baseline", is_flag=True, help="Skip the second server without dynamic batching.")
@plot_options(DEFAULT_PLOT)
@json_option
@click.pass_obj
def command(settings, n, photos, concurrency, quick, no_baseline, do_plot, plot_file, as_json):
    """Products/s through Triton (dynamic batching on and off, concurrency 1/8/32)
    against the in-process ONNX Runtime ceiling, with Triton's batching statistics.

    Starts a local Triton unless SAMESTYLE_TRITON_URL is set (then that server is
    measured and the no-batching baseline, which needs a local copy of the
    repository, is skipped).
    """
    from ..export import ensure_onnx
    conc = (1, 4) if quick else concurrency
    n = 16 if quick else n
    if photos is None and DEFAULT_PHOTOS.is_dir() and not quick:
        photos = DEFAULT_PHOTOS
    products, source = load_products(photos, n)
    report = {"benchmark": "encode", "products": len(products), "photos": source, "concurrency": list(conc),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "quick": quick, "triton": {}}
    _say(f"bench encode: {len(products)} products from {source}")
    with serve.encoder_for(settings) as enc:
        report["model_version"] = enc.model_version
        report["triton_url"] = enc.url if settings.triton_url else "local"
        report["triton"]["dynamic_batching"] = _series(enc.url, products, conc, "dynamic batching")
        report["naive"] = next(r for r in report["triton"]["dynamic_batching"] if r["concurrency"] == conc[0])
        _say("  ingest path (TritonEncoder defaults)...")
        report["ingest_path"] = run_concurrent(enc.url, products, enc.max_in_flight, per_request=enc.max_batch)
    if settings.triton_url or no_baseline:
        why = "SAMESTYLE_TRITON_URL is set" if settings.triton_url else "--no-baseline"
        report["triton"]["no_dynamic_batching"] = {"skipped": why}
    else:
        with tempfile.TemporaryDirectory(prefix="triton-nodb-") as tmp:
            repo = without_dynamic_batching(serve.ensure_repository(settings), Path(tmp) / "repo")
            with serve.TritonServer(repo, serve_python=settings.serve_python, log_dir=log_dir(settings)) as srv:
                report["triton"]["no_dynamic_batching"] = _series(srv.url, products, conc, "no dynamic batching")
    _say("  in-process ONNX Runtime ceiling...")
    report["onnx_ceiling"] = onnx_ceiling(ensure_onnx(settings.model_dir), products)
    report["summary"] = summarise(report)
    if do_plot:
        plot(report, plot_file)
        report["plot"] = str(plot_file)
    emit(report, as_json, lambda r: _human(r))


def _human(r: dict) -> None:
    click.echo(f"{'run':32s} {'products/s':>10} {'p50 ms':>8} {'avg batch':>9}")
    for label, key in (("dynamic batching", "dynamic_batching"), ("no dynamic batching", "no_dynamic_batching")):
        series = r["triton"].get(key)
        if not isinstance(series, list):
            click.echo(f"{label:32s} skipped ({series['skipped']})")
            continue
        for x in series:
            b = x["triton_stats"][C.ENTRY_MODEL]["avg_batch"]
            click.echo(f"{label + ', c=' + str(x['concurrency']):32s} {x['products_per_s']:>10.1f} "
                       f"{x['latency_ms']['p50']:>8.1f} {b if b is not None else '-':>9}")
    ip = r["ingest_path"]
    click.echo(f"{'ingest path':32s} {ip['products_per_s']:>10.1f}")
    c = r["onnx_ceiling"]
    click.echo(f"{'ONNX Runtime, batch ' + str(c['best_batch']):32s} {c['products_per_s']:>10.1f}")
    click.echo(f"summary: {r['summary']}")

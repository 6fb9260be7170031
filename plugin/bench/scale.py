"""`samestyle bench scale`: how Milvus Lite behaves as the catalogue grows.

Per catalogue size (10k -> 100k -> 1M by default), a fresh collection laid out as
samestyle.store lays out the product collection is filled with synthetic unit vectors,
indexed, loaded and searched: insert rate, flush / index build / load time, single-
field and 3-field hybrid latency (p50/p95/p99), recall@10 against exact search over
the same vectors, memory. Each size runs in its own spawned process, so its resident
memory is its own, not what a smaller size left in the allocator. Vectors uniform on
the sphere are the worst case for graph indexes (real embeddings cluster): recall
here is a floor. Queries are stored vectors plus noise: each has a true neighbour.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import click
import numpy as np

from .. import contract as C
from ..bars import progress_bar
from ..output import emit, json_option, progress_enabled
from ..config import ROOT
from ..query import requests as R
from ..serve.process import die_with_parent
from ..store import Store
from ..store.client import client as milvus_client
from ..store.spec import build_index_params, build_schema, index_profile, load_collection_spec

log = logging.getLogger(__name__)

QUICK_SIZES = (2_000, 5_000)
DEFAULT_PLOT = ROOT / "docs" / "benchmarks" / "scale.png"
COLLECTION = "scale_bench"
N_CATEGORIES = 48  # leaf categories, the order of Myntra's articleType count
QUERY_NOISE = 0.3  # |noise| relative to the unit vector: cosine to the source ~0.96
CURVE_TARGET = 3.0  # issue 7: search latency at the largest size <= 3x the smallest

# Index types Milvus Lite builds (faiss), with default parameters for the ones the
# profiles in milvus/indexes.json do not use; they fill the capacity model.
INDEX_DEFAULTS: dict[str, tuple[dict, dict]] = {
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "HNSW_SQ": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "IVF_FLAT": ({"nlist": 128}, {"nprobe": 16}),
    "IVF_SQ8": ({"nlist": 128}, {"nprobe": 16}),
    "FLAT": ({}, {}),
}
LITE_PROFILES = ("lite", "hnsw")  # profiles whose index Milvus Lite can build
HYBRID_WEIGHTS = (0.4, 0.2, 0.4)  # plugin/query/profiles.json default, image/text/fused


@dataclass(frozen=True)
class ScaleConfig:
    dim: int = C.DEFAULT_EMBED_DIM
    queries: int = 200
    hybrid_queries: int = 50
    queries_per_call: int = 50  # the batched pass: this many queries share one search() call
    batch: int = 5_000
    limit: int = 10
    profile: str = "lite"  # index profile of milvus/indexes.json
    index_type: str | None = None  # overrides the profile's vector index (its defaults above)
    seed: int = 0


# --- pure helpers ----------------------------------------------------------------

def parse_sizes(text: str) -> list[int]:
    """'10k,100k,1M' -> [10000, 100000, 1000000]; ascending, distinct, positive."""
    out = []
    for raw in text.split(","):
        tok = raw.strip().lower().replace("_", "")
        if not tok:
            continue
        mult = {"k": 1_000, "m": 1_000_000}.get(tok[-1], 1)
        num = tok[:-1] if mult > 1 else tok
        try:
            value = int(float(num) * mult)
        except ValueError:
            raise ValueError(f"size [{raw.strip()}] is not a number (use e.g. 10000, 10k or 1M)") from None
        if value < 1:
            raise ValueError(f"size [{raw.strip()}] must be >= 1")
        out.append(value)
    if not out:
        raise ValueError("no sizes given (use e.g. --sizes 10k,100k,1M)")
    return sorted(set(out))


def unit_vectors(seed: int, fld: int, start: int, n: int, dim: int) -> np.ndarray:
    """Rows start..start+n of vector field `fld`: a pure function of its arguments, so
    ground truth can regenerate exactly what was inserted instead of holding it."""
    rng = np.random.default_rng([seed, fld, start])
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(size, n - start)


def query_rows(seed: int, n: int, count: int) -> np.ndarray:
    """Which stored rows the queries are derived from (sorted, distinct)."""
    rng = np.random.default_rng([seed, 99])
    return np.sort(rng.choice(n, size=min(count, n), replace=False))


def noisy(v: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 98])
    g = rng.standard_normal(v.shape, dtype=np.float32)
    q = v + QUERY_NOISE * g / np.sqrt(v.shape[1])
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def latency_stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {"n": 0}
    out = {"n": int(ms.size), **{f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}}
    return {**out, "mean_ms": round(float(ms.mean()), 3), "qps_sequential": round(float(1000.0 / ms.mean()), 1)}


def batched_stats(calls: list[tuple[float, int]]) -> dict:
    """(seconds, queries) per call -> the call's median and the cost per query."""
    if not calls:
        return {"calls": 0}
    secs = np.asarray([c[0] for c in calls], dtype=np.float64)
    n = sum(c[1] for c in calls)
    return {"calls": len(calls), "queries": int(n), "queries_per_call": max(c[1] for c in calls),
            "call_p50_ms": round(float(np.median(secs)) * 1000.0, 3),
            "per_query_ms": round(float(secs.sum()) * 1000.0 / max(1, n), 3),
            "qps": round(n / max(float(secs.sum()), 1e-9), 1)}


def exact_topk(seed: int, fld: int, n: int, dim: int, batch: int, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the exact top-k inner products, streamed batch by batch."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start, m in batches(n, batch):
        s = queries @ unit_vectors(seed, fld, start, m, dim).T
        cat_s = np.concatenate([best_s, s], axis=1)
        cat_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + m), s.shape)], axis=1)
        kk = min(k, cat_s.shape[1])
        part = np.argpartition(-cat_s, kk - 1, axis=1)[:, :kk]
        best_s = np.take_along_axis(cat_s, part, axis=1)
        best_i = np.take_along_axis(cat_i, part, axis=1)
    return best_i


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth))
    return round(hits / max(1, truth.size), 4)


def curve(results: list[dict]) -> dict:
    """The catalogue-size curve: each figure of the largest size over the smallest."""
    if len(results) < 2:
        return {"sizes": [r["size"] for r in results]}
    a, b = results[0], results[-1]
    ratio = b["search"]["p50_ms"] / max(a["search"]["p50_ms"], 1e-9)
    return {
        "sizes": [r["size"] for r in results],
        "size_ratio": round(b["size"] / a["size"], 1),
        "search_p50_ratio": round(ratio, 2),
        "hybrid_p50_ratio": round(b["hybrid"]["p50_ms"] / max(a["hybrid"]["p50_ms"], 1e-9), 2),
        "index_s_per_1k": [round(r["index_s"] / r["size"] * 1000, 3) for r in results],
        "bytes_per_product": [r["memory"]["bytes_per_product"] for r in results],
        # the slope between the two ends: what one more product costs, free of fixed overhead
        "marginal_bytes_per_product": int((b["memory"]["rss_after_load_mb"] - a["memory"]["rss_after_load_mb"])
                                          * 2**20 / max(1, b["size"] - a["size"])),
        "target_search_p50_ratio": CURVE_TARGET,
        "target_met": ratio <= CURVE_TARGET,
    }


def _command_line() -> str:
    """The exact command, as the user would retype it."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "samestyle":
        argv[0] = "samestyle"
    return " ".join(argv)


def machine_info() -> dict:
    def ver(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "machine": {"cores": os.cpu_count(), "memory_gib": mem, "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {p: ver(p) for p in ("samestyle", "pymilvus", "milvus-lite", "faiss-cpu", "numpy")},
    }


# --- the measurement, one size per process -------------------------------------------

def _rss() -> dict:
    """Current and peak resident set of this process, MiB (Linux /proc)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss_mb": round(out.get("VmRSS", 0.0), 1), "peak_mb": round(out.get("VmHWM", 0.0), 1)}


def _dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def _layout(cfg: ScaleConfig):
    """The product collection exactly as samestyle.store builds it (milvus/collection.json
    + the index profile: partitions, shards, consistency level), with the vector index
    swapped when --index-type asks."""
    spec = load_collection_spec()
    # The per-field layout only: its hybrid figures are hybrid_search's (the composite
    # field a profile may add is measured by `bench search`, on real vectors).
    prof = replace(index_profile(cfg.profile), composite=None)
    if cfg.index_type:
        build, search = INDEX_DEFAULTS[cfg.index_type]
        prof = replace(prof, vector_index={"index_type": cfg.index_type, "params": dict(build)},
                       search_params=dict(search))
    schema = build_schema(spec, {"embed_dim": cfg.dim}, prof)
    return spec, prof, schema, build_index_params(spec, prof)


def _rows(spec, start: int, m: int, vecs: dict[str, np.ndarray], prefix: str = "p") -> list[dict]:
    """Rows with every required scalar filled, like an ingested product (short values:
    the catalogue's text is not what this benchmark measures)."""
    out = []
    for j in range(m):
        i = start + j
        row: dict = {}
        for f in spec.fields:
            if f.is_vector:
                row[f.name] = vecs[f.name][j]
            elif f.is_primary:
                row[f.name] = f"{prefix}{i}"
            elif f.role == "category":
                row[f.name] = f"c{i % N_CATEGORIES}"
            elif f.nullable:
                continue
            elif f.type == "BOOL":
                row[f.name] = True
            elif f.type == "VARCHAR":
                row[f.name] = f"{f.name} {i}"[: f.max_length]
        out.append(row)
    return out


def _warm(store, cfg: ScaleConfig) -> None:
    """One tiny collection through the whole cycle, then dropped: the server, the
    index library and the storage code are loaded lazily on first use, and their
    memory belongs to the baseline, not to the products."""
    name = COLLECTION + "_warm"
    # The profile's HNSW whatever --index-type says: it loads faiss all the same, and
    # IVF on 64 rows would only print clustering warnings.
    spec, prof, schema, index_params = _layout(replace(cfg, index_type=None))
    store.create_layout(name, schema, profile=prof)
    vf = spec.vector_fields
    v = {f: unit_vectors(cfg.seed, 7, 0, 64, cfg.dim) for f in vf.values()}
    store.insert(name, _rows(spec, 0, 64, v, prefix="w"))
    store.flush(name)
    store.build_index(name, index_params)
    store.load(name)
    store.search(name, _plan({vf["fused"]: v[vf["fused"]][0]}, [vf["fused"]], 1, prof), output_fields=["id"])
    store.drop(name)


def _plan(views: dict, fields: list[str], limit: int, prof):
    """The query layer's plan for a search of `fields` under the profile's search params."""
    return R.plan(views, fields, k=limit, params=dict(prof.search_params))


def run_size(n: int, cfg: ScaleConfig, work_dir: str, progress: bool = False) -> dict:
    """Measure one catalogue size in a fresh Milvus Lite database under `work_dir`."""
    db_dir = Path(work_dir) / f"size_{n}"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    base = _rss()
    spec, prof, schema, index_params = _layout(cfg)
    store = Store(milvus_client(str(db_dir / "milvus.db")), spec=spec, profile=cfg.profile)
    _warm(store, cfg)
    base_client = _rss()
    store.create_layout(COLLECTION, schema, profile=prof)
    views = list(C.VIEWS)  # field number f in unit_vectors() is the view's position
    vf = spec.vector_fields
    q_rows = query_rows(cfg.seed, n, cfg.queries)
    q_src: dict[str, list] = {v: [] for v in views}

    bar = progress_bar(total=n, desc=f"insert {n:,}", unit="row", leave=False, enabled=progress)
    insert_s = 0.0
    for start, m in batches(n, cfg.batch):
        vecs = {v: unit_vectors(cfg.seed, k, start, m, cfg.dim) for k, v in enumerate(views)}
        sel = q_rows[(q_rows >= start) & (q_rows < start + m)] - start
        for v in views:
            q_src[v].append(vecs[v][sel])
        t = time.perf_counter()
        store.insert(COLLECTION, _rows(spec, start, m, {vf[v]: vecs[v] for v in views}))
        insert_s += time.perf_counter() - t
        bar.update(m)
    bar.close()

    t = time.perf_counter()
    store.flush(COLLECTION)
    flush_s = time.perf_counter() - t
    t = time.perf_counter()
    store.build_index(COLLECTION, index_params)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    store.load(COLLECTION)
    load_s = time.perf_counter() - t

    queries = {v: noisy(np.concatenate(q_src[v]), cfg.seed + k) for k, v in enumerate(views)}
    sp = {"metric_type": C.METRIC, "params": dict(prof.search_params)}

    def search(q):
        return store.search(COLLECTION, _plan({vf["fused"]: q}, [vf["fused"]], cfg.limit, prof), output_fields=["id"])

    for q in queries["fused"][:5]:  # warm-up: first searches pay lazy index loading
        search(q)
    lat, found = [], []
    for q in queries["fused"]:
        t = time.perf_counter()
        res = search(q)
        lat.append(time.perf_counter() - t)
        found.append([int(h["id"][1:]) for h in res])

    # The same queries again, `queries_per_call` to a call: Milvus Lite's per-call work
    # (a Python pass over every stored key, search/executor_indexed.py) is paid once
    # per call, not once per query.
    blat, bfound = [], []
    for start, m in batches(len(queries["fused"]), cfg.queries_per_call):
        chunk = queries["fused"][start:start + m]
        t = time.perf_counter()
        res = store.search_batch(COLLECTION, R.batch([_plan({vf["fused"]: q}, [vf["fused"]], cfg.limit, prof)
                                                      for q in chunk]), output_fields=["id"])
        blat.append((time.perf_counter() - t, m))
        bfound.extend([int(h["id"][1:]) for h in hits] for hits in res)

    hlat = []
    for i in range(min(cfg.hybrid_queries, len(queries["fused"]))):
        # The weighted hybrid_search of the query layer, each request cut to `limit`
        # candidates (what this benchmark has always timed).
        plan = R.plan({vf[v]: queries[v][i] for v in views}, [vf[v] for v in views], k=cfg.limit,
                      weights=list(HYBRID_WEIGHTS), params=dict(prof.search_params))
        plan = replace(plan, requests=[R.AnnRequest(vf[v], [queries[v][i].tolist()], sp, cfg.limit) for v in views])
        t = time.perf_counter()
        store.search(COLLECTION, plan, output_fields=["id"])
        hlat.append(time.perf_counter() - t)

    mem = _rss()
    truth = exact_topk(cfg.seed, views.index("fused"), n, cfg.dim, cfg.batch, queries["fused"], cfg.limit)
    store.close()
    data_mb = max(0.0, mem["rss_mb"] - base_client["rss_mb"])
    return {
        "size": n,
        "index": dict(prof.vector_index),
        "insert_s": round(insert_s, 3),
        "insert_rows_per_s": round(n / max(insert_s, 1e-9), 1),
        "flush_s": round(flush_s, 3),
        "index_s": round(index_s, 3),
        "load_s": round(load_s, 3),
        "search": latency_stats(lat),
        "hybrid": latency_stats(hlat),
        "batched": batched_stats(blat),
        "recall_at_10": recall_at_k(found, truth),
        "batched_recall_at_10": recall_at_k(bfound, truth),
        "memory": {
            "process_baseline_mb": base["rss_mb"],
            "rss_after_load_mb": mem["rss_mb"],
            "peak_rss_mb": mem["peak_mb"],
            "data_mb": round(data_mb, 1),
            "bytes_per_product": int(data_mb * 2**20 / n),
            "raw_vectors_mb": round(n * len(views) * cfg.dim * 4 / 2**20, 1),
        },
        "disk_mb": _dir_mb(db_dir),
    }


def run_scale(sizes: list[int], cfg: ScaleConfig, work_dir: str | Path | None = None, *,
              progress: bool = False, keep: bool = False, on_result=None) -> dict:
    """Run every size (each in a fresh spawned process) and return the full report."""
    own = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="samestyle-scale-")) if own else Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    failed = None
    try:
        for n in sizes:
            log.info("scale: %d products", n)
            try:
                # the size's worker goes when we do: a killed run leaves no orphan on the cores
                with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                                         initializer=die_with_parent, initargs=(os.getpid(),)) as ex:
                    r = ex.submit(run_size, n, cfg, str(root), progress).result()
            except Exception as exc:  # noqa: BLE001 - keep the sizes already measured
                failed = {"size": n, "error": f"{type(exc).__name__}: {exc}"}
                log.error("scale: %d products failed (%s); reporting the sizes measured so far", n, exc)
                break
            results.append(r)
            if on_result:
                on_result(r)
            if not keep:
                shutil.rmtree(root / f"size_{n}", ignore_errors=True)
    finally:
        if own and not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "benchmark": "scale",
        "command": _command_line(),
        **machine_info(),
        "config": asdict(cfg),
        "results": results,
        "curve": curve(results),
        **({"failed": failed} if failed else {}),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def plot(report: dict, path: str | Path) -> Path:
    """Four panels against catalogue size: insert rate, index build, latency, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = report["results"]
    x = [r["size"] for r in rs]
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    panels = {
        (0, 0): ("insert rate (products/s)", [("", [r["insert_rows_per_s"] for r in rs], "o-")]),
        (0, 1): (f"index build, 3 fields (s) [{rs[0]['index']['index_type']}]",
                 [("", [r["index_s"] for r in rs], "o-")]),
        (1, 0): ("search latency (ms)", [(f"{k} {p}", [r[k][f"{p}_ms"] for r in rs], st)
                                         for k, st in (("search", "o-"), ("hybrid", "s--")) for p in ("p50", "p99")]),
        (1, 1): ("memory (MiB)", [("RSS after load", [r["memory"]["rss_after_load_mb"] for r in rs], "o-"),
                                  ("peak RSS", [r["memory"]["peak_rss_mb"] for r in rs], "s--"),
                                  ("raw vectors", [r["memory"]["raw_vectors_mb"] for r in rs], ":")]),
    }
    for pos, (title, lines) in panels.items():
        a = ax[pos]
        for label, ys, style in lines:
            a.plot(x, ys, style, label=label or None)
        if pos == (1, 0):  # latency: the batched pass, and the curve target against the smallest size
            if all("batched" in r for r in rs):
                qpc = rs[0]["batched"].get("queries_per_call")
                a.plot(x, [r["batched"]["per_query_ms"] for r in rs], "^:", label=f"search, {qpc} per call (per query)")
            if len(rs) > 1:
                a.axhline(CURVE_TARGET * rs[0]["search"]["p50_ms"], color="grey", lw=0.8, ls="-.",
                          label=f"target: {CURVE_TARGET:g}x the smallest p50")
        # latency, build time and memory span decades between 10k and 1M: log-log shows
        # the slope (1 = linear in the catalogue); the insert rate stays linear
        a.set(title=title, xscale="log", yscale="linear" if pos == (0, 0) else "log", xlabel="products")
        a.grid(alpha=0.3)
        if len(lines) > 1:
            a.legend(fontsize=8)
    m = report["machine"]
    fig.suptitle(f"samestyle bench scale: Milvus Lite {report['versions'].get('milvus-lite')}, "
                 f"{m['cores']} cores, {m['memory_gib']} GiB")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# --- CLI ------------------------------------------------------------------------

def _human(report: dict) -> None:
    click.echo(f"{'products':>10} {'insert/s':>9} {'index s':>8} {'p50 ms':>7} {'p99 ms':>7} "
               f"{'hyb p50':>7} {'batch/q':>7} {'recall':>6} {'RSS MiB':>8} {'B/prod':>7}")
    for r in report["results"]:
        click.echo(f"{r['size']:>10,} {r['insert_rows_per_s']:>9.0f} {r['index_s']:>8.1f} "
                   f"{r['search']['p50_ms']:>7.1f} {r['search']['p99_ms']:>7.1f} {r['hybrid']['p50_ms']:>7.1f} "
                   f"{r['batched']['per_query_ms']:>7.1f} "
                   f"{r['recall_at_10']:>6.3f} {r['memory']['rss_after_load_mb']:>8.0f} "
                   f"{r['memory']['bytes_per_product']:>7}")
    c = report["curve"]
    if "search_p50_ratio" in c:
        click.echo(f"search p50 grows {c['search_p50_ratio']}x over a {c['size_ratio']}x larger catalogue "
                   f"(target <= {c['target_search_p50_ratio']}x: {'met' if c['target_met'] else 'missed'})")
    if report.get("failed"):
        click.echo(f"size {report['failed']['size']:,} failed: {report['failed']['error']}", err=True)


@click.command("scale")
@click.option("--sizes", envvar="SAMESTYLE_BENCH_SIZES", default="10k,100k,1M", show_default=True,
              help="Catalogue sizes, comma separated (k and M suffixes allowed).")
@click.option("--quick", is_flag=True, help=f"Small run for tests and smoke checks: sizes {QUICK_SIZES}, fewer queries.")
@click.option("--queries", type=click.IntRange(1), default=200, show_default=True, help="Single-field searches per size.")
@click.option("--hybrid-queries", type=click.IntRange(1), default=50, show_default=True,
              help="3-field weighted hybrid searches per size.")
@click.option("--queries-per-call", type=click.IntRange(1), default=50, show_default=True,
              help="Queries per search() call in the batched pass (the same queries as the single-query pass).")
@click.option("--batch", type=click.IntRange(1, 50_000), default=5_000, show_default=True, help="Rows per insert call.")
@click.option("--profile", type=click.Choice(LITE_PROFILES), default="lite", show_default=True,
              help="Index profile of milvus/indexes.json (the ones Milvus Lite can build).")
@click.option("--index-type", type=click.Choice(sorted(INDEX_DEFAULTS)),
              help="Replace the profile's vector index by this type, with default parameters (capacity model).")
@click.option("--work-dir", envvar="SAMESTYLE_BENCH_DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Where the Milvus Lite databases go (default: a temporary directory).")
@click.option("--keep", is_flag=True, help="Keep the databases after the run.")
@click.option("--plot", "do_plot", is_flag=True, help="Write the PNG plot (and the JSON report beside it).")
@click.option("--plot-file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PLOT,
              show_default=True, help="Where --plot writes the PNG.")
@json_option
def command(sizes, quick, queries, hybrid_queries, queries_per_call, batch, profile, index_type, work_dir, keep,
            do_plot, plot_file, as_json):
    """Insert rate, index build time, search latency and memory from 10k to 1M products.

    Synthetic unit vectors in the product collection's layout (milvus/collection.json:
    three vector fields, category partition key), each size in a fresh embedded Milvus
    Lite database and its own process. On 2 idle cores 10k,100k,1M took 34 min and
    8 GB of memory at 1M (3 GB of raw vectors); --sizes 10k,100k takes about 4 min.
    """
    try:
        size_list = list(QUICK_SIZES) if quick else parse_sizes(sizes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sizes") from None
    if quick:
        queries, hybrid_queries, queries_per_call = min(queries, 30), min(hybrid_queries, 10), min(queries_per_call, 10)
    cfg = ScaleConfig(queries=queries, hybrid_queries=hybrid_queries, queries_per_call=queries_per_call, batch=batch,
                      profile=profile, index_type=index_type)
    show = progress_enabled() and not as_json

    def each(r):
        # on stderr as each size ends: a 1M size takes half an hour and --json prints only at the end
        click.echo(f"scale {r['size']}: insert {r['insert_rows_per_s']:.0f} rows/s, index {r['index_s']:.1f} s, "
                   f"search p50 {r['search']['p50_ms']:.1f} ms, hybrid p50 {r['hybrid']['p50_ms']:.1f} ms, "
                   f"batched {r['batched']['per_query_ms']:.1f} ms/query", err=True)

    report = run_scale(size_list, cfg, work_dir, progress=show, keep=keep, on_result=each)
    if do_plot:
        report["plot"] = str(plot(report, plot_file))
        Path(plot_file).with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    emit(report, as_json, _human)
    if report.get("failed"):
        raise SystemExit(1)

"""`samestyle bench ingest`: end-to-end ingestion throughput and memory.

Measured in one run, on the same products (by default Myntra products that have a
224 px photo in ../shared/datasets/myntra/images_224):
- end to end: `samestyle ingest`'s pipeline (read -> check -> encode -> upsert) into a
  fresh Milvus Lite, products/s over the pipeline (start-up excluded, flush+load
  reported apart);
- the encoder ceiling: the in-process ONNX Runtime encoder (OnnxEncoder) on the same
  products with photos already in memory, batch 32: what ingestion could reach if
  reading, checking and Milvus cost nothing;
- the naive path: one product per encode call and one insert call per product;
- memory (--memory-products M): `samestyle ingest` of M products in a subprocess,
  its resident memory sampled against products done, so "flat" reads off as the peak
  at the first --memory-mark products against the peak over the whole run.
Figures are printed (JSON with --json), never asserted; --quick is a smoke run.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import click

from ..encoders.base import ProductInput
from ..encoders.onnx import OnnxEncoder
from ..output import echo_sections, emit, json_option
from . import plot_options
from ..config import ROOT, Settings
from ..serve.milvus import MilvusServer
from ..store import Store
from samestyle.loaders.jobs import ingest_catalogue, manifest_of, open_encoder
from samestyle.loaders.photos import PhotoLoader, PhotoOptions
from samestyle.loaders.pipeline import IngestOptions
from samestyle.loaders.sources import Source
from samestyle.loaders.transform import ColumnMap, Parsed, Product, Transformer

MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra"
DEFAULT_PLOT = ROOT / "docs" / "benchmarks" / "ingest.png"


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def prepare_catalogue(src: Path, photo_dir: Path, n: int, out: Path, *, need_photo: bool = True) -> int:
    """Stream the first n rows of `src` whose photo exists in `photo_dir` (matched by
    file name) into `out`, with absolute photo paths. Returns the row count."""
    count = 0
    with src.open(newline="", encoding="utf-8") as fi, out.open("w", newline="", encoding="utf-8") as fo:
        reader = csv.DictReader(fi)
        writer = csv.DictWriter(fo, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        for row in reader:
            photo = photo_dir / Path(row.get("image") or f"{row.get('id')}.jpg").name
            if need_photo and not photo.is_file():
                continue
            row["image"] = str(photo.resolve())
            writer.writerow(row)
            count += 1
            if count >= n:
                break
    return count


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            continue
    return out


class Sampler:
    """Samples (seconds, products done, RSS of pid, RSS of its children) in a thread."""

    def __init__(self, pid: int, done, interval: float = 0.25):
        self.pid, self.done, self.interval = pid, done, interval
        self.samples: list[tuple[float, int, float, float]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.perf_counter()

    def _run(self):
        while not self._stop.is_set():
            kids = sum(rss_mb(k) for k in descendants(self.pid))
            self.samples.append((time.perf_counter() - self.t0, int(self.done()), rss_mb(self.pid), kids))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def peak_until(self, products: int) -> float:
        vals = [s[2] for s in self.samples if s[1] <= products]
        return round(max(vals), 1) if vals else 0.0

    @property
    def peak(self) -> float:
        return round(max((s[2] for s in self.samples), default=0.0), 1)


def encoder_ceiling(encoder, catalogue: Path, n: int, batch: int = 32) -> dict:
    with catalogue.open(newline="", encoding="utf-8") as f:
        rows = [r for _, r in zip(range(n), csv.DictReader(f))]
    items = [ProductInput(r["id"], Path(r["image"]).read_bytes(), r.get("title")) for r in rows]
    encoder.encode(items[:batch], batch_size=batch)  # warm-up: first ORT runs allocate
    t = time.perf_counter()
    encoder.encode(items, batch_size=batch)
    s = time.perf_counter() - t
    return {"products": len(items), "batch": batch, "seconds": round(s, 2), "products_per_s": round(len(items) / s, 2)}


def naive_path(encoder, catalogue: Path, n: int, work: Path, photo_dir: Path) -> dict:
    """One product per encode call, one insert per product: the loop a first script
    writes. Shares the pipeline's checks and row layout, so only batching differs.
    The prepared catalogue points at `photo_dir` (absolute paths outside its own
    temporary folder), so that folder is a photo root, as `--photo-root` makes it."""
    settings = Settings(data_dir=work / "naive")
    src = Source(catalogue)
    with Store.open(settings) as store:
        name = store.create_version(manifest_of(encoder))
        tf = Transformer(store.spec, ColumnMap(), encoder.model_version, getattr(encoder, "consts", None), src.columns)
        photos = PhotoLoader(src.base_dir, PhotoOptions(roots=(str(photo_dir),)))
        done = 0
        t = time.perf_counter()
        for raw in src:
            if done >= n:
                break
            p = tf.parse(raw)
            if not isinstance(p, Parsed):
                continue
            data = photos.load(p.image_ref) if p.image_ref is not None else None
            prod = tf.finish(p, data, photos.uri(p.image_ref, data) if data else "")
            if not isinstance(prod, Product):
                continue
            enc = encoder.encode_batch([prod.input])
            store.upsert(name, [tf.row(prod, enc, 0)])  # one call per product (fills a composite field)
            done += 1
        s = time.perf_counter() - t
    return {"products": done, "seconds": round(s, 2), "products_per_s": round(done / s, 2) if s else 0.0}


def end_to_end(settings, encoder, catalogue: Path, work: Path, batch: int, workers: int, photo_dir: Path) -> dict:
    s = replace(settings, data_dir=work / "e2e", milvus_uri=None)  # never a user's server
    state = {"read": 0}

    class _Progress:
        def start(self, source, ck):
            pass

        def update(self, report, n):
            state["read"] = report.read

    with Store.open(s) as store, Sampler(os.getpid(), lambda: state["read"]) as sampler:
        t = time.perf_counter()
        rep = ingest_catalogue(catalogue, store=store, encoder=encoder, columns=ColumnMap(), data_dir=s.data_dir,
                               options=IngestOptions(batch_size=batch, encode_workers=workers),
                               photo_options=PhotoOptions(roots=(str(photo_dir),)), progress=_Progress())
        wall = time.perf_counter() - t
    return {"products": rep["read"], "loaded": rep["loaded"], "failed": rep["failed"],
            "pipeline_seconds": round(rep["seconds"], 2), "products_per_s": rep["products_per_s"],
            "seconds_with_flush_and_load": round(wall, 2), "peak_rss_mb": sampler.peak,
            "rss_series": [(d, round(r, 1)) for _, d, r, _ in sampler.samples]}


def _start_milvus(data: Path):
    """A Milvus Lite server of our own (as `samestyle serve` starts one), so the ingest
    process's memory is the pipeline's and the database's is measured apart."""
    data.mkdir(parents=True, exist_ok=True)
    return MilvusServer(data / "db", log_dir=data).start()


def memory_run(settings, catalogue: Path, work: Path, encoder_kind: str, marks: list[int], batch: int,
               photo_dir: Path, milvus_dir: Path | None = None) -> dict:
    """`samestyle ingest` in a subprocess against a Milvus Lite server in another, the
    ingest process's RSS (and its children's: a local Triton) sampled against
    products done, read from its checkpoint (which advances per batch)."""
    data = work / "memory"
    server = _start_milvus(milvus_dir or work / "memory-milvus")
    uri = server.uri
    env = dict(os.environ, SAMESTYLE_DATA_DIR=str(data), SAMESTYLE_LOG_LEVEL="WARNING", SAMESTYLE_MILVUS_URI=uri,
               SAMESTYLE_MILVUS_PROFILE="lite")
    cmd = [sys.executable, "-c", "from samestyle.cli.main import main; main()", "ingest", str(catalogue),
           "--encoder", encoder_kind, "--batch-size", str(batch), "--photo-root", str(photo_dir), "--json",
           "--no-progress"]
    ck_dir = data / "checkpoints"
    last = [0]

    def done() -> int:
        # The checkpoint is deleted when the run completes: keep the last count seen.
        for f in ck_dir.glob("*.json"):
            try:
                last[0] = max(last[0], int(json.loads(f.read_text())["counts"].get("read", 0)))
            except (OSError, ValueError, KeyError):
                pass
        return last[0]

    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with Sampler(proc.pid, done, interval=0.5) as sampler, Sampler(server.pid, done, interval=0.5) as db:
            out, err = proc.communicate()
    finally:
        server.stop()
    if proc.returncode not in (0, 1):
        raise click.ClickException(f"memory run failed ({proc.returncode}): {err[-1500:]}")
    rep = json.loads(out)
    series = [(d, round(r, 1), round(k, 1)) for _, d, r, k in sampler.samples]
    return {"products": rep["read"], "products_per_s": rep["products_per_s"], "encoder": encoder_kind,
            "peak_rss_mb": sampler.peak, "peak_rss_mb_at": {str(m): sampler.peak_until(m) for m in marks
                                                            if m < rep["read"]},
            "encoder_server_peak_rss_mb": round(max((x[2] for x in series), default=0), 1),
            "milvus_server_peak_rss_mb": db.peak, "rss_series": series,
            "milvus_rss_series": [(d, round(r, 1)) for _, d, r, _ in db.samples]}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["naive", "end to end", "encoder ceiling"]
    vals = [report["naive"]["products_per_s"], report["end_to_end"]["products_per_s"],
            report["ceiling"]["products_per_s"]]
    a.bar(names, vals, color=["#bbb", "#3b7dd8", "#2a9d57"])
    a.set_ylabel("products/s")
    a.set_title(f"ingest throughput ({report['end_to_end']['products']} products, {report['encoder']})")
    for i, v in enumerate(vals):
        a.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    runs = [("end to end (embedded Milvus)", report["end_to_end"]["rss_series"])]
    if report.get("memory"):
        runs.append((f"ingest process ({report['memory']['products']} products)", report["memory"]["rss_series"]))
        runs.append(("its Milvus Lite server", report["memory"]["milvus_rss_series"]))
    for label, series in runs:
        b.plot([s[0] for s in series], [s[1] for s in series], label=label)
    b.set_xlabel("products done")
    b.set_ylabel("resident memory, MB")
    b.set_ylim(bottom=0)
    b.legend()
    b.set_title("memory while ingesting")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command("ingest")
@click.option("--catalogue", "src", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=MYNTRA / "products.csv", show_default=True, help="Source catalogue (CSV with id,image,title).")
@click.option("--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Photo folder for the throughput runs [default: images_224 beside the catalogue, else images].")
@click.option("--products", "n", type=click.IntRange(1), default=2000, show_default=True,
              help="Products in the end-to-end run.")
@click.option("--ceiling-products", type=click.IntRange(1), default=512, show_default=True)
@click.option("--naive-products", type=click.IntRange(1), default=128, show_default=True)
@click.option("--memory-products", type=click.IntRange(0), default=0, show_default=True,
              help="Products in the memory run (0 = skip; 42222 = all of Myntra, using its 60x80 images/).")
@click.option("--memory-mark", "marks", type=click.IntRange(1), multiple=True, default=(4000,), show_default=True,
              help="Report the memory run's peak RSS up to this many products (repeatable).")
@click.option("--encoder", "encoder_kind", type=click.Choice(["triton", "onnx"]), default="triton", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--keep-milvus", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the memory run's Milvus Lite data here (serve it with `python -m milvus_lite server "
                   "--data-dir DIR/db` to search the ingested catalogue afterwards).")
@click.option("--quick", is_flag=True, help="Smoke run: 32 products, 8 naive, memory run on 48; figures meaningless.")
@plot_options(DEFAULT_PLOT)
@json_option
@click.pass_obj
def command(settings, src, photos, n, ceiling_products, naive_products, memory_products, marks, encoder_kind,
            batch_size, keep_milvus, quick, do_plot, plot_file, as_json):
    """End-to-end ingest products/s against the in-process encoder ceiling and the
    naive path, and resident memory against products done (flat = bounded)."""
    from ..export import ensure_onnx

    if quick:
        n, ceiling_products, naive_products = 32, 32, 8
        memory_products = memory_products and 48
        marks = (16,)
    if photos is None:
        photos = next((p for p in (src.parent / "images_224", src.parent / "images") if p.is_dir()), src.parent)
    workers = 2 if encoder_kind == "triton" else 1
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        cat = work / "e2e.csv"
        got = prepare_catalogue(src, photos, max(n, ceiling_products, naive_products), cat)
        if got == 0:
            raise click.UsageError(f"no rows of {src} have a photo in {photos}")
        _say(f"bench ingest: {got} products from {src} with photos in {photos}")
        report = {"benchmark": "ingest", "catalogue": str(src), "photos": str(photos), "encoder": encoder_kind,
                  "batch_size": batch_size, "quick": quick,
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version()}}
        ceiling_enc = OnnxEncoder(ensure_onnx(settings.model_dir))
        _say("  encoder ceiling (in-process ONNX Runtime)...")
        report["ceiling"] = encoder_ceiling(ceiling_enc, cat, ceiling_products, batch=batch_size)
        with open_encoder(settings, encoder_kind) as enc:
            report["model_version"] = enc.model_version
            e2e_cat = work / "e2e-n.csv"
            prepare_catalogue(cat, photos, n, e2e_cat)
            _say(f"  end to end ({encoder_kind})...")
            report["end_to_end"] = end_to_end(settings, enc, e2e_cat, work, batch_size, workers, photos)
            _say("  naive path...")
            report["naive"] = naive_path(enc, cat, naive_products, work, photos)
        if memory_products:
            mem_cat = work / "memory.csv"
            mem_photos = src.parent / "images" if (src.parent / "images").is_dir() else photos
            prepare_catalogue(src, mem_photos, memory_products, mem_cat)
            _say(f"  memory run: {memory_products} products in a subprocess...")
            report["memory"] = memory_run(settings, mem_cat, work, encoder_kind, sorted(marks), batch_size,
                                          mem_photos, keep_milvus)
            if keep_milvus:
                report["memory"]["milvus_data_dir"] = str(keep_milvus)
    e, c, nv = (report[k]["products_per_s"] for k in ("end_to_end", "ceiling", "naive"))
    report["summary"] = {"end_to_end_vs_ceiling": round(e / c, 2) if c else None,
                         "end_to_end_vs_naive": round(e / nv, 2) if nv else None}
    if do_plot:
        plot(report, plot_file)
        report["plot"] = str(plot_file)

    def human(r):
        click.echo(f"{'run':22s} {'products':>9s} {'products/s':>11s}")
        for k in ("naive", "end_to_end", "ceiling"):
            click.echo(f"{k:22s} {r[k]['products']:>9d} {r[k]['products_per_s']:>11.1f}")
        click.echo(f"end to end: {r['summary']['end_to_end_vs_ceiling']} x the encoder ceiling, "
                   f"{r['summary']['end_to_end_vs_naive']} x the naive path; peak RSS {r['end_to_end']['peak_rss_mb']} MB")
        echo_sections(r, {"memory": lambda m: f"memory run: {m['products']} products, peak RSS {m['peak_rss_mb']} MB "
                                              f"(up to each mark: {m['peak_rss_mb_at']})"})

    emit(report, as_json, human)

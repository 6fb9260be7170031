"""Figures and screenshots of the search page (docs/web.md): ingest a catalogue (or its
first --limit rows) with the in-process ONNX encoder into an embedded Milvus Lite,
serve `samestyle serve`'s app, and drive Debian's Chromium over it.

    python docs/benchmarks/web_page.py CATALOGUE.csv --limit 1000 --query "blue denim jacket" \\
        --shots docs/img --prefix myntra --json docs/benchmarks/results/web_myntra.json

Measures: thumbnail storage per product, thumbnail time per photo (make() alone, over
the photos ingested), the page's load (navigation to DOMContentLoaded and to the facets
drawn), and a text search from Enter to every photo decoded, as the browser's clock sees
them. Screenshots are palette PNGs (small).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def small_png(page, path: Path, **kw) -> None:
    from PIL import Image

    page.screenshot(path=str(path), **kw)
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("catalogue", type=Path)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--query", default="striped t-shirt")
    ap.add_argument("--shots", type=Path)
    ap.add_argument("--prefix", default="page")
    ap.add_argument("--json", dest="json_out", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from samestyle.config import Settings
    from samestyle.encoders.onnx import OnnxEncoder
    from samestyle.export import ensure_onnx
    from samestyle.http import create_app
    from samestyle.loaders.jobs import ingest_catalogue
    from samestyle.loaders.pipeline import IngestOptions
    from samestyle.loaders.transform import ColumnMap
    from samestyle.query.search import Searcher
    from samestyle.store import Store
    from samestyle.thumbs import FOLDER, make
    from tests.fixtures.milvus import free_port

    tmp = Path(tempfile.mkdtemp(prefix="web-page-"))
    settings = Settings(data_dir=tmp)
    enc = OnnxEncoder(ensure_onnx(settings.model_dir))
    store = Store.open(settings)
    t0 = time.perf_counter()
    report = ingest_catalogue(a.catalogue, store=store, encoder=enc, columns=ColumnMap(), data_dir=tmp,
                              options=IngestOptions(batch_size=32, limit=a.limit))
    ingest_s = time.perf_counter() - t0
    thumbs = sorted((tmp / FOLDER).rglob("*.jpg"))
    sizes = [p.stat().st_size for p in thumbs]
    # Thumbnail cost alone, on the first 200 photos the catalogue names
    import csv

    with a.catalogue.open(newline="", encoding="utf-8") as f:
        refs = [r["image"] for _, r in zip(range(200), csv.DictReader(f)) if r.get("image")]
    photos = [(a.catalogue.parent / r).read_bytes() for r in refs if (a.catalogue.parent / r).is_file()]
    t1 = time.perf_counter()
    for p in photos:
        make(p)
    per_thumb_ms = (time.perf_counter() - t1) * 1000 / max(1, len(photos))

    searcher = Searcher(store, "products", encoder=enc)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, searcher=searcher), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/"
    loads, searches = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for i in range(a.repeat):
            ctx = browser.new_context(viewport={"width": 1280, "height": 860})
            page = ctx.new_page()
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#filters select').length > 0")
            loads.append(page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
                return {dom_ms: n.domContentLoadedEventEnd, facets_ms: performance.now()}; }"""))
            page.fill("#q-text", a.query)
            start = page.evaluate("performance.now()")
            page.press("#q-text", "Enter")
            page.wait_for_function("Number(document.body.dataset.runs || 0) > 0")
            page.wait_for_function("Array.from(document.querySelectorAll('#grid img')).every(i => i.complete)")
            searches.append(page.evaluate("performance.now()") - start)
            if i == a.repeat - 1 and a.shots:
                a.shots.mkdir(parents=True, exist_ok=True)
                small_png(page, a.shots / f"{a.prefix}-text-search.png")
                page.click("#grid > li.card button.more")
                page.wait_for_function("Number(document.body.dataset.runs || 0) > 1")
                page.wait_for_function("Array.from(document.querySelectorAll('#grid img')).every(i => i.complete)")
                small_png(page, a.shots / f"{a.prefix}-more-of-this-style.png")
                page.click("#modes button[data-mode=dedup]")
                page.wait_for_function("Number(document.body.dataset.runs || 0) > 2")
                page.wait_for_timeout(500)  # screenshot only: let the first strips' photos paint
                small_png(page, a.shots / f"{a.prefix}-duplicates.png")
            ctx.close()
        browser.close()
    server.should_exit = True
    out = {
        "catalogue": str(a.catalogue), "products": report["loaded"] + report["unchanged"], "ingest_s": round(ingest_s, 1),
        "thumbnails": len(sizes), "thumb_bytes_mean": round(statistics.mean(sizes)) if sizes else None,
        "thumb_bytes_max": max(sizes) if sizes else None, "thumb_bytes_total": sum(sizes),
        "thumb_ms_per_photo": round(per_thumb_ms, 2), "photos_timed": len(photos),
        "page_dom_ms_median": round(statistics.median(l["dom_ms"] for l in loads), 1),
        "page_facets_ms_median": round(statistics.median(l["facets_ms"] for l in loads), 1),
        "text_search_to_photos_ms_median": round(statistics.median(searches), 1),
        "repeat": a.repeat, "query": a.query,
    }
    print(json.dumps(out, indent=2))
    if a.json_out:
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(json.dumps(out, indent=2) + "\n")
    store.close()
    enc.close()


if __name__ == "__main__":
    main()

"""Serving cost of one model against another (docs/model.md, issue 17 item 6): products/s of
the whole product encode that ingest runs (photo decode + image graph, title tokenising + text
graph, the fusion graph's three views), in-process ONNX Runtime, each model exported as
`samestyle export` exports it. The same real Myntra products for both, the two models
interleaved call by call so both see the same machine load; median of the calls.
Ingest runs at 0.97 of this in-process ceiling (docs/benchmarks/README.md), so the ratio is
the ingest ratio up to Milvus's share.

    .venv/bin/python docs/benchmarks/model_encode_speed.py MODEL_A MODEL_B ../shared/datasets/myntra [OUT.json]
"""
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from samestyle.encoders.base import ProductInput
from samestyle.encoders.onnx import OnnxEncoder
from samestyle.export import export_onnx

BATCH, CALLS, THREADS = 32, 12, 2


def main(model_a: str, model_b: str, myntra: str, out: str | None = None) -> dict:
    root = Path(myntra)
    rows = list(csv.DictReader(open(root / "products.csv", newline="", encoding="utf-8")))[: BATCH * CALLS]
    products = [ProductInput(r["id"], (root / r["image"]).read_bytes(), r["title"]) for r in rows]
    encoders = {}
    for m in (model_a, model_b):
        d = Path(tempfile.mkdtemp())
        export_onnx(Path(m), d)
        encoders[m] = OnnxEncoder(d, threads=THREADS, max_batch=BATCH)
        encoders[m].encode_batch(products[:BATCH])  # warm-up
    times = {m: [] for m in encoders}
    for k in range(CALLS):
        batch = products[k * BATCH : (k + 1) * BATCH]
        for m, enc in (encoders.items() if k % 2 == 0 else reversed(encoders.items())):
            t0 = time.perf_counter()
            enc.encode_batch(batch)
            times[m].append(time.perf_counter() - t0)
    rate = {m: BATCH / float(np.median(t)) for m, t in times.items()}
    report = {"benchmark": "model encode speed", "batch": BATCH, "calls": CALLS, "threads": THREADS,
              "models": {m: {"model_version": encoders[m].model_version, "products_per_s": round(rate[m], 1)}
                         for m in encoders},
              "ratio_b_over_a": round(rate[model_b] / rate[model_a], 3),
              "command": "docs/benchmarks/model_encode_speed.py " + " ".join(sys.argv[1:])}
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5]), indent=1))

"""Write the reference embeddings of the shipped model (run after changing it):

    .venv/bin/python -m tests.model.golden.write

Three products of the generated test catalogue (seeded, so the same photos and titles on
every machine) through the in-process ONNX encoder; the three views, rounded to 6 places."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILE = HERE / "shipped_embeddings.json"
IDS = ("P00001", "P00002", "P00005")


def products(catalogue_root: Path, csv_path: Path):
    import csv

    from samestyle.encoders.base import ProductInput

    with csv_path.open() as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    return [ProductInput(i, (catalogue_root / rows[i]["image"]).read_bytes(), rows[i]["title"]) for i in IDS]


def main() -> None:
    from samestyle.config import DEFAULT_MODEL_DIR
    from samestyle.encoders.onnx import OnnxEncoder
    from samestyle.export import ensure_onnx
    from samestyle.loaders.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        cat = generate(Path(tmp))
        enc = OnnxEncoder(ensure_onnx(DEFAULT_MODEL_DIR))
        out = enc.encode_batch(products(cat.root, cat.csv_path))
        data = {"model_version": enc.model_version, "ids": list(IDS),
                "views": {v: [[round(float(x), 6) for x in row] for row in out.view(v)] for v in ("image", "text", "fused")}}
    FILE.write_text(json.dumps(data) + "\n")
    print(f"wrote {FILE} for {data['model_version']}")


if __name__ == "__main__":
    main()

"""Stored reference embeddings pin the shipped model's output: three products of the
generated catalogue through the in-process ONNX encoder must give the vectors written
by `python -m tests.model.golden.write` (<= 1e-4), so a changed graph, preprocessing or
weight file cannot pass unnoticed while the runtimes still agree with each other."""

import json

import numpy as np

from samestyle.config import DEFAULT_MODEL_DIR
from samestyle.model import checkpoint
from tests.model.golden import write as golden


def test_shipped_model_reproduces_its_reference_embeddings(onnx_encoder, catalogue):
    ref = json.loads(golden.FILE.read_text())
    version = checkpoint.read_manifest(DEFAULT_MODEL_DIR)["model_version"]
    assert ref["model_version"] == version, (
        f"the shipped model is {version}, the reference embeddings are of {ref['model_version']}: "
        "after changing the model on purpose, run `python -m tests.model.golden.write`")
    out = onnx_encoder.encode_batch(golden.products(catalogue.root, catalogue.csv_path))
    for view, rows in ref["views"].items():
        got = out.view(view)
        assert np.abs(got - np.asarray(rows, dtype=np.float32)).max() <= 1e-4, view
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4), view

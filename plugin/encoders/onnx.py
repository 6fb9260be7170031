"""In-process ONNX Runtime encoder: the same graphs and preprocessing as the Triton
repository, without a server. For offline use, feature caching, and as the ceiling
in benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import contract as C
from ..errors import EncodeError
from ..model import preprocess as pp
from ..model.onnx import session as _session
from .base import EncodedBatch, Encoder, ProductInput
from .batch import encode_batch


class OnnxEncoder(Encoder):
    def __init__(self, onnx_dir: str | Path, threads: int | None = None, max_batch: int = 32):
        d = Path(onnx_dir)
        self.consts = json.loads((d / "preprocess.json").read_text())
        self.manifest = json.loads((d / "manifest.json").read_text())
        self.dim = int(self.manifest["embed_dim"])
        self.model_version = self.manifest["model_version"]
        self.colour_dims = C.colour_dims(self.manifest)
        self.max_batch = max_batch
        self.max_len = int(self.consts["max_text_len"])
        self.tokenizer = pp.load_tokenizer(str(d / "tokenizer.json"), self.max_len)
        self.image = _session(d / C.ONNX_IMAGE_BACKBONE, threads)
        self.text = _session(d / C.ONNX_TEXT_BACKBONE, threads)
        self.fusion = _session(d / C.ONNX_FUSION, threads)

    # -- the three stages, also used directly for feature caching ------------------
    def image_tokens(self, pixel_values: np.ndarray) -> np.ndarray:
        return self.image.run([C.T_IMAGE_TOKENS], {C.T_PIXEL_VALUES: pixel_values})[0]

    def text_tokens(self, enc: dict) -> np.ndarray:
        return self.text.run([C.T_TEXT_TOKENS], {k: enc[k] for k in (C.T_INPUT_IDS, C.T_ATTENTION_MASK, C.T_TOKEN_TYPE_IDS)})[0]

    def fuse(self, image_tokens, image_mask, text_tokens, attention_mask) -> dict[str, np.ndarray]:
        feeds = pp.view_inputs(image_tokens, image_mask, text_tokens, attention_mask)
        return pp.split_views(self.fusion.run([C.T_EMBEDDING], feeds)[0])

    def encode_batch(self, products: Sequence[ProductInput]) -> EncodedBatch:
        def run_backbones(pixel_values, text_inputs):
            return (None if pixel_values is None else self.image_tokens(pixel_values),
                    None if text_inputs is None else self.text_tokens(text_inputs))

        def run_fusion(feeds):
            return self.fusion.run([C.T_EMBEDDING], feeds)[0]

        views, failures = encode_batch([p.image for p in products], [p.text for p in products], self.consts,
                                       self.tokenizer, self.dim, run_backbones, run_fusion)
        errors: list[EncodeError | None] = [
            None if exc is None else EncodeError(f"product [{p.id}]: {exc}", product_id=p.id, field=exc.field,
                                             too_large=exc.too_large)
            for p, exc in zip(products, failures)]
        return EncodedBatch([p.id for p in products], views["image"], views["text"], views["fused"], errors)

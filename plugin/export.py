"""ONNX export of the three graphs (image backbone, text backbone, fusion encoder)
with named inputs/outputs and a dynamic batch axis, plus the files the serving side
needs beside them (tokenizer.json, preprocess.json, manifest.json).

`export_onnx` is the pure-ish builder used by `samestyle export` (which then lays
out a Triton model repository, see samestyle.triton_repo) and by the in-process ONNX
Runtime encoder."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from . import contract as C
from .config import onnx_root
from .model import checkpoint
from .model.backbones import TextBackbone
from .model.onnx import export_graph as _export, export_text_backbone

log = logging.getLogger(__name__)
FILES = (C.ONNX_IMAGE_BACKBONE, C.ONNX_TEXT_BACKBONE, C.ONNX_FUSION, "tokenizer.json", "preprocess.json", "manifest.json")


def is_complete(out_dir: str | Path, manifest: dict | None = None) -> bool:
    d = Path(out_dir)
    if not all((d / f).exists() for f in FILES):
        return False
    if manifest is not None:
        try:
            return json.loads((d / "manifest.json").read_text())["model_version"] == manifest["model_version"]
        except (OSError, ValueError, KeyError):
            return False
    return True


def export_onnx(model_dir: str | Path, out_dir: str | Path, *, image_weights=None, text_path=None) -> dict:
    """Export the checkpoint in `model_dir` (and its backbones) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fusion, manifest = checkpoint.load(model_dir)
    L = manifest["max_text_len"]
    S = C.IMAGE_SIZE
    batch = {0: "batch"}
    with torch.no_grad():
        ib = checkpoint.image_backbone(model_dir, manifest, image_weights)
        _export(ib, (torch.zeros(2, 3, S, S),), out / C.ONNX_IMAGE_BACKBONE,
                [C.T_PIXEL_VALUES], [C.T_IMAGE_TOKENS], {C.T_PIXEL_VALUES: batch, C.T_IMAGE_TOKENS: batch})
        export_text_backbone(TextBackbone(text_path), out, L)
        it = torch.zeros(2, C.IMAGE_TOKENS, fusion.cfg.image_feature_dim)
        tt = torch.zeros(2, L, C.TEXT_FEATURE_DIM)
        _export(fusion, (it, torch.ones(2, C.IMAGE_TOKENS, dtype=torch.long), tt, torch.ones(2, L, dtype=torch.long)),
                out / C.ONNX_FUSION,
                [C.T_IMAGE_TOKENS, C.T_IMAGE_MASK, C.T_TEXT_TOKENS, C.T_ATTENTION_MASK], [C.T_EMBEDDING],
                {C.T_IMAGE_TOKENS: batch, C.T_IMAGE_MASK: batch, C.T_TEXT_TOKENS: batch,
                 C.T_ATTENTION_MASK: batch, C.T_EMBEDDING: batch})
    (out / "preprocess.json").write_text(json.dumps(manifest["preprocess"], indent=2) + "\n")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("exported %s to %s", manifest["model_version"], out)
    return manifest


def bundle_dir(manifest: dict, root: str | Path | None = None) -> Path:
    """Where the ONNX bundle of a model version lives: build/onnx/<model_version> in a
    checkout, <cache dir>/onnx/<model_version> for an installed package."""
    return Path(root or onnx_root()) / manifest["model_version"]


def ensure_onnx(model_dir: str | Path, root: str | Path | None = None) -> Path:
    """The ONNX bundle for the checkpoint in `model_dir`, exported once and reused."""
    manifest = checkpoint.read_manifest(model_dir)
    out = bundle_dir(manifest, root)
    if not is_complete(out, manifest):
        # a tmp dir of this process's own: parallel test workers may export the same bundle at once
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        export_onnx(model_dir, tmp)
        if not is_complete(out, manifest):
            shutil.rmtree(out, ignore_errors=True)
            try:
                tmp.rename(out)
            except OSError:  # another process renamed its copy in between
                if not is_complete(out, manifest):
                    raise
        shutil.rmtree(tmp, ignore_errors=True)  # left only when another process's copy won
    return out

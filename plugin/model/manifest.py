"""The checkpoint's manifest.json, read and checked against this samestyle (format,
preprocessing constants) without importing torch: serving needs the model version
and dims, not the weights (samestyle.model.checkpoint loads those)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import contract
from ..errors import CheckpointError

FORMAT = 1
MANIFEST = "manifest.json"


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
    seen = photo_input(manifest)
    if seen not in contract.PHOTO_INPUTS:
        raise CheckpointError(f"checkpoint [{d}] has photo input [{seen}], this samestyle knows "
                              f"{list(contract.PHOTO_INPUTS)}", fix="use the matching samestyle release")
    expect = contract.preprocess_constants(manifest.get("max_text_len", contract.MAX_TEXT_LEN), seen)
    for key in ("image_size", "image_tokens", "image_feature_dim", "text_feature_dim"):
        if pre.get(key) != expect[key]:
            raise CheckpointError(
                f"checkpoint [{d}] was trained with {key}=[{pre.get(key)}], this samestyle uses [{expect[key]}]",
                fix="retrain the fusion encoder with `samestyle train` for this version",
            )
    return manifest


def photo_input(manifest: dict) -> str:
    """What the checkpoint's photo tower sees (contract.PHOTO_INPUTS; "rgb" for a
    manifest without the key)."""
    return (manifest.get("preprocess") or {}).get("photo_input", contract.PHOTO_INPUT)


def image_feature_dim(manifest: dict) -> int:
    """Channels of the checkpoint's image tokens (the head map's, plus the colour
    histogram's for photo input "grey-colour")."""
    return contract.image_feature_dim(photo_input(manifest))

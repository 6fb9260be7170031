"""The fusion encoder: one small transformer over image tokens and text tokens that
outputs one L2-normalised vector.

A [CLS] token and the projected tokens of both modalities form one sequence; every
layer's self-attention lets each token attend across modalities (single-stream
cross-attention, as in the paper's fusion encoder). Masking a modality removes its
keys from every attention (their softmax weight is exactly 0), so

- fused view  = both inputs,
- image view  = text masked  (does not depend on the title at all),
- text view   = photo masked (does not depend on the photo at all),

all from the same weights. With every input masked the output is the zero vector.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import contract

NEG = -1e9  # additive mask: exp() underflows to exactly 0 in float32


@dataclass(frozen=True)
class FusionConfig:
    embed_dim: int = contract.DEFAULT_EMBED_DIM
    d_model: int = 192
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.1
    max_text_len: int = contract.MAX_TEXT_LEN
    image_tokens: int = contract.IMAGE_TOKENS
    image_feature_dim: int = contract.IMAGE_FEATURE_DIM
    text_feature_dim: int = contract.TEXT_FEATURE_DIM
    skip: bool = False  # linear path from the pooled backbone features to the output
    # The photo view is not learned: the backbone's pooled photo features through a fixed
    # orthonormal projection (seeded), so photo search keeps the pretrained neighbourhoods on
    # any catalogue; titles and photo+text queries learn to meet it.
    image_lock: bool = False
    image_lock_seed: int = 0
    # Anchored photo view (0 = off): the photo view's style part is the unit mix
    # (1 - a) * learned + a * (the tower's own pooled grey features through a fixed, seeded
    # orthonormal projection), so part of photo search keeps the tower's neighbourhoods on
    # a catalogue the head was not fitted to, while the learned part still meets the titles.
    # Seeded by image_lock_seed; the colour part is untouched.
    image_anchor: float = 0.0
    # Colour apart: the last `colour_dims` dimensions carry the colour, normalised on their
    # own and scaled to `colour_weight` of the unit vector (the style part to
    # sqrt(1 - colour_weight^2)), so the colour-blind same-style terms train the style part
    # alone and colour moves a score by at most 2 * colour_weight^2.
    colour_dims: int = 0
    colour_weight: float = 0.0
    # Photo input "grey-colour": the last `image_colour_channels` channels of each image
    # token are its colour histogram. Non-zero, they get their own LayerNorm and
    # projection (summed with the head map's), so 27 histogram channels are not drowned
    # by 1,280 others in one LayerNorm. 0: one projection over every channel.
    image_colour_channels: int = 0
    # With image_colour_channels and colour_dims: colour split by construction. The
    # histogram never enters the transformer or the skip path (they see the grey features
    # alone), and the photo view's colour part is read straight from the histograms of its
    # tokens by a small MLP. Fused and title views keep the transformer's colour part (a
    # photo + "black" query takes its colour from the words, not from the photo).
    colour_from_histogram: bool = False

    def __post_init__(self):
        if self.colour_dims:
            if not 0 < self.colour_dims < self.embed_dim:
                raise ValueError(f"colour_dims must be between 1 and embed_dim - 1 ({self.embed_dim - 1}), "
                                 f"got {self.colour_dims}")
            if not 0.0 < self.colour_weight < 1.0:
                raise ValueError(f"colour_weight must be in (0, 1) with colour_dims, got {self.colour_weight}")
            if self.image_lock:
                raise ValueError("a locked photo view has no colour part: use colour_dims without image_lock")
        if not 0.0 <= self.image_anchor < 1.0:
            raise ValueError(f"image_anchor must be in [0, 1) (1 would be image_lock), got {self.image_anchor}")
        if self.image_anchor and self.image_lock:
            raise ValueError("image_anchor mixes a fixed projection into a learned photo view; image_lock has no "
                             "learned photo view: use one of them")
        if not 0 <= self.image_colour_channels < self.image_feature_dim:
            raise ValueError(f"image_colour_channels must be between 0 and image_feature_dim - 1 "
                             f"({self.image_feature_dim - 1}), got {self.image_colour_channels}")
        if self.colour_from_histogram and not (self.image_colour_channels and self.colour_dims):
            raise ValueError("colour_from_histogram reads the photo view's colour part from the histogram "
                             "channels: it needs image_colour_channels and colour_dims, got "
                             f"{self.image_colour_channels} and {self.colour_dims}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FusionConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def _photo_only(image_mask: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, 1] True for the rows that are a photo view (photo kept, title masked)."""
    return (image_mask[:, :1] > 0) & (attention_mask.sum(dim=1, keepdim=True) == 0)


def _unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def style_part(v: torch.Tensor, cfg: FusionConfig) -> torch.Tensor:
    """The colour-blind part of output vectors, unit length (zero rows stay zero); the
    whole vector when the model keeps no colour apart."""
    return F.normalize(v[:, : v.shape[1] - cfg.colour_dims], dim=1) if cfg.colour_dims else v


def colour_part(v: torch.Tensor, cfg: FusionConfig) -> torch.Tensor:
    """The colour part of output vectors, unit length (zero rows stay zero)."""
    return F.normalize(v[:, v.shape[1] - cfg.colour_dims :], dim=1)


class _Attention(nn.Module):
    # Written out (rather than nn.MultiheadAttention) so the mask semantics are exact
    # and the ONNX graph is plain MatMul/Softmax on every opset.
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h = heads
        self.dh = d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dh)) + bias
        att = self.drop(att.softmax(dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(y)


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.att = _Attention(d, heads, dropout)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, d * mlp_ratio), nn.GELU(), nn.Dropout(dropout), nn.Linear(d * mlp_ratio, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):
        x = x + self.drop(self.att(self.ln1(x), bias))
        return x + self.drop(self.mlp(self.ln2(x)))


class FusionEncoder(nn.Module):
    def __init__(self, cfg: FusionConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        k, fi = cfg.image_colour_channels, cfg.image_feature_dim - cfg.image_colour_channels
        self.img_proj = nn.Sequential(nn.LayerNorm(fi), nn.Linear(fi, d))
        summed = bool(k) and not cfg.colour_from_histogram  # the histogram's own projection, summed in
        self.img_colour_proj = nn.Sequential(nn.LayerNorm(k), nn.Linear(k, d)) if summed else None
        self.photo_colour = None
        if cfg.colour_from_histogram:
            kt = k * cfg.image_tokens
            self.photo_colour = nn.Sequential(nn.LayerNorm(kt), nn.Linear(kt, 4 * cfg.colour_dims), nn.GELU(),
                                              nn.Linear(4 * cfg.colour_dims, cfg.colour_dims))
        self.txt_proj = nn.Sequential(nn.LayerNorm(cfg.text_feature_dim), nn.Linear(cfg.text_feature_dim, d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.img_pos = nn.Parameter(torch.zeros(1, cfg.image_tokens, d))
        self.txt_pos = nn.Parameter(torch.zeros(1, cfg.max_text_len, d))
        self.blocks = nn.ModuleList(_Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.embed_dim)
        if cfg.skip:
            # Starts the model near linear heads on the pretrained features (which already
            # rank titles well) so the transformer only has to learn the correction.
            self.img_skip = nn.Sequential(nn.LayerNorm(fi), nn.Linear(fi, cfg.embed_dim))
            self.img_colour_skip = nn.Sequential(nn.LayerNorm(k), nn.Linear(k, cfg.embed_dim)) if summed else None
            self.txt_skip = nn.Sequential(nn.LayerNorm(cfg.text_feature_dim), nn.Linear(cfg.text_feature_dim, cfg.embed_dim))
        if cfg.image_lock:
            g = torch.Generator().manual_seed(cfg.image_lock_seed)
            q, _ = torch.linalg.qr(torch.randn(cfg.image_feature_dim, cfg.embed_dim, generator=g))
            self.register_buffer("lock_proj", q.contiguous())  # saved with the weights
        if cfg.image_anchor:
            g = torch.Generator().manual_seed(cfg.image_lock_seed)
            q, _ = torch.linalg.qr(torch.randn(fi, cfg.embed_dim - cfg.colour_dims, generator=g))
            self.register_buffer("anchor_proj", q.contiguous())  # grey channels -> style part, saved with the weights
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.img_pos, std=0.02)
        nn.init.normal_(self.txt_pos, std=0.02)

    def forward(
        self,
        image_tokens: torch.Tensor,  # [B, Ti, Fi]
        image_mask: torch.Tensor,  # [B, Ti] int/bool, 0 = masked
        text_tokens: torch.Tensor,  # [B, L, Ft]
        attention_mask: torch.Tensor,  # [B, L]
    ) -> torch.Tensor:
        b = image_tokens.shape[0]
        L = text_tokens.shape[1]
        img = self._image_in(image_tokens, self.img_proj, self.img_colour_proj) + self.img_pos
        txt = self.txt_proj(text_tokens) + self.txt_pos[:, :L]
        x = torch.cat([self.cls.expand(b, -1, -1), img, txt], dim=1)
        keep = torch.cat(
            [torch.ones(b, 1, dtype=torch.float32, device=x.device), image_mask.to(torch.float32), attention_mask.to(torch.float32)],
            dim=1,
        )
        bias = ((1.0 - keep) * NEG)[:, None, None, :]  # [B, 1, 1, N]
        for blk in self.blocks:
            x = blk(x, bias)
        z = self.head(self.ln(x[:, 0]))
        if self.cfg.skip:
            # masked inputs contribute exactly 0 (multiplied by their 0/1 flags)
            has_img = image_mask[:, :1].to(z.dtype)
            m = attention_mask.to(z.dtype)[..., None]
            n_tok = m.sum(1)
            pooled_txt = (text_tokens * m).sum(1) / n_tok.clamp_min(1.0)
            has_txt = (n_tok > 0).to(z.dtype)
            z = z + self._image_in(image_tokens[:, 0], self.img_skip, self.img_colour_skip) * has_img \
                + self.txt_skip(pooled_txt) * has_txt
        if self.cfg.image_lock:
            z = torch.where(_photo_only(image_mask, attention_mask), image_tokens[:, 0] @ self.lock_proj, z)
        if self.cfg.image_anchor:
            z = self._anchored(z, image_tokens, _photo_only(image_mask, attention_mask))
        if self.cfg.colour_dims:
            k, c = self.cfg.colour_dims, self.cfg.colour_weight
            colour = z[:, -k:]
            if self.photo_colour is not None:
                hist = image_tokens[..., -self.cfg.image_colour_channels :].flatten(1)
                colour = torch.where(_photo_only(image_mask, attention_mask), self.photo_colour(hist), colour)
            z = torch.cat([_unit(z[:, :-k]) * math.sqrt(1.0 - c * c), _unit(colour) * c], dim=1)
        else:
            z = _unit(z)
        any_input = (keep[:, 1:].sum(dim=1, keepdim=True) > 0).to(z.dtype)
        return z * any_input

    def _anchored(self, z: torch.Tensor, image_tokens: torch.Tensor, photo_only: torch.Tensor) -> torch.Tensor:
        """Photo-view rows' style part mixed with the fixed projection of their pooled grey
        features (see FusionConfig.image_anchor); other rows as they are."""
        a, k = self.cfg.image_anchor, self.cfg.colour_dims
        n = z.shape[1] - k
        grey = image_tokens[:, 0, : self.cfg.image_feature_dim - self.cfg.image_colour_channels]
        style = _unit(z[:, :n]) * (1.0 - a) + _unit(grey @ self.anchor_proj) * a
        style = torch.where(photo_only, style, z[:, :n])
        return torch.cat([style, z[:, n:]], dim=1) if k else style

    def _image_in(self, x: torch.Tensor, head: nn.Module, colour_head: nn.Module | None) -> torch.Tensor:
        """`head` over the image channels, plus, with image_colour_channels, its colour
        twin over the histogram channels (each with its own LayerNorm); with
        colour_from_histogram the histogram channels are left out."""
        k = self.cfg.image_colour_channels
        if not k:
            return head(x)
        return head(x[..., :-k]) + (colour_head(x[..., -k:]) if colour_head is not None else 0.0)

    def views(self, image_tokens, image_mask, text_tokens, attention_mask) -> dict[str, torch.Tensor]:
        """The three views in one batched pass: fused, image (title masked), text
        (photo masked). Rows for a missing modality come out as zero vectors."""
        b = image_tokens.shape[0]
        zi = torch.zeros_like(image_mask)
        zt = torch.zeros_like(attention_mask)
        out = self(
            image_tokens.repeat(3, 1, 1),
            torch.cat([image_mask, image_mask, zi]),
            text_tokens.repeat(3, 1, 1),
            torch.cat([attention_mask, zt, attention_mask]),
        )
        return {"fused": out[:b], "image": out[b : 2 * b], "text": out[2 * b :]}

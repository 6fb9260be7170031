"""A ceiling for photo <-> title alignment on frozen features (issue 17).

How far can cross-modal retrieval get while the backbones do not change? Two heads
(linear, or one hidden layer) map the frozen ImageNet photo features and the frozen
MiniLM title states into one space, trained with a symmetric InfoNCE on the training
products' own photo-title pairs and nothing else, then scored with the same table as
`samestyle eval`. A model whose cross-modal figures sit far under the probe's
under-uses its features; a target far above the probe's needs a photo tower that
sees more (deeper fine-tuning, larger photos), not another loss weight.

Pure: arrays in, arrays and a report out (the bench command does the I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import evaluate as ev

POOLS = ("mean", "tokens")


@dataclass(frozen=True)
class ProbeConfig:
    steps: int = 1500
    batch_size: int = 512
    dim: int = 256
    hidden: int = 0  # 0: linear heads; else one hidden layer of this width
    lr: float = 1e-3
    temperature: float = 0.05  # initial value; learned, as in CLIP
    noise: float = 0.1  # Gaussian noise on the standardised photo features while training
    pool: str = "mean"  # photo features: the mean of the backbone's tokens, or all tokens side by side
    seed: int = 0

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.batch_size < 2 or self.steps < 1:
            raise ValueError("a probe needs steps >= 1 and batch_size >= 2")


def photo_inputs(tokens: np.ndarray, pool: str) -> np.ndarray:
    """[N, T, F] backbone tokens -> [N, F] (mean) or [N, T*F] (tokens), float32."""
    t = tokens.astype(np.float32)
    return t.mean(1) if pool == "mean" else t.reshape(len(t), -1)


def title_inputs(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N, L, D] token states and [N, L] mask -> [N, D] masked mean, float32."""
    m = mask.astype(np.float32)[:, :, None]
    return (states.astype(np.float32) * m).sum(1) / np.maximum(m.sum(1), 1.0)


def _head(d_in: int, cfg: ProbeConfig) -> torch.nn.Module:
    if cfg.hidden:
        return torch.nn.Sequential(torch.nn.Linear(d_in, cfg.hidden), torch.nn.GELU(),
                                   torch.nn.Linear(cfg.hidden, cfg.dim))
    return torch.nn.Linear(d_in, cfg.dim)


def fit(photo: np.ndarray, title: np.ndarray, train_idx: np.ndarray, cfg: ProbeConfig,
        on_step=None) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Train the two heads on the own pairs of `train_idx`; return every product's
    unit photo and title views and the loss every 50 steps."""
    if len(train_idx) < cfg.batch_size:
        raise ValueError(f"{len(train_idx)} training products with a photo, fewer than the batch "
                         f"({cfg.batch_size}): lower --batch-size")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x = torch.from_numpy(photo)
    mu, sd = x[train_idx].mean(0), x[train_idx].std(0) + 1e-3
    x = (x - mu) / sd
    t = torch.from_numpy(title)
    hi, ht = _head(x.shape[1], cfg), _head(t.shape[1], cfg)
    scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / cfg.temperature))))
    opt = torch.optim.AdamW([*hi.parameters(), *ht.parameters(), scale], lr=cfg.lr, weight_decay=1e-4)
    y = torch.arange(cfg.batch_size)
    history = []
    for step in range(cfg.steps):
        b = torch.from_numpy(rng.choice(train_idx, cfg.batch_size, replace=False))
        xb = x[b] + cfg.noise * torch.randn(len(b), x.shape[1])
        logits = scale.exp() * F.normalize(hi(xb), dim=1) @ F.normalize(ht(t[b]), dim=1).T
        loss = (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append(round(loss.item(), 4))
        if on_step:
            on_step()
    with torch.no_grad():
        return F.normalize(hi(x), dim=1).numpy(), F.normalize(ht(t), dim=1).numpy(), history


def report(photo_view: np.ndarray, title_view: np.ndarray, has_image: np.ndarray, labels: np.ndarray,
           queries: np.ndarray, cfg: ProbeConfig, history: list[float]) -> dict:
    """The cross-modal lines of `samestyle eval`'s table for the probe's views."""
    photo_view = photo_view * has_image[:, None]
    directions = ev.table({"image": photo_view, "text": title_view}, labels, queries, ("t2i", "i2t", "i2i"))
    return {"config": asdict(cfg), "queries": int(len(queries)), "loss": history, "directions": directions,
            "own_pair": {"title->own photo": ev.own_pair(title_view, photo_view, queries),
                         "photo->own title": ev.own_pair(photo_view, title_view, queries)}}

"""Training the fusion encoder with the paper's contrastive loss unit, on cached
frozen-backbone features (so 2 CPU cores train it in minutes).

For a batch of positive pairs (left a, right b):

    L_pair = w_m C(m_a, m_b) + w_t C(t_a, m_b) + w_i C(i_a, m_b)
             left product's fused, text-only and image-only views against the right
             product's fused view (in-batch negatives);
    L_self = C(t_a, i_a) + C(i_a, t_a)          (self-distinctiveness)
             a product's own title and own photo identify it among the batch, which
             keeps every product distinct and aligns the two modalities;
    L_loc  = KL(P_backbone || P_fused)          (locality-consistency)
             the in-batch neighbourhood of each product under the frozen backbones
             is kept in the fused space, so training on pairs does not tear apart
             what the pretrained features already got right.

C is an in-batch hinge (margin m, summed over violating negatives) or InfoNCE
(temperature tau); other products of the same labelled group are not used as
negatives. Pairs: labelled groups in both directions plus each product's own
photo-title pair (left = right = the product).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .model.features import Features
from .model.fusion import FusionConfig, FusionEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 100
    loss: str = "hinge"  # or "infonce"
    margin: float = 0.2
    temperature: float = 0.05
    self_temperature: float | None = None  # InfoNCE temperature of the self term (None: temperature)
    w_fused: float = 1.0
    w_text: float = 1.0
    w_image: float = 1.0
    w_self: float = 1.0
    w_local: float = 0.1
    local_temperature: float = 0.05
    self_pair_fraction: float = 0.5  # share of a batch drawn from own photo-title pairs
    seed: int = 0
    threads: int = 2
    fusion: dict = field(default_factory=dict)  # FusionConfig overrides

    def to_dict(self) -> dict:
        return asdict(self)


def contrastive(q: torch.Tensor, k: torch.Tensor, neg_ok: torch.Tensor, cfg: TrainConfig,
                temperature: float | None = None) -> torch.Tensor:
    """In-batch loss; row a's positive is column a; neg_ok[a, b] says whether b may
    serve as a negative for a. Rows whose query is a zero vector (missing view) are
    skipped."""
    valid = (q.abs().sum(1) > 0) & (k.abs().sum(1) > 0)
    if valid.sum() < 2:
        return q.sum() * 0.0
    q, k, neg_ok = q[valid], k[valid], neg_ok[valid][:, valid]
    s = q @ k.t()
    pos = s.diag()
    if cfg.loss == "infonce":
        logits = (s / (temperature or cfg.temperature)).masked_fill(~neg_ok & ~torch.eye(len(s), dtype=torch.bool), float("-inf"))
        target = torch.arange(len(s))
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    viol_q = F.relu(cfg.margin - pos[:, None] + s) * neg_ok
    viol_k = F.relu(cfg.margin - pos[None, :] + s) * neg_ok
    return (viol_q.sum() + viol_k.sum()) / len(s)


def locality(fused: torch.Tensor, ref: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    eye = torch.eye(len(fused), dtype=torch.bool)
    p = (ref @ ref.t() / cfg.local_temperature).masked_fill(eye, float("-inf")).softmax(1)
    logq = (fused @ fused.t() / cfg.local_temperature).masked_fill(eye, float("-inf")).log_softmax(1)
    return F.kl_div(logq.masked_fill(eye, 0.0), p, reduction="batchmean")


def data_hash(catalogue_sha: str, pairs: np.ndarray, train_idx: np.ndarray) -> str:
    h = hashlib.sha256(catalogue_sha.encode())
    h.update(np.ascontiguousarray(pairs, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(train_idx, dtype=np.int64).tobytes())
    return h.hexdigest()


class _Batches:
    """Deterministic batch sampler over group pairs and own photo-title pairs."""

    def __init__(self, pairs: np.ndarray, singles: np.ndarray, cfg: TrainConfig):
        self.rng = np.random.default_rng(cfg.seed)
        self.pairs, self.singles, self.cfg = pairs, singles, cfg

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        b = self.cfg.batch_size
        n_self = int(round(b * self.cfg.self_pair_fraction)) if len(self.pairs) else b
        s = self.rng.choice(self.singles, size=n_self, replace=len(self.singles) < n_self)
        left, right = [s], [s]
        if b - n_self > 0:
            p = self.pairs[self.rng.choice(len(self.pairs), size=b - n_self, replace=len(self.pairs) < b - n_self)]
            left.append(p[:, 0])
            right.append(p[:, 1])
        return np.concatenate(left), np.concatenate(right)


def _tensors(f: Features, idx: np.ndarray, text_len: int):
    it = torch.from_numpy(f.image_tokens[idx].astype(np.float32))
    im = torch.from_numpy(np.repeat(f.has_image[idx, None], it.shape[1], axis=1).astype(np.int64))
    # Padding positions are masked out of every attention, so trimming them changes
    # no output and saves most of the compute (titles are far shorter than max_len).
    tt = torch.from_numpy(f.text_tokens[idx, :text_len].astype(np.float32))
    am = torch.from_numpy(f.attention_mask[idx, :text_len].astype(np.int64))
    return it, im, tt, am


def _text_len(f: Features, *idx: np.ndarray) -> int:
    lens = f.attention_mask[np.concatenate(idx)].sum(1)
    return max(1, int(lens.max()))


def _backbone_ref(it, im, tt, am) -> torch.Tensor:
    from .model.backbones import pooled_image, pooled_text

    ref = torch.cat([pooled_image(it) * im[:, :1], pooled_text(tt, am)], dim=1)
    return F.normalize(ref, dim=1)


def train(f: Features, labels: np.ndarray, train_idx: np.ndarray, pairs: np.ndarray, cfg: TrainConfig,
          progress: bool = True, log_every: int = 50) -> tuple[FusionEncoder, list[dict]]:
    """pairs: int [P, 2] indices into f (both directions are added here);
    train_idx: the products whose own photo-title pairs are used."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = FusionEncoder(FusionConfig(**cfg.fusion))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    both = np.concatenate([pairs, pairs[:, ::-1]]) if len(pairs) else np.zeros((0, 2), dtype=np.int64)
    sampler = _Batches(both, train_idx, cfg)
    lab = torch.from_numpy(labels)
    history: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="train", unit="step")
    t0 = time.time()
    for step in range(cfg.steps):
        li, ri = sampler.next()
        L = _text_len(f, li, ri)
        lt, rt = _tensors(f, li, L), _tensors(f, ri, L)
        views = model.views(*lt)
        right = model(*rt)
        la, ra = lab[li], lab[ri]
        same = (torch.from_numpy(li)[:, None] == torch.from_numpy(ri)[None, :]) | (
            (la[:, None] == ra[None, :]) & (la[:, None] >= 0))
        neg_ok = ~same
        self_same = (torch.from_numpy(li)[:, None] == torch.from_numpy(li)[None, :]) | (
            (la[:, None] == la[None, :]) & (la[:, None] >= 0))
        parts = {
            "pair_fused": cfg.w_fused * contrastive(views["fused"], right, neg_ok, cfg),
            "pair_text": cfg.w_text * contrastive(views["text"], right, neg_ok, cfg),
            "pair_image": cfg.w_image * contrastive(views["image"], right, neg_ok, cfg),
            "self": cfg.w_self * contrastive(views["text"], views["image"], ~self_same, cfg, cfg.self_temperature),
            "local": cfg.w_local * locality(views["fused"], _backbone_ref(*lt), cfg),
        }
        loss = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            rec = {"step": step, "loss": round(float(loss.detach()), 5), **{k: round(float(v.detach()), 5) for k, v in parts.items()},
                   "seconds": round(time.time() - t0, 1)}
            history.append(rec)
            log.info("train %s", json.dumps(rec))
        if bar:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            bar.update(1)
    if bar:
        bar.close()
    model.eval()
    return model, history

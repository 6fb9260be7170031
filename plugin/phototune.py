"""Fine-tune the WHOLE photo tower on CPU (issue 17): EfficientNet-Lite0, every block,
on augmented photos, with a contrastive loss over two kinds of pairs.

`samestyle train` trains the tower's last block on cached activations, which cannot be
augmented and leave photo search where the raw backbone is (docs/model.md). This stage
runs the full backbone on every step instead, on photos held in memory as uint8:

- **pairs**: half of each batch are same-style pairs (two products of one training
  group, so the tower learns what stays the same across colourways and shots), half are
  one product's photo seen through two augmentations (instance discrimination over every
  training product, which keeps 40k photos in play instead of 1.7k groups);
- **augmentation**: a random resized crop (area share `crop_scale`, aspect 3/4..4/3) with
  white fill, a horizontal flip, and brightness/contrast jitter. Colour jitter is moot:
  with photo input "grey-colour" the backbone sees luminance only;
- **loss**: symmetric InfoNCE on a linear projection of the pooled head map; other
  products of the same group are never negatives;
- **own title** (`w_title` > 0): each photo view is also pulled to its product's own
  title, the frozen MiniLM sentence vector through a trainable linear map into the same
  space (symmetric InfoNCE, the same negatives rule), so the tower learns what titles
  name (article type, pattern, sleeve) and not only what photos of one style share.
  `title_head_apart` gives the photo side of this term its own projection of the pooled
  map, so the photo-only head's instance discrimination does not fight it, and
  `title_negatives` adds that many random training titles as extra negatives for
  photo -> title (the title side is a frozen vector, so they cost almost nothing);
- **batch norm** keeps ImageNet's running statistics (the served graph uses them), its
  affine parameters train, as in `ImageBackbone.train_tail`;
- **input size**: trained at `size` (default 128) and served at the contract's 160 px:
  a random-resized-crop model sees objects larger in training than at test, and testing
  at ~1.25x the training size compensates (Touvron et al., "Fixing the train-test
  resolution discrepancy", 2019).

Seeded, resumable (state every `save_every` steps). Writes the full backbone state dict
(`image_backbone.pth`, loadable by `ImageBackbone(weights=...)`) and the head.

Pure apart from the state file: photos in, weights and a loss history out; the bench
command (samestyle.bench.phototune) does the reading, encoding and scoring."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import contract as C
from .model import preprocess as pp
from .model.backbones import ImageBackbone
from .model.onnx import export_graph

STATE_FILE = ".tune-state.pt"
BACKBONE_FILE = "image_backbone.pth"
HEAD_FILE = "projection_head.pt"
TITLE_HEAD_FILE = "title_head.pt"
PHOTO_TITLE_HEAD_FILE = "photo_title_head.pt"
STORE_SIDE = 80  # photos are held as white-padded squares of this side (Myntra: 60x80)


@dataclass(frozen=True)
class TuneConfig:
    steps: int = 1000
    batch_pairs: int = 48
    size: int = 128
    lr: float = 1e-4  # the backbone
    head_lr: float = 1e-3
    warmup: int = 50
    temperature: float = 0.1
    style_share: float = 0.5  # share of a batch's pairs that are same-style pairs
    crop_scale: tuple[float, float] = (0.5, 1.0)
    jitter: float = 0.2
    dim: int = 256
    weight_decay: float = 1e-5
    photo_input: str = C.PHOTO_GREY_COLOUR
    seed: int = 0
    save_every: int = 25
    w_title: float = 0.0  # weight of the own-photo <-> own-title term (0: photos only)
    title_head_apart: bool = False  # the title term's photo side through its own projection head
    title_negatives: int = 0  # extra random training titles as photo -> title negatives

    def __post_init__(self):
        if self.batch_pairs < 2 or self.steps < 1 or self.size < 32:
            raise ValueError("photo tuning needs steps >= 1, batch_pairs >= 2 and size >= 32")
        if not 0.0 <= self.style_share <= 1.0:
            raise ValueError(f"style_share must lie in [0, 1], got {self.style_share}")
        if self.w_title < 0:
            raise ValueError(f"w_title must be >= 0, got {self.w_title}")
        if self.title_negatives < 0:
            raise ValueError(f"title_negatives must be >= 0, got {self.title_negatives}")
        if (self.title_head_apart or self.title_negatives) and self.w_title <= 0:
            raise ValueError("title_head_apart and title_negatives shape the own-title term: they need w_title > 0")
        C.check_photo_input(self.photo_input)


# --- photos in memory ----------------------------------------------------------------

def square_u8(im: Image.Image, side: int = STORE_SIDE) -> np.ndarray:
    """An RGB photo padded to a square on white (as serving does) and resized to
    side x side: uint8 [side, side, 3]."""
    w, h = im.size
    s = max(w, h)
    canvas = Image.new("RGB", (s, s), (C.IMAGE_PAD_VALUE,) * 3)
    canvas.paste(im, ((s - w) // 2, (s - h) // 2))
    if s != side:
        canvas = canvas.resize((side, side), Image.BILINEAR)
    return np.asarray(canvas, dtype=np.uint8)


def read_photo(path: Path, consts: dict) -> np.ndarray:
    """One catalogue photo through serving's own checks (`preprocess.open_photo`)."""
    return square_u8(pp.open_photo(Path(path).read_bytes(), consts))


# --- augmentation ----------------------------------------------------------------------

def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(C.IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(C.IMAGE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(u8: torch.Tensor, cfg: TuneConfig, gen: torch.Generator | None, train: bool = True) -> torch.Tensor:
    """uint8 [B, S, S, 3] -> normalised float [B, 3, size, size]. With `train`, a random
    resized crop (white outside the photo), a flip and brightness/contrast jitter drawn
    from `gen`; without, a plain bilinear resize."""
    x = u8.permute(0, 3, 1, 2).float()
    b = len(x)
    white = float(C.IMAGE_PAD_VALUE)
    if not train:
        return _normalise(F.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False))
    u = torch.rand(b, 6, generator=gen)
    lo, hi = cfg.crop_scale
    area = lo + (hi - lo) * u[:, 0]
    ratio = torch.exp((u[:, 1] * 2 - 1) * math.log(4 / 3))
    sx, sy = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
    tx, ty = (u[:, 2] * 2 - 1) * (1 - sx), (u[:, 3] * 2 - 1) * (1 - sy)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, tx, sy, ty
    grid = F.affine_grid(theta, [b, 3, cfg.size, cfg.size], align_corners=False)
    x = F.grid_sample(x - white, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + white
    j = torch.rand(b, 2, generator=gen) * 2 - 1
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + cfg.jitter * j[:, 0, None, None, None]) + mean * (1 + cfg.jitter * j[:, 1, None, None, None])
    return _normalise(x.clamp(0.0, 255.0))


# --- the tower ---------------------------------------------------------------------------

class PhotoTower(torch.nn.Module):
    """The served photo graph (`ImageBackbone`: stem + tail, grey input where the photo
    input says so) with every EfficientNet weight trainable, and a projection head for
    the loss. `pooled` is the global average of the head map: the raw-backbone vector."""

    def __init__(self, cfg: TuneConfig, weights: str | Path | None = None):
        super().__init__()
        self.backbone = ImageBackbone(weights, photo_input=cfg.photo_input)
        self.head = torch.nn.Linear(C.IMAGE_FEATURE_DIM, cfg.dim)
        self.title_head = torch.nn.Linear(C.TEXT_FEATURE_DIM, cfg.dim) if cfg.w_title > 0 else None
        self.photo_title_head = (torch.nn.Linear(C.IMAGE_FEATURE_DIM, cfg.dim)
                                 if cfg.w_title > 0 and cfg.title_head_apart else None)

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixels)[:, 0, : C.IMAGE_FEATURE_DIM]

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.pooled(pixels)), dim=-1)

    def embed_titles(self, title_vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.title_head(title_vectors), dim=-1)

    def photos_for_titles(self, pooled: torch.Tensor) -> torch.Tensor:
        """The photo side of the own-title term: its own head when apart, else the photo head."""
        return F.normalize((self.photo_title_head or self.head)(pooled), dim=-1)

    def set_training(self) -> "PhotoTower":
        """Batch norm keeps its running statistics and nothing drops out (eval mode);
        every weight learns."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(True)
        return self


# --- pairs ---------------------------------------------------------------------------------

def style_groups(labels: np.ndarray, train_idx: np.ndarray) -> list[np.ndarray]:
    """Training groups with at least two members (indices into the catalogue)."""
    by: dict[int, list[int]] = {}
    for i in train_idx:
        if labels[i] >= 0:
            by.setdefault(int(labels[i]), []).append(int(i))
    return [np.array(v) for _, v in sorted(by.items()) if len(v) >= 2]


def sample_pairs(rng: np.random.Generator, train_idx: np.ndarray, groups: list[np.ndarray],
                 cfg: TuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) catalogue indices of one batch: same-style pairs from distinct
    groups, then instance pairs (right == left, seen through two augmentations)."""
    n_style = min(int(round(cfg.batch_pairs * cfg.style_share)), len(groups)) if groups else 0
    left, right = [], []
    for g in rng.choice(len(groups), n_style, replace=False) if n_style else []:
        a, b = rng.choice(groups[g], 2, replace=False)
        left.append(a)
        right.append(b)
    inst = rng.choice(train_idx, cfg.batch_pairs - n_style, replace=False)
    return np.array(left + list(inst), dtype=np.int64), np.array(right + list(inst), dtype=np.int64)


def pair_loss(za: torch.Tensor, zb: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over the batch; a pair (i, j != i) whose products share a group,
    or are one product, is no negative."""
    logits = za @ zb.T / temperature
    same = ((labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)) | (ids[:, None] == ids[None, :])
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    y = torch.arange(len(za))
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2


def title_loss(zp: torch.Tensor, zt: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, temperature: float,
               extra_t: torch.Tensor | None = None, extra_labels: torch.Tensor | None = None,
               extra_ids: torch.Tensor | None = None) -> torch.Tensor:
    """`pair_loss` of photos `zp` against their own titles `zt`; with `extra_t`, photo ->
    title also ranks each photo's title above those extra titles (same negatives rule:
    a title of the photo's group, or its own, is no negative). Title -> photo stays
    within the batch."""
    if extra_t is None:
        return pair_loss(zp, zt, labels, ids, temperature)
    n = len(zp)
    logits = zp @ torch.cat([zt, extra_t]).T / temperature
    all_labels, all_ids = torch.cat([labels, extra_labels]), torch.cat([ids, extra_ids])
    same = ((labels[:, None] == all_labels[None, :]) & (labels[:, None] >= 0)) | (ids[:, None] == all_ids[None, :])
    same[torch.arange(n), torch.arange(n)] = False
    logits = logits.masked_fill(same, float("-inf"))
    y = torch.arange(n)
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits[:, :n].T, y)) / 2


# --- training --------------------------------------------------------------------------------

def _lr_factor(step: int, cfg: TuneConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _same_config(saved: dict, cfg: TuneConfig) -> bool:
    """A state saved before an option existed was written with that option's default."""
    return {**asdict(TuneConfig()), **saved} == asdict(cfg)


def train(photos: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, cfg: TuneConfig, out: Path,
          on_step=None, titles: np.ndarray | None = None) -> tuple[PhotoTower, list[dict]]:
    """Fine-tune on `photos` (uint8 [N, S, S, 3]) of the products `train_idx`; resumes
    from `out`'s state file when it was written by the same config. `titles`: the
    products' frozen sentence vectors [N, 384], needed when `cfg.w_title` > 0. Returns
    the tower and the loss every 10 steps."""
    out.mkdir(parents=True, exist_ok=True)
    if len(train_idx) < cfg.batch_pairs:
        raise ValueError(f"{len(train_idx)} training photos, fewer than --batch-pairs {cfg.batch_pairs}")
    if cfg.w_title > 0 and (titles is None or len(titles) != len(photos)):
        raise ValueError("w_title > 0 needs one title vector per photo (titles [N, 384])")
    torch.manual_seed(cfg.seed)
    tower = PhotoTower(cfg).set_training()
    backbone_params = list(tower.backbone.parameters())
    head_params = [p for h in (tower.head, tower.title_head, tower.photo_title_head) if h is not None
                   for p in h.parameters()]
    opt = torch.optim.AdamW([{"params": backbone_params, "lr": cfg.lr},
                             {"params": head_params, "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    groups = style_groups(labels, train_idx)
    history: list[dict] = []
    start = 0
    state_path = out / STATE_FILE
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        if _same_config(st["config"], cfg):
            tower.load_state_dict(st["tower"])
            opt.load_state_dict(st["opt"])
            rng.bit_generator.state = st["rng"]
            gen.set_state(st["gen"])
            history, start = st["history"], st["step"]
    lab_t, base = torch.from_numpy(labels), [g["lr"] for g in opt.param_groups]
    title_t = torch.from_numpy(np.asarray(titles, dtype=np.float32)) if cfg.w_title > 0 else None
    for step in range(start, cfg.steps):
        left, right = sample_pairs(rng, train_idx, groups, cfg)
        both = torch.from_numpy(photos[np.concatenate([left, right])])
        pooled = tower.pooled(augment(both, cfg, gen))
        z = F.normalize(tower.head(pooled), dim=-1)
        za, zb = z[: len(left)], z[len(left):]
        loss = pair_loss(za, zb, lab_t[left], torch.from_numpy(left), cfg.temperature)
        if title_t is not None:
            zp = z if tower.photo_title_head is None else tower.photos_for_titles(pooled)  # shared: z itself
            extra = {}
            if cfg.title_negatives:
                ex = rng.choice(train_idx, min(cfg.title_negatives, len(train_idx)), replace=False)
                extra = {"extra_t": tower.embed_titles(title_t[ex]), "extra_labels": lab_t[ex],
                         "extra_ids": torch.from_numpy(ex)}
            loss = loss + cfg.w_title * sum(
                title_loss(zs, tower.embed_titles(title_t[side]), lab_t[side], torch.from_numpy(side), cfg.temperature,
                           **extra)
                for zs, side in ((zp[: len(left)], left), (zp[len(left):], right))) / 2
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * _lr_factor(step, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4)})
        if (step + 1) % cfg.save_every == 0 or step == cfg.steps - 1:
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr  # the schedule is re-applied from the step on resume
            _save_state(state_path, {"config": asdict(cfg), "tower": tower.state_dict(), "opt": opt.state_dict(),
                                     "rng": rng.bit_generator.state, "gen": gen.get_state(),
                                     "history": history, "step": step + 1})
        if on_step:
            on_step()
    torch.save(tower.backbone.net.state_dict(), out / BACKBONE_FILE)
    torch.save(tower.head.state_dict(), out / HEAD_FILE)
    if tower.title_head is not None:
        torch.save(tower.title_head.state_dict(), out / TITLE_HEAD_FILE)
    if tower.photo_title_head is not None:
        torch.save(tower.photo_title_head.state_dict(), out / PHOTO_TITLE_HEAD_FILE)
    return tower.eval(), history


class _Pooled(torch.nn.Module):
    def __init__(self, tower: PhotoTower):
        super().__init__()
        self.tower = tower

    def forward(self, pixels):
        return self.tower.pooled(pixels)


def pooled_onnx(tower: PhotoTower, path: Path, size: int = C.IMAGE_SIZE) -> Path:
    """The tower's pooled-feature graph as ONNX (ONNX Runtime encodes ~2x faster than
    torch on these cores)."""
    with torch.no_grad():
        export_graph(_Pooled(tower).eval(), (torch.zeros(2, 3, size, size),), path, ["pixel_values"], ["pooled"],
                     {"pixel_values": {0: "b"}, "pooled": {0: "b"}})
    return path


def encode(pooled_of, heads: list[torch.nn.Linear], pixels_of, n: int, has: np.ndarray, batch: int = 128,
           on_batch=None) -> tuple[np.ndarray, ...]:
    """Unit pooled (raw-backbone) vectors of `n` products, then one array of unit vectors
    per projection head in `heads` (each maps pooled features [B, 1280] on): `pixels_of(idx)`
    gives their served inputs [B, 3, S, S], `pooled_of(pixels)` the pooled features
    [B, 1280]. Zero rows where there is no photo."""
    pooled = np.zeros((n, C.IMAGE_FEATURE_DIM), dtype=np.float32)
    projected = [np.zeros((n, head.out_features), dtype=np.float32) for head in heads]
    rows = np.flatnonzero(has)
    for s in range(0, len(rows), batch):
        idx = rows[s: s + batch]
        p = torch.from_numpy(np.asarray(pooled_of(pixels_of(idx)), dtype=np.float32))
        pooled[idx] = F.normalize(p, dim=-1).numpy()
        with torch.no_grad():
            for out, head in zip(projected, heads):
                out[idx] = F.normalize(head(p), dim=-1).numpy()
        if on_batch:
            on_batch(len(idx))
    return (pooled, *projected)

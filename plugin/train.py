"""Training the product model with the paper's contrastive loss unit: the fusion
encoder and the photo tower's tail (EfficientNet-Lite0's last block and head conv)
together, on cached activations of the frozen stem and cached title token states.

For a batch of positive pairs (left a, right b; a == b for a product's own pair):

    pair    w_m C(m_a, m_b) + w_t C(t_a, m_b) + w_i C(i_a, m_b)
            left product's fused, title and photo views against the right product's
            fused view (colour-blind: other colourways are never negatives);
    ii, ti  w_ii C(i_a, i_b) + w_ti C(t_a, i_b)
            photo->photo and title->photo across a style group, aimed at the i->i and
            t->i directions the index serves;
    self    C(t_a, i_a) + C(i_a, t_a)    (self-distinctiveness, sharp temperature)
            a product's own title and own photo identify it among the batch; with
            `self_colour_negatives` the other colourways of its group are negatives
            here, so colour lives in the vectors as a small component that the
            colour-blind pair terms tolerate;
    mod     C(f(photo_a, "<colour of b>"), m_b)
            the paper's interactive query: a photo of one colourway plus a colour
            phrase finds the colourway of that colour (the other colourways, the
            photo's own product included, are the hard negatives);
    colour  CE(colour part of each view (and of the modifier query) -> its colour)
            with a model that keeps colour apart (`fusion.colour_dims`): the colour part
            of the fused, photo and title views names the product's colour (the modifier
            query's names the colour asked for), against learned colour prototypes; the
            pair, ii and ti terms then see the colour-blind style part only;
    local   KL(P_frozen || P_fused) + w_li KL(P_frozen-photo || P_image)
            (locality-consistency) the in-batch neighbourhoods of the frozen ImageNet
            and MiniLM features are kept, so a catalogue unlike the training data does
            not lose what the pretrained backbones got right.

C is InfoNCE (temperature tau) or an in-batch hinge; products of the same labelled
group are not negatives unless a term says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import contract as C
from .bars import progress_bar
from .errors import ConfigError
from .model import preprocess as pp
from .model.backbones import ImageBackbone, TextBackbone
from .model.features import Features, imagenet_tokens
from .model.fusion import FusionConfig, FusionEncoder, colour_part, style_part

log = logging.getLogger(__name__)

MODIFIER_TEMPLATES = ("{c}", "in {c}", "but in {c}", "the {c} one")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    batch_size: int = 256
    lr: float = 5e-4
    tail_lr: float = 0.0  # learning rate of the photo tower's tail; 0 keeps it frozen
    tail_from: int = C.IMAGE_TAIL_FROM  # the tail's first MBConv block (the stem before it stays frozen)
    photo_input: str = C.PHOTO_INPUT  # what the photo tower sees (contract.PHOTO_INPUTS)
    image_weights: str | None = None  # a fine-tuned photo tower to start from (bench photo-tune's image_backbone.pth)
    weight_decay: float = 0.01
    warmup: int = 100
    loss: str = "hinge"  # or "infonce"
    margin: float = 0.2
    temperature: float = 0.05
    self_temperature: float | None = None  # InfoNCE temperature of the self term (None: temperature)
    w_fused: float = 1.0
    w_text: float = 1.0
    w_image: float = 1.0
    w_ii: float = 0.0
    w_ti: float = 0.0
    w_self: float = 1.0
    w_mod: float = 0.0
    mod_target: str = "fused"  # the view the modifier query must find: "fused" or "image"
    mod_temperature: float | None = None  # InfoNCE temperature of the modifier term (None: self_temperature)
    w_local: float = 0.1
    w_local_image: float = 0.0
    local_temperature: float = 0.05
    self_colour_negatives: bool = False
    w_colour: float = 0.0  # the colour term: needs fusion colour_dims (the colour part it trains)
    colour_temperature: float = 0.1
    self_pair_fraction: float = 0.5  # share of a batch drawn from own photo-title pairs
    seed: int = 0
    threads: int = 2
    fusion: dict = field(default_factory=dict)  # FusionConfig overrides

    def __post_init__(self):
        if self.mod_target not in ("fused", "image"):
            raise ValueError(f"mod_target must be 'fused' or 'image', got {self.mod_target!r}")
        if self.fusion.get("image_lock") and self.tail_lr > 0:
            raise ValueError("a locked photo view (image_lock) is the pretrained backbone's, projected: "
                             "the photo tower's tail cannot train with it (set tail_lr to 0)")

        if self.image_weights and self.tail_lr <= 0:
            raise ValueError("image_weights starts the photo tower's tail from fine-tuned weights: "
                             "it needs tail_lr > 0 (--tail-lr)")
        if self.tail_from not in C.IMAGE_STEM_SHAPES:
            raise ValueError(f"tail_from must be one of {sorted(C.IMAGE_STEM_SHAPES)} "
                             f"(the photo tower's supported splits), got {self.tail_from}")
        C.check_photo_input(self.photo_input)
        if self.fusion.get("image_colour_channels") and self.photo_input != C.PHOTO_GREY_COLOUR:
            raise ValueError(f"image_colour_channels (--histogram-apart, --colour-from-histogram) needs photo_input "
                             f"[{C.PHOTO_GREY_COLOUR}] (--photo-input {C.PHOTO_GREY_COLOUR}), "
                             f"got [{self.photo_input}]")
        FusionConfig(**self.fusion_config())  # its own checks, before any work
        if self.w_colour and not self.fusion.get("colour_dims"):
            raise ValueError("the colour term (w_colour) trains the colour part: set fusion colour_dims "
                             "(--colour-dims) and colour_weight (--colour-weight)")

    def to_dict(self) -> dict:
        return asdict(self)

    def fusion_config(self) -> dict:
        """The fusion encoder's settings: the overrides, with the photo tokens' width
        following the photo input."""
        return {"image_feature_dim": C.image_feature_dim(self.photo_input), **self.fusion}


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


def retrieval(q: torch.Tensor, keys: torch.Tensor, target: torch.Tensor, neg_ok: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """One-way InfoNCE: query r must find keys[target[r]] among the keys that
    neg_ok[r] allows as negatives."""
    if len(q) == 0:
        return keys.sum() * 0.0
    logits = (q @ keys.t()) / temperature
    allowed = neg_ok.clone()
    allowed[torch.arange(len(q)), target] = True
    return F.cross_entropy(logits.masked_fill(~allowed, float("-inf")), target)


def locality(fused: torch.Tensor, ref: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    keep = (fused.abs().sum(1) > 0) & (ref.abs().sum(1) > 0)
    fused, ref = fused[keep], ref[keep]
    if len(fused) < 3:
        return fused.sum() * 0.0
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


class Phrases:
    """Token states of the modifier phrases ("black", "but in black", ...) for every
    colour, computed once with the frozen text backbone."""

    def __init__(self, colours: list[str], text_backbone=None):
        names = sorted({c for c in colours if c})
        self.colour_index = {c: i for i, c in enumerate(names)}
        texts = [t.format(c=c.lower()) for c in names for t in MODIFIER_TEMPLATES]
        tb = text_backbone or TextBackbone()
        tok = pp.tokenize(pp.load_tokenizer(str(tb.tokenizer_file), C.MAX_TEXT_LEN), texts)
        L = max(1, int(tok[C.T_ATTENTION_MASK].sum(1).max()))
        with torch.no_grad():
            ids = torch.from_numpy(tok[C.T_INPUT_IDS][:, :L])
            am = torch.from_numpy(tok[C.T_ATTENTION_MASK][:, :L])
            self.tokens = tb(ids, am, torch.zeros_like(ids)).float()
        self.mask = am
        self.n_templates = len(MODIFIER_TEMPLATES)

    def pick(self, colour_codes: np.ndarray, rng: np.random.Generator):
        rows = colour_codes * self.n_templates + rng.integers(0, self.n_templates, size=len(colour_codes))
        return self.tokens[rows], self.mask[rows]


def _text(f: Features, idx: np.ndarray, text_len: int):
    # Padding positions are masked out of every attention, so trimming them changes
    # no output and saves most of the compute (titles are far shorter than max_len).
    tt = torch.from_numpy(f.text_tokens[idx, :text_len].astype(np.float32))
    am = torch.from_numpy(f.attention_mask[idx, :text_len].astype(np.int64))
    return tt, am


def _text_len(f: Features, *idx: np.ndarray) -> int:
    lens = f.attention_mask[np.concatenate(idx)].sum(1)
    return max(1, int(lens.max()))


def _image_mask(f: Features, idx: np.ndarray, tokens: int) -> torch.Tensor:
    return torch.from_numpy(np.repeat(f.has_image[idx, None], tokens, axis=1).astype(np.int64))


def _pooled_text(tt, am) -> torch.Tensor:
    m = am.to(tt.dtype)[..., None]
    return F.normalize((tt * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


def _comparable(config: dict) -> dict:
    """A training configuration with its fusion overrides filled in with the defaults, so a
    state saved before an option existed resumes when the option is left at its default."""
    return {**config, "fusion": FusionConfig(**config.get("fusion", {})).to_dict()}


class _State:
    """What a resumed run needs: weights, optimiser, scheduler, sampler and torch RNG."""

    @staticmethod
    def save(path: Path, step: int, model, tail, opt, sched, sampler, mod_rng, history, cfg, protos=None) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"step": step, "fusion": model.state_dict(), "tail": tail.tail_state() if tail else None,
                    "opt": opt.state_dict(), "sched": sched.state_dict(), "sampler": sampler.rng.bit_generator.state,
                    "mod_rng": mod_rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "history": history,
                    "config": cfg.to_dict(), "colour_protos": None if protos is None else protos.detach().clone()}, tmp)
        tmp.replace(path)

    @staticmethod
    def load(path: Path, cfg, model, tail, opt, sched, sampler, mod_rng, protos=None) -> tuple[int, list]:
        st = torch.load(path, weights_only=False)
        saved, now = _comparable(st["config"]), _comparable(cfg.to_dict())
        if saved != now:
            differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
            raise ConfigError(f"resume state [{path}] was written by another training configuration "
                              f"(it differs in: {', '.join(differ)})", field="resume",
                              fix=f"rerun with the options it was started with, or pass --no-resume, or delete {path}")
        model.load_state_dict(st["fusion"])
        if tail is not None and st["tail"] is not None:
            tail.load_tail(st["tail"])
        if protos is not None:
            with torch.no_grad():
                protos.copy_(st["colour_protos"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        sampler.rng.bit_generator.state = st["sampler"]
        mod_rng.bit_generator.state = st["mod_rng"]
        torch.set_rng_state(st["torch_rng"])
        return st["step"], st["history"]


def train(f: Features, labels: np.ndarray, train_idx: np.ndarray, pairs: np.ndarray, cfg: TrainConfig,
          progress: bool = True, log_every: int = 50, colours: list[str] | None = None,
          state_file: Path | None = None, save_every: int = 50, _stop_after: int | None = None,
          cache_dir: Path | None = None):
    """pairs: int [P, 2] indices into f (both directions are added here);
    train_idx: the products whose own photo-title pairs are used. Returns (fusion,
    image backbone with its trained tail or None, history). With `state_file`, the
    run saves its state every `save_every` steps and resumes from it."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = FusionEncoder(FusionConfig(**cfg.fusion_config()))
    model.train()
    tail = None
    if cfg.tail_lr > 0:
        if f.image_stem is None:
            raise ValueError("training the photo tower's tail needs stem activations (features.for_catalogue)")
        if f.tail_from != cfg.tail_from:
            raise ValueError(f"the features' stem activations feed block [{f.tail_from}], "
                             f"training splits the photo tower at [{cfg.tail_from}]")
        if f.photo_input != cfg.photo_input:
            raise ValueError(f"the features' stem activations are of photo input [{f.photo_input}], "
                             f"training takes [{cfg.photo_input}]")
        tail = ImageBackbone(cfg.image_weights, tail_from=cfg.tail_from, photo_input=cfg.photo_input).train_tail()
        if tail.stem_digest() != f.stem_digest:
            raise ValueError("the features' stem activations come from another stem than the photo tower's "
                             "(compute them with the same --image-weights)")
    groups = [{"params": list(model.parameters()), "lr": cfg.lr}]
    if tail is not None:
        groups.append({"params": tail.tail_parameters(), "lr": cfg.tail_lr})
    phrases, col_codes = None, None
    if cfg.w_mod > 0 or cfg.w_colour > 0:
        if not colours:
            raise ValueError("the modifier and colour terms (w_mod, w_colour) need a colour column (--colour-col)")
        names = sorted({c for c in colours if c})
        col_codes = np.array([names.index(c) if c else -1 for c in colours], dtype=np.int64)
        if cfg.w_mod > 0:
            phrases = Phrases(names)
    protos = None
    if cfg.w_colour > 0:
        # learned colour prototypes: training only, not part of the model
        protos = torch.nn.Parameter(torch.randn(len(names), model.cfg.colour_dims))
        groups.append({"params": [protos], "lr": cfg.lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    both = np.concatenate([pairs, pairs[:, ::-1]]) if len(pairs) else np.zeros((0, 2), dtype=np.int64)
    sampler = _Batches(both, train_idx, cfg)
    mod_rng = np.random.default_rng(cfg.seed + 1)
    lab = torch.from_numpy(labels)
    # frozen references for the locality terms: ImageNet photo features, MiniLM titles
    frozen_img = None
    if f.image_stem is not None:
        start = ImageBackbone(cfg.image_weights, tail_from=f.tail_from, photo_input=f.photo_input) \
            if f.stem_digest else None  # a fine-tuned tower's reference is where it starts
        frozen_img = np.ascontiguousarray(imagenet_tokens(f, cache_dir, start)[:, 0, : C.IMAGE_FEATURE_DIM])
    elif f.image_tokens is not None:
        frozen_img = f.image_tokens[:, 0, : C.IMAGE_FEATURE_DIM]
    col_t = torch.from_numpy(col_codes) if col_codes is not None else None
    history: list[dict] = []
    start = 0
    if state_file is not None and Path(state_file).exists():
        start, history = _State.load(Path(state_file), cfg, model, tail, opt, sched, sampler, mod_rng, protos)
        log.info("resumed from %s at step %d", state_file, start)
    bar = progress_bar(total=cfg.steps, initial=start, desc="train", unit="step", enabled=progress)
    t0 = time.time()
    T = model.cfg.image_tokens
    for step in range(start, cfg.steps):
        li, ri = sampler.next()
        B = len(li)
        uniq, inv = np.unique(np.concatenate([li, ri]), return_inverse=True)
        if tail is not None:
            tok_u = tail.tail(torch.from_numpy(f.image_stem[uniq].astype(np.float32)))
            tok_u = tok_u * torch.from_numpy(f.has_image[uniq].astype(np.float32))[:, None, None]
        else:
            tok_u = torch.from_numpy(f.image_tokens[uniq].astype(np.float32))
        inv_t = torch.from_numpy(inv)
        it_l, it_r = tok_u[inv_t[:B]], tok_u[inv_t[B:]]
        im_l, im_r = _image_mask(f, li, T), _image_mask(f, ri, T)
        L = _text_len(f, li, ri)
        (tt_l, am_l), (tt_r, am_r) = _text(f, li, L), _text(f, ri, L)
        views = model.views(it_l, im_l, tt_l, am_l)
        if cfg.w_ii or cfg.w_ti or (phrases is not None and cfg.mod_target == "image"):
            # the right side's fused and photo views in one pass (no title view needed)
            out = model(it_r.repeat(2, 1, 1), torch.cat([im_r, im_r]), tt_r.repeat(2, 1, 1),
                        torch.cat([am_r, torch.zeros_like(am_r)]))
            right_views = {"fused": out[:B], "image": out[B:]}
        else:
            right_views = None
        right = right_views["fused"] if right_views else model(it_r, im_r, tt_r, am_r)
        li_t, ri_t = torch.from_numpy(li), torch.from_numpy(ri)
        la, ra = lab[li], lab[ri]
        same = (li_t[:, None] == ri_t[None, :]) | ((la[:, None] == ra[None, :]) & (la[:, None] >= 0))
        neg_ok = ~same
        same_group = (la[:, None] == la[None, :]) & (la[:, None] >= 0)
        self_same = li_t[:, None] == li_t[None, :]
        if cfg.self_colour_negatives and col_t is not None:
            cl = col_t[li]
            self_same = self_same | (same_group & (cl[:, None] == cl[None, :]))
        elif not cfg.self_colour_negatives:
            self_same = self_same | same_group
        sp = lambda v: style_part(v, model.cfg)  # noqa: E731  (the colour-blind terms' view of a vector)
        parts = {
            "pair_fused": cfg.w_fused * contrastive(sp(views["fused"]), sp(right), neg_ok, cfg),
            "pair_text": cfg.w_text * contrastive(sp(views["text"]), sp(right), neg_ok, cfg),
            "pair_image": cfg.w_image * contrastive(sp(views["image"]), sp(right), neg_ok, cfg),
            "self": cfg.w_self * contrastive(views["text"], views["image"], ~self_same, cfg, cfg.self_temperature),
        }
        if right_views is not None:
            group_rows = torch.from_numpy(li != ri)
            if cfg.w_ii:
                parts["ii"] = cfg.w_ii * contrastive(sp(views["image"][group_rows]), sp(right_views["image"][group_rows]),
                                                     neg_ok[group_rows][:, group_rows], cfg)
            if cfg.w_ti:
                parts["ti"] = cfg.w_ti * contrastive(sp(views["text"]), sp(right_views["image"]), neg_ok, cfg)
        if phrases is not None:
            left_keys, right_keys = ((views["image"], right_views["image"]) if cfg.mod_target == "image"
                                     else (views["fused"], right))
            mod_loss, mod_q, mod_colour = _modifier_term(model, f, li, ri, it_l, im_l, left_keys, right_keys, lab,
                                                         col_t, phrases, mod_rng, cfg)
            parts["mod"] = cfg.w_mod * mod_loss
        if protos is not None:
            qs = [views["fused"], views["image"], views["text"]]
            targets = [col_t[li]] * 3
            if phrases is not None and len(mod_q):
                qs.append(mod_q)
                targets.append(mod_colour)
            parts["colour"] = cfg.w_colour * colour_term(torch.cat(qs), torch.cat(targets), protos, model.cfg,
                                                         cfg.colour_temperature)
        if frozen_img is not None and cfg.w_local:
            ref_img = F.normalize(torch.from_numpy(frozen_img[li].astype(np.float32)), dim=1)
            ref_img = ref_img * torch.from_numpy(f.has_image[li].astype(np.float32))[:, None]
            ref = F.normalize(torch.cat([ref_img, _pooled_text(tt_l, am_l)], dim=1), dim=1)
            parts["local"] = cfg.w_local * locality(views["fused"], ref, cfg)
            if cfg.w_local_image:
                parts["local_image"] = cfg.w_local_image * locality(views["image"], ref_img, cfg)
        loss = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            rec = {"step": step, "loss": round(float(loss.detach()), 5), **{k: round(float(v.detach()), 5) for k, v in parts.items()},
                   "seconds": round(time.time() - t0, 1)}
            history.append(rec)
            log.info("train %s", json.dumps(rec))
        if state_file is not None and ((step + 1) % save_every == 0 or step == cfg.steps - 1):
            _State.save(Path(state_file), step + 1, model, tail, opt, sched, sampler, mod_rng, history, cfg, protos)
        if not bar.disable:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
            bar.update(1)
        if _stop_after is not None and step + 1 >= _stop_after:  # tests: an interrupted run
            break
    bar.close()
    model.eval()
    if tail is not None:
        tail.eval()
    return model, tail, history


def _modifier_term(model, f, li, ri, it_l, im_l, left_keys, right, lab, col_t, phrases, rng, cfg):
    """Photo of a + a phrase naming b's colour -> b's view (`cfg.mod_target`: fused or
    image), for group pairs whose colours differ; every other product in the batch is
    a negative, except b itself and products of b's group in b's colour."""
    cl, cr = col_t[li], col_t[ri]
    rows = np.flatnonzero((li != ri) & (cl.numpy() != cr.numpy()) & (cr.numpy() >= 0) & f.has_image[li])
    if len(rows) == 0:
        return right.sum() * 0.0, right[:0], cr[:0]
    rows_t = torch.from_numpy(rows)
    ptok, pmask = phrases.pick(cr.numpy()[rows], rng)
    q = model(it_l[rows_t], im_l[rows_t], ptok, pmask)
    keys = torch.cat([right, left_keys])
    key_ids = torch.from_numpy(np.concatenate([ri, li]))
    key_lab = torch.cat([lab[ri], lab[li]])
    key_col = torch.cat([cr, cl])
    tid, tlab, tcol = torch.from_numpy(ri[rows]), lab[ri[rows]], cr[rows]
    same_item = key_ids[None, :] == tid[:, None]
    same_colourway = (key_lab[None, :] == tlab[:, None]) & (tlab[:, None] >= 0) & (key_col[None, :] == tcol[:, None])
    loss = retrieval(q, keys, rows_t, ~(same_item | same_colourway),
                     cfg.mod_temperature or cfg.self_temperature or cfg.temperature)
    return loss, q, tcol


def colour_term(v: torch.Tensor, colour: torch.Tensor, protos: torch.Tensor, fcfg: FusionConfig,
                temperature: float) -> torch.Tensor:
    """Cross-entropy of each vector's colour part against the colour prototypes; rows
    without a colour or with a zero vector (missing view) are skipped."""
    keep = (colour >= 0) & (v.abs().sum(1) > 0)
    if not keep.any():
        return v.sum() * 0.0
    logits = colour_part(v[keep], fcfg) @ F.normalize(protos, dim=1).t() / temperature
    return F.cross_entropy(logits, colour[keep])

"""A learned copy-detection embedding for `dedup` (issue 15), measured and NOT shipped
(docs/benchmarks/README.md, "dedup": it did not lift F1 at the recommended threshold on
the held-out sample). Kept so the measurement can be re-run:

    python docs/benchmarks/copydetect/train.py --data ../shared/datasets/myntra --out /tmp/copy.npz

The network: the photo squashed to INPUT_SIZE, three 3x3 stride-2 convolutions with ReLU
(CHANNELS), mean and max pooled, a linear projection to DIM, unit length (110k
parameters, 440 KB in float32). Trained self-supervised: each step takes a batch of
catalogue photos built from lookalikes (a few categories at a time, each product with a
product of its style_group where it has one: the other colourways are the hardest
negatives), edits every photo twice the way sellers do (re-crop keeping 65-100 % of the
area at a random offset and resized back, a scale round trip, JPEG re-compression, a
text or logo overlay, a slight brightness change; the first view is left as it is half
the time, since dedup compares an original with an edited copy), and minimises InfoNCE:
each view must find its twin among all the batch's views. Photos sharing a
byte-identical file are never each other's negatives.

Only products outside `heldout` are used, so measure.py re-lists photos the network never
saw. The photos are decoded once into a uint8 cache (`--cache`). Seeded; one thread.
`embed` is a numpy forward pass of the same network (what ingest would have run).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from samestyle import contract as C

INPUT_SIZE = (36, 48)  # (width, height): the photo squashed to it (Myntra's 60x80 x 0.6)
CHANNELS = (32, 64, 128)
DIM = 64
HELDOUT_PERCENT = 30  # products whose id hashes below this are never trained on
PIXEL_MEAN, PIXEL_STD = 127.5, 64.0
CACHE_SIZE = (60, 80)  # (width, height): Myntra's photo size; others are squashed to it
OVERLAY_TEXTS = ("SALE", "NEW", "50% OFF", "shop.example", "(c) seller", "BEST PRICE", "HOT", "www.store.in")


def heldout(pid: str, percent: int = HELDOUT_PERCENT) -> bool:
    """True for the products the network is never trained on (a hash of the id)."""
    return int(hashlib.sha1(str(pid).encode("utf-8")).hexdigest()[:8], 16) % 100 < percent


def pixels(img: Image.Image) -> np.ndarray:
    """The network's input for one photo: RGB squashed to INPUT_SIZE, [3, H, W] float32."""
    x = np.asarray(img.convert("RGB").resize(INPUT_SIZE, Image.Resampling.BILINEAR), np.float32)
    return ((x - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def _conv3x3_s2_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """torch.nn.Conv2d(kernel 3, stride 2, padding 1) + ReLU on [N, C, H, W] (im2col)."""
    n, c, h, wd = x.shape
    ho, wo = (h + 1) // 2, (wd + 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, i:i + 2 * ho:2, j:j + 2 * wo:2] for i in range(3) for j in range(3)], axis=2)
    out = w.reshape(len(w), c * 9) @ cols.reshape(n, c * 9, ho * wo) + b[None, :, None]
    return np.maximum(out, 0).reshape(n, len(w), ho, wo)


def embed(images, w: dict[str, np.ndarray]) -> np.ndarray:
    """Decoded photos -> [n, DIM] unit rows (numpy; equal to the torch model within 1e-6)."""
    x = np.stack([pixels(im) for im in images])
    for k in range(len(CHANNELS)):
        x = _conv3x3_s2_relu(x, w[f"convs.{k}.weight"], w[f"convs.{k}.bias"])
    flat = x.reshape(len(x), x.shape[1], -1)
    z = np.concatenate([flat.mean(axis=2), flat.max(axis=2)], axis=1) @ w["proj.weight"].T + w["proj.bias"]
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# --- the photos, decoded once ----------------------------------------------------------------
def build_cache(data_dir: Path, out: Path) -> Path:
    """products.csv + images/<id>.jpg -> an .npz: ids, rgb [n, 80, 60, 3] uint8, category
    (articleType), style_group, and photo (a group id per distinct photo file)."""
    from .model.preprocess import PreprocessError, open_photo

    consts = C.preprocess_constants()
    ids, rgb, cats, styles, digests = [], [], [], [], []
    with open(data_dir / "products.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            p = data_dir / "images" / f"{row['id']}.jpg"
            if not p.is_file():
                continue
            data = p.read_bytes()
            try:
                img = open_photo(data, consts)
            except PreprocessError:
                continue
            if img.size != CACHE_SIZE:
                img = img.resize(CACHE_SIZE, Image.Resampling.BILINEAR)
            ids.append(row["id"])
            rgb.append(np.asarray(img, np.uint8))
            cats.append(row.get("articleType") or "")
            styles.append(row.get("style_group") or "-1")
            digests.append(hashlib.sha1(data).hexdigest())
    group = {d: g for g, d in enumerate(dict.fromkeys(digests))}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, ids=np.array(ids), rgb=np.stack(rgb), category=np.array(cats), style_group=np.array(styles),
             photo=np.array([group[d] for d in digests], np.int64))
    return out


# --- seller-style edits ------------------------------------------------------------------------
_MASKS: list[Image.Image] = []


def _text_masks() -> list[Image.Image]:
    """OVERLAY_TEXTS rendered once as grey masks (rendering a font costs ~5 ms a call)."""
    if not _MASKS:
        for text in OVERLAY_TEXTS:
            m = Image.new("L", (8 * len(text) + 4, 14), 0)
            ImageDraw.Draw(m).text((1, 1), text, fill=255)
            _MASKS.append(m.crop(m.getbbox() or (0, 0, 1, 1)))
    return _MASKS


def edit(img: Image.Image, rng: random.Random, strength: float = 1.0) -> Image.Image:
    """One seller-style edit of a photo (returned at its own size)."""
    w, h = img.size
    if rng.random() < 0.8 * strength:  # re-crop, 65-100 % of the area, random offset, resized back
        area = rng.uniform(0.65, 1.0)
        aspect = rng.uniform(0.93, 1.07)
        fw, fh = min(1.0, (area * aspect) ** 0.5), min(1.0, (area / aspect) ** 0.5)
        cw, ch = max(8, int(round(w * fw))), max(8, int(round(h * fh)))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR)
    if rng.random() < 0.5 * strength:  # a scale round trip (down- or up-sampled, then back)
        f = rng.choice([0.4, 0.5, 0.6, 0.75, 1.5, 2.0])
        img = img.resize((max(8, int(w * f)), max(8, int(h * f))), rng.choice(
            [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST]))
    if rng.random() < 0.4 * strength:  # a text or logo overlay
        iw, ih = img.size
        colour = rng.choice([(255, 255, 255), (0, 0, 0), (200, 30, 30), (40, 40, 160)])
        x, y = rng.randint(0, max(1, iw * 2 // 3)), rng.randint(0, max(1, ih * 5 // 6))
        if rng.random() < 0.7:
            mask = rng.choice(_text_masks())
        else:
            s = rng.randint(max(3, iw // 12), max(4, iw // 5))
            mask = Image.new("L", (s, s), 255)
        mask = mask.point(lambda v, a=rng.randint(90, 230): v * a // 255)
        img = img.copy()
        img.paste(colour, (x, y), mask)
    if rng.random() < 0.4 * strength:  # slight brightness / contrast change
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.9, 1.1))
    if rng.random() < 0.6 * strength:  # JPEG re-compression
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(20, 90))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


# --- batches of lookalikes ---------------------------------------------------------------------
class Batches:
    """Rows of the training products, `per_category` at a time from `categories` categories,
    each drawn product followed by one of its style_group (another colourway) where it has
    one, else by another product of its category."""

    def __init__(self, categories: np.ndarray, styles: np.ndarray, rows: np.ndarray, rng: random.Random):
        self.rng = rng
        by_cat: dict[str, list[int]] = {}
        by_style: dict[str, list[int]] = {}
        for r in rows.tolist():
            by_cat.setdefault(str(categories[r]), []).append(r)
            if styles[r] not in ("", "-1"):
                by_style.setdefault(str(styles[r]), []).append(r)
        self.cats = [c for c, rs in by_cat.items() if len(rs) >= 4]
        self.by_cat, self.by_style, self.styles = by_cat, by_style, styles
        self.weight = [len(by_cat[c]) ** 0.5 for c in self.cats]

    def draw(self, categories: int, per_category: int) -> list[int]:
        out: list[int] = []
        for c in self.rng.choices(self.cats, weights=self.weight, k=categories):
            pool, picked = self.by_cat[c], []
            for r in self.rng.sample(pool, min(len(pool), per_category // 2)):
                mates = [m for m in self.by_style.get(str(self.styles[r]), []) if m != r and m not in picked]
                picked.append(r)
                picked.append(self.rng.choice(mates) if mates else self.rng.choice(pool))
            out.extend(picked[:per_category])
        return list(dict.fromkeys(out))  # a product once per batch


# --- the network -------------------------------------------------------------------------------
def build_model():
    """The torch twin of `embed`."""
    import torch
    from torch import nn

    class CopyNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (3, *CHANNELS)
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chans, chans[1:]))
            self.proj = nn.Linear(2 * chans[-1], DIM)

        def forward(self, x):
            for conv in self.convs:
                x = torch.relu(conv(x))
            flat = x.flatten(2)
            z = self.proj(torch.cat([flat.mean(2), flat.amax(2)], 1))
            return nn.functional.normalize(z, dim=1)

    return CopyNet()


def save_weights(model, path: Path, meta: dict) -> None:
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **state)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")


def train(cache: Path, out: Path, *, steps: int = 1500, categories: int = 8, per_category: int = 16,
          lr: float = 2e-3, temperature: float = 0.07, seed: int = 0, log_every: int = 50) -> dict:
    """Train the network on the non-held-out products of `cache`; weights to `out` (npz)
    and what was done to `out` with .json. Returns that report."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = random.Random(seed)
    z = np.load(cache)
    ids, rgb, cats, styles, photo = z["ids"], z["rgb"], z["category"], z["style_group"], z["photo"]
    rows = np.array([i for i, pid in enumerate(ids.tolist()) if not heldout(pid)])
    batches = Batches(cats, styles, rows, rng)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    t0, losses, log = time.perf_counter(), [], []
    for step in range(1, steps + 1):
        b = batches.draw(categories, per_category)
        views = []
        for first in (True, False):
            for r in b:
                img = Image.fromarray(rgb[r])
                if not (first and rng.random() < 0.5):
                    img = edit(img, rng)
                views.append(pixels(img))
        x = torch.from_numpy(np.stack(views))
        e = model(x)
        n = len(b)
        sim = e @ e.T / temperature
        g = torch.from_numpy(photo[np.array(b + b)])
        same_file = g[:, None] == g[None, :]  # itself, its twin, and byte-identical photos
        twin = torch.arange(2 * n).roll(n)
        mask = same_file.clone()
        mask[torch.arange(2 * n), twin] = False
        sim = sim.masked_fill(mask, float("-inf"))
        loss = torch.nn.functional.cross_entropy(sim, twin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % log_every == 0 or step == steps:
            log.append({"step": step, "loss": round(float(np.mean(losses[-log_every:])), 4),
                        "seconds": round(time.perf_counter() - t0, 1)})
            click.echo(json.dumps(log[-1]), err=True)
            if step < steps and step % (4 * log_every) == 0:  # a run cut short still leaves weights
                save_weights(model, out, {"steps_done": step, "log": log})
    report = {"steps": steps, "batch_products": f"{categories} categories x {per_category}", "lr": lr,
              "temperature": temperature, "seed": seed, "train_products": len(rows),
              "heldout_percent": HELDOUT_PERCENT, "train_seconds": round(time.perf_counter() - t0, 1),
              "params": int(sum(p.numel() for p in model.parameters())), "log": log,
              "shape": {"input_size": INPUT_SIZE, "channels": CHANNELS, "dim": DIM}}
    save_weights(model, out, report)
    return report


@click.command()
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("../shared/datasets/myntra"), show_default=True,
              help="Folder with products.csv and images/<id>.jpg.")
@click.option("--cache", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("/tmp/samestyle-copy-cache.npz"), show_default=True,
              help="The decoded photos (built on first use).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--steps", type=click.IntRange(1), default=1500, show_default=True)
@click.option("--categories", type=click.IntRange(1), default=8, show_default=True)
@click.option("--per-category", type=click.IntRange(2), default=16, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--temperature", type=float, default=0.07, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(data_dir, cache, out, steps, categories, per_category, lr, temperature, seed):
    """Train the copy-detection network on the catalogue's non-held-out products."""
    if not cache.is_file():
        click.echo(f"decoding the photos of {data_dir} into {cache}...", err=True)
        build_cache(data_dir, cache)
    report = train(cache, out, steps=steps, categories=categories, per_category=per_category, lr=lr,
                   temperature=temperature, seed=seed)
    click.echo(json.dumps({k: v for k, v in report.items() if k != "log"}))


if __name__ == "__main__":
    main()

"""A small generated catalogue, the project's own test and demo data.

Products come in style groups: one brand + garment + pattern drawn in several
colourways (the same-style relation the paper retrieves), plus near-duplicate
listings (the same photo re-saved with a reworded title, as a second supplier would
list it). Deterministic for a seed. Photos are real JPEG/PNG files drawn with Pillow.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

BRANDS = ["Puma", "Nike", "Roadster", "Levis", "Wrangler", "Fabindia", "Biba", "Adidas", "Reebok", "Mango"]
COLOURS = {
    "Red": (200, 30, 40), "Blue": (30, 60, 190), "Green": (30, 150, 60), "Black": (20, 20, 20),
    "White": (235, 235, 235), "Yellow": (230, 200, 30), "Pink": (230, 120, 170), "Grey": (128, 128, 128),
}
GARMENTS = {  # category -> (title noun, gender, drawing)
    "Tshirts": ("T-shirt", "Men", "tee"),
    "Dresses": ("Dress", "Women", "dress"),
    "Jeans": ("Jeans", "Men", "trousers"),
    "Handbags": ("Handbag", "Women", "bag"),
    "Watches": ("Analog Watch", "Unisex", "watch"),
    "Casual Shoes": ("Sneakers", "Men", "shoe"),
}
PATTERNS = ["Striped", "Checked", "Polka Dot", "Solid", "Printed", "Colourblocked"]
STYLE_WORDS = ["Slim Fit", "Classic", "Urban", "Retro", "Essential", "Premium", "Sport", "Vintage"]


@dataclass
class SyntheticCatalogue:
    csv_path: Path
    root: Path
    n_products: int
    groups: dict[int, list[str]]  # style_group -> product ids
    duplicates: list[tuple[str, str]]  # (original id, near-duplicate id)


def _draw(kind: str, pattern: str, colour: tuple, rng: random.Random, size: int) -> Image.Image:
    im = Image.new("RGB", (size, int(size * 4 / 3)), (250, 250, 250))
    d = ImageDraw.Draw(im)
    w, h = im.size
    accent = tuple(255 - c for c in colour)
    if kind == "tee":
        box = [w * 0.2, h * 0.25, w * 0.8, h * 0.85]
        d.polygon([(w * 0.05, h * 0.3), (w * 0.3, h * 0.18), (w * 0.7, h * 0.18), (w * 0.95, h * 0.3),
                   (w * 0.85, h * 0.42), (w * 0.8, h * 0.38), (w * 0.8, h * 0.85), (w * 0.2, h * 0.85),
                   (w * 0.2, h * 0.38), (w * 0.15, h * 0.42)], fill=colour)
    elif kind == "dress":
        box = [w * 0.2, h * 0.15, w * 0.8, h * 0.9]
        d.polygon([(w * 0.35, h * 0.12), (w * 0.65, h * 0.12), (w * 0.62, h * 0.4), (w * 0.85, h * 0.9),
                   (w * 0.15, h * 0.9), (w * 0.38, h * 0.4)], fill=colour)
    elif kind == "trousers":
        box = [w * 0.25, h * 0.1, w * 0.75, h * 0.95]
        d.polygon([(w * 0.25, h * 0.1), (w * 0.75, h * 0.1), (w * 0.78, h * 0.95), (w * 0.55, h * 0.95),
                   (w * 0.5, h * 0.4), (w * 0.45, h * 0.95), (w * 0.22, h * 0.95)], fill=colour)
    elif kind == "bag":
        box = [w * 0.15, h * 0.35, w * 0.85, h * 0.8]
        d.rectangle(box, fill=colour)
        d.arc([w * 0.3, h * 0.15, w * 0.7, h * 0.55], 180, 360, fill=accent, width=max(2, w // 30))
    elif kind == "watch":
        box = [w * 0.25, h * 0.3, w * 0.75, h * 0.7]
        d.rectangle([w * 0.42, h * 0.05, w * 0.58, h * 0.95], fill=accent)
        d.ellipse(box, fill=colour, outline=(40, 40, 40), width=max(2, w // 40))
    else:  # shoe
        box = [w * 0.1, h * 0.45, w * 0.9, h * 0.7]
        d.polygon([(w * 0.1, h * 0.7), (w * 0.1, h * 0.5), (w * 0.45, h * 0.45), (w * 0.6, h * 0.55),
                   (w * 0.9, h * 0.6), (w * 0.9, h * 0.7)], fill=colour)
    x0, y0, x1, y1 = [int(v) for v in box]
    step = max(4, w // 12)
    if pattern == "Striped":
        for y in range(y0, y1, step * 2):
            d.rectangle([x0, y, x1, min(y + step // 2, y1)], fill=accent)
    elif pattern == "Checked":
        for x in range(x0, x1, step * 2):
            d.line([x, y0, x, y1], fill=accent, width=2)
        for y in range(y0, y1, step * 2):
            d.line([x0, y, x1, y], fill=accent, width=2)
    elif pattern == "Polka Dot":
        for x in range(x0 + step, x1, step * 2):
            for y in range(y0 + step, y1, step * 2):
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=accent)
    elif pattern == "Printed":
        for _ in range(6):
            cx, cy = rng.randint(x0, max(x0, x1 - 1)), rng.randint(y0, max(y0, y1 - 1))
            d.rectangle([cx, cy, cx + step, cy + step // 2], fill=accent)
    elif pattern == "Colourblocked":
        d.rectangle([x0, (y0 + y1) // 2, x1, y1], fill=accent)
    return im


def generate(out_dir: str | Path, n_groups: int = 40, seed: int = 7, size: int = 96,
             n_duplicates: int = 8, n_singletons: int = 10, fmt: str = "csv") -> SyntheticCatalogue:
    """Write `catalogue.csv` (or .jsonl) and `images/` under out_dir; ids are strings
    `P00001`...; `style_group` is -1 for products outside any group."""
    rng = random.Random(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    groups: dict[int, list[str]] = {}
    cats = list(GARMENTS)

    def add(title, cat, gender, colour_name, img: Image.Image, group: int, ext="jpg", brand=""):
        pid = f"P{len(rows) + 1:05d}"
        rel = f"images/{pid}.{ext}"
        img.save(out / rel, quality=90) if ext == "jpg" else img.save(out / rel)
        rows.append({"id": pid, "image": rel, "title": title, "gender": gender, "articleType": cat,
                     "baseColour": colour_name, "brand": brand, "price": round(rng.uniform(299, 4999), 2),
                     "style_group": group})
        if group >= 0:
            groups.setdefault(group, []).append(pid)
        return pid

    for g in range(n_groups):
        cat = cats[g % len(cats)]
        noun, gender, kind = GARMENTS[cat]
        brand = rng.choice(BRANDS)
        pattern = rng.choice(PATTERNS)
        style = rng.choice(STYLE_WORDS)
        for cname in rng.sample(list(COLOURS), rng.randint(2, 4)):
            img = _draw(kind, pattern, COLOURS[cname], random.Random(seed * 1000 + g), size)
            add(f"{brand} {gender} {cname} {style} {pattern} {noun}", cat, gender, cname, img, g,
                ext="png" if g % 5 == 0 else "jpg", brand=brand)
    for s in range(n_singletons):
        cat = rng.choice(cats)
        noun, gender, kind = GARMENTS[cat]
        cname = rng.choice(list(COLOURS))
        brand = rng.choice(BRANDS)
        img = _draw(kind, rng.choice(PATTERNS), COLOURS[cname], random.Random(seed * 7 + s), size)
        add(f"{brand} {gender} {cname} {noun} {s}", cat, gender, cname, img, -1, brand=brand)
    duplicates = []
    for k in range(min(n_duplicates, len(rows))):
        src = rows[rng.randrange(len(rows))]
        img = Image.open(out / src["image"]).convert("RGB")
        words = src["title"].split()
        title = " ".join([words[0], "-", *reversed(words[1:])])  # reworded by another supplier
        dup = add(title, src["articleType"], src["gender"], src["baseColour"], img, src["style_group"],
                  brand=src["brand"])
        duplicates.append((src["id"], dup))
    fields = list(rows[0])
    if fmt == "jsonl":
        path = out / "catalogue.jsonl"
        with path.open("w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    else:
        path = out / "catalogue.csv"
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    return SyntheticCatalogue(path, out, len(rows), groups, duplicates)

"""`samestyle bench dedup`, the re-listings: a catalogue product listed again the way
sellers do it, its photo re-cropped, resized, re-compressed or watermarked (one or two
PHOTO_EDITS, `relist_photo`), its title reordered, abbreviated or typo'd
(`relist_title`), or both; `make_relists` takes the KINDS (photo, title, both) in turn."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from ... import contract as C

KINDS = ("photo", "title", "both")
PHOTO_EDITS = ("crop", "resize", "jpeg", "watermark")


def relist_photo(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """The photo re-cropped, resized, re-compressed or watermarked (one or two of them)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    ops = rng.sample(["crop", "resize", "jpeg", "watermark"], rng.choice([1, 2]))
    quality = 90
    for op in ops:
        w, h = img.size  # each edit works on the photo as the previous one left it
        if op == "crop":
            f = rng.uniform(0.8, 0.95)
            cw, ch = int(w * f), int(h * f)
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h))
        elif op == "resize":
            f = rng.choice([0.5, 0.75, 1.5, 2.0])
            img = img.resize((max(8, int(w * f)), max(8, int(h * f))))
        elif op == "jpeg":
            quality = rng.randint(25, 60)
        else:
            layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
            d = ImageDraw.Draw(layer)
            text = rng.choice(["SALE", "shop.example", "(c) seller", "50% OFF"])
            x, y = rng.randint(0, max(1, img.size[0] // 3)), rng.randint(0, max(1, img.size[1] * 3 // 4))
            d.text((x, y), text, fill=(255, 255, 255, rng.randint(110, 200)))
            img = Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue(), "+".join(ops)


def relist_title(title: str, rng: random.Random) -> tuple[str, str]:
    """The title reordered, abbreviated or with typos."""
    words = title.split()
    op = rng.choice(["reorder", "abbreviate", "typo"]) if len(words) > 1 else "typo"
    if op == "reorder":
        k = rng.randint(1, len(words) - 1)
        words = words[k:] + words[:k] if rng.random() < 0.5 else rng.sample(words, len(words))
    elif op == "abbreviate":
        drop = set(rng.sample(range(len(words)), min(len(words) - 1, rng.choice([1, 2]))))
        words = [w[:3] + "." if i in drop and len(w) > 4 else w for i, w in enumerate(words)
                 if not (i in drop and len(w) <= 4)] or words
    else:
        for _ in range(rng.choice([1, 2])):
            i = rng.randrange(len(words))
            w = words[i]
            if len(w) < 3:
                continue
            j = rng.randrange(len(w) - 1)
            words[i] = rng.choice([w[:j] + w[j + 1] + w[j] + w[j + 2:], w[:j] + w[j + 1:], w[:j] + w[j] + w[j:]])
    return " ".join(words), op


def make_relists(sources: list[dict], photo_of, rng: random.Random) -> list[dict]:
    out = []
    for n, src in enumerate(sources):
        kind = KINDS[n % len(KINDS)]
        photo = photo_of(src)
        title = src.get("title") or ""
        how = []
        if kind in ("photo", "both"):
            photo, op = relist_photo(photo, rng)
            how.append(op)
        if kind in ("title", "both"):
            title, op = relist_title(title, rng)
            how.append(op)
        out.append({"id": f"relist-{src[C.PRIMARY_KEY]}", "source": src[C.PRIMARY_KEY], "kind": kind,
                    "how": "/".join(how), "photo": photo, "title": title, "category": src.get(C.CATEGORY_FIELD)})
    return out

"""Small product thumbnails, written at ingest and served to the search page.

A catalogue's photos can be local paths (relative to a catalogue file the server
never sees), data: URIs (stored in Milvus only as a hash) or URLs (fetching those
on a page view would make the server an open proxy). So the photo stage of ingest,
which holds every photo's bytes anyway, also writes a thumbnail:

    <data dir>/thumbs/<content_hash[:2]>/<content_hash>.jpg

keyed by the row's `content_hash` (stored in Milvus, unique to the photo, title and
model the row was built from), so the page asks for exactly the photo a hit was
encoded from, and a name can only be 64 hex digits: nothing outside the folder can
be named. Re-running `samestyle ingest` on a catalogue writes the thumbnails that are
missing (the photo stage runs for unchanged products too).

Measured on the generated catalogue: ~3-6 KB per product at 192 px, JPEG q 80
(docs/web.md has the figures).
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from PIL import Image

log = logging.getLogger(__name__)

SIZE = 192  # px, longest side: two grid columns on a phone, sharp on a 1x desktop
QUALITY = 80
FOLDER = "thumbs"
_NAME = re.compile(r"[0-9a-f]{64}")


def valid_key(key: str) -> bool:
    """True when `key` can name a thumbnail (a sha256 hex digest)."""
    return isinstance(key, str) and _NAME.fullmatch(key) is not None


class Thumbnails:
    """The thumbnail folder of a data directory."""

    def __init__(self, data_dir: str | Path, size: int = SIZE, quality: int = QUALITY):
        self.root = Path(data_dir) / FOLDER
        self.size = size
        self.quality = quality

    def path(self, key: str) -> Path | None:
        """Where the thumbnail of `key` lives, or None for a key that is not a digest."""
        if not valid_key(key):
            return None
        return self.root / key[:2] / f"{key}.jpg"

    def save(self, key: str, photo: bytes) -> bool:
        """Write the thumbnail of `photo` unless it exists; never raises (a product is
        not rejected for its thumbnail: the photo itself already passed ingest's checks)."""
        path = self.path(key)
        if path is None or path.exists():
            return False
        try:
            data = make(photo, self.size, self.quality)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{id(data)}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
            return True
        except Exception as exc:  # noqa: BLE001 - PIL raises many types
            log.warning("thumbnail for %s not written: %s", key[:12], exc)
            return False


    def greys(self, keys: Sequence[str | None], to_grey: Callable[[Image.Image], np.ndarray],
              shape: tuple[int, int]) -> np.ndarray:
        """`to_grey` of each key's thumbnail, uint8 [len(keys), *shape]; all zeros where
        there is none (not written, unreadable, or not a digest)."""
        out = np.zeros((len(keys), *shape), np.uint8)
        for n, key in enumerate(keys):
            path = self.path(key or "")
            if path is None or not path.is_file():
                continue
            try:
                with Image.open(path) as im:
                    out[n] = to_grey(im)
            except Exception as exc:  # noqa: BLE001 - PIL raises many types; a thumbnail is optional
                log.warning("thumbnail %s unreadable: %s", path.name[:12], exc)
        return out


def make(photo: bytes, size: int = SIZE, quality: int = QUALITY) -> bytes:
    """A JPEG at most `size` px on its longest side (RGB, transparency on white)."""
    with Image.open(io.BytesIO(photo)) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much cheaper
        if im.mode not in ("RGB", "RGBA", "LA", "L", "P"):
            im = im.convert("RGB")  # CMYK, 16-bit, float: resampling wants an 8-bit mode
        im.thumbnail((size, size))
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGB", im.size, (255, 255, 255))
            bg.paste(im, mask=im.getchannel("A"))
            im = bg
        elif im.mode != "RGB":
            im = im.convert("RGB")
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality, optimize=True)
        return out.getvalue()

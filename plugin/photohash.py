"""Perceptual photo hashes for copy detection (`dedup`): a 64-bit DCT hash (pHash) of
the decoded photo. A re-sized, re-compressed or lightly watermarked copy keeps most of
its bits; another photo, even of the same style, flips about half of them. The image
embedding answers "same style"; this answers "same photo".

Pure functions of a decoded PIL image (ingest computes it in the loader's decode step,
loaders.transform.check_photo) and of numpy arrays of hashes (dedup). Stored per
product as 16 hex digits in the attribute contract.PHOTO_HASH ("" / absent: no hash).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

BITS = 64
_SIDE = 32  # the photo is reduced to 32x32 grey, its 8x8 lowest DCT frequencies kept
_LOW = 8


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))
    m[0] /= np.sqrt(2)
    return m * np.sqrt(2 / n)


_DCT = _dct_matrix(_SIDE)


def phash(img) -> int:
    """64-bit DCT hash of a PIL image: grey, 32x32, the 8x8 lowest frequencies, each bit
    set where the coefficient is above their median (the DC term excluded from the median)."""
    from PIL import Image

    grey = np.asarray(img.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:_LOW, :_LOW].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def to_hex(h: int) -> str:
    return f"{h:016x}"


def parse(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Stored hashes (16 hex digits, or None / "" / malformed for none) -> (uint64 array,
    mask of the rows that have one)."""
    out = np.zeros(len(values), dtype=np.uint64)
    has = np.zeros(len(values), dtype=bool)
    for n, v in enumerate(values):
        if isinstance(v, str) and len(v) == 16:
            try:
                out[n] = int(v, 16)
                has[n] = True
            except ValueError:
                pass
    return out, has


def _popcount(x: np.ndarray) -> np.ndarray:
    b = x.view(np.uint8).reshape(len(x), 8)
    return np.unpackbits(b, axis=1).sum(axis=1)


def similarity(hashes: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """1 - Hamming distance / 64 of the hashes of each pair (i[k], j[k]): 1 for the same
    bits, about 0.5 for unrelated photos."""
    if len(i) == 0:
        return np.zeros(0, np.float32)
    d = _popcount(np.bitwise_xor(hashes[i], hashes[j]))
    return (1.0 - d / BITS).astype(np.float32)

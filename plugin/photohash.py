"""Perceptual photo signatures for copy detection (`dedup`): the 63 lowest-frequency
DCT coefficients of the photo in grey (32x32, the DC term left out), L2-normalised and
stored as int8. A re-sized, re-compressed or watermarked copy keeps a cosine of about
0.99+ to its original; two different catalogue photos rarely pass 0.97. The image
embedding answers "same style"; this answers "same photo". Re-crops move the photo
under the grid and are not caught (measured in `samestyle bench dedup`).

A real-valued signature rather than a 64-bit pHash: on centred, left-right symmetric
catalogue photos half the DCT coefficients sit near zero, so pHash's bits (coefficient
above the median or not) flip under a JPEG re-save (14 of 64 bits on a re-saved test
photo); the coefficients themselves barely move.

Pure functions of a decoded PIL image (ingest computes it in the loader's decode step,
loaders.transform.inspect_photo) and of numpy arrays (dedup). Stored per product as
126 hex digits in the attribute contract.PHOTO_HASH ("" / absent: none).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

_SIDE = 32  # the photo is reduced to 32x32 grey, its 8x8 lowest DCT frequencies kept
_LOW = 8
DIM = _LOW * _LOW - 1  # the DC term (mean brightness) left out
HEX_LEN = 2 * DIM
_SCALE = 127


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))
    m[0] /= np.sqrt(2)
    return m * np.sqrt(2 / n)


_DCT = _dct_matrix(_SIDE)


def signature(img) -> np.ndarray:
    """The photo's DIM low DCT coefficients (grey, 32x32, DC left out), unit length
    (all zero for a flat photo)."""
    grey = np.asarray(img.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:_LOW, :_LOW].ravel()[1:]
    norm = np.linalg.norm(low)
    return (low / norm if norm > 1e-6 else np.zeros(DIM)).astype(np.float32)


def to_hex(sig: np.ndarray) -> str:
    """A signature as HEX_LEN hex digits (int8, x127)."""
    q = np.clip(np.round(np.asarray(sig, np.float64) * _SCALE), -_SCALE, _SCALE).astype(np.int8)
    return q.tobytes().hex()


def photo_hash(img) -> str:
    """What ingest stores: to_hex(signature(img))."""
    return to_hex(signature(img))


def parse(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Stored signatures (HEX_LEN hex digits, or None / "" / malformed for none) ->
    (float32 [n, DIM] unit rows, zero where none; mask of the rows that have one)."""
    out = np.zeros((len(values), DIM), dtype=np.float32)
    has = np.zeros(len(values), dtype=bool)
    for n, v in enumerate(values):
        if isinstance(v, str) and len(v) == HEX_LEN:
            try:
                q = np.frombuffer(bytes.fromhex(v), dtype=np.int8).astype(np.float32)
            except ValueError:
                continue
            norm = np.linalg.norm(q)
            if norm > 0:
                out[n], has[n] = q / norm, True
    return out, has


def cosine(sigs: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """Cosine of the signatures of each pair (i[k], j[k]): about 1 for a copy."""
    out = np.empty(len(i), np.float32)
    for s in range(0, len(i), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", sigs[i[s:s + chunk]], sigs[j[s:s + chunk]])
    return out


def similarity(sigs: np.ndarray, i: np.ndarray, j: np.ndarray, floor: float) -> np.ndarray:
    """How much each pair looks like one photo: the signature cosine stretched from
    [floor, 1] to [0, 1] (0 below floor). Two photos of one style already score 0.9+
    by cosine; the stretch gives the copies' 0.99+ the room a score needs."""
    return np.clip((cosine(sigs, i, j) - floor) / (1 - floor), 0, 1).astype(np.float32)

"""Photo registration for copy detection (`dedup`): is one photo a re-crop of the other?

A re-cropped copy (a seller keeping 80-95 % of a photo, resized back) moves the product
under any global grid, so the whole-photo signature (`samestyle.photohash`) misses it, and
at catalogue sizes (60x80 px) the smooth silhouette of a same-category lookalike matches
a coarse crop search about as well as the copy does. What does tell them apart is fine
detail *after exact alignment*: a copy's texture lines up pixel for pixel, a lookalike's
does not. So, for a pair of grey photos (GREY_SIZE):

1. a coarse search over crop hypotheses (window scale 1.0-0.8 of one photo, 3x3 positions
   in the free margin, both directions: either photo may be the crop) at half size;
2. Gauss-Newton refinement of the best one (scale, x and y offset; brightness gain and
   bias solved in closed form) on the smoothed photos at full size;
3. the scores: the normalised cross-correlation of the band-passed photos (differences of
   Gaussians, one per BANDS entry) at the refined alignment.

The fine band tells a copy best when both photos keep their detail; the coarser one
holds up when a re-listing lost its fine detail to a down-size or a hard JPEG
re-save (issue 15: on `bench dedup`'s re-listings, taking the better of the two, each
stretched from its own floor, found 0.8-0.9 points more re-listings on both seeds for
0.1-0.2 points of precision).

Measured on Myntra (docs/benchmarks, dedup): re-cropped copies reach a median fine-band NCC of
0.97, candidate lookalike pairs a median of 0.51 (p99 0.92). Pure numpy/scipy on
arrays: `grey` decodes, `register` scores pairs in batches, `similarity` stretches the
score the way dedup uses it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

GREY_SIZE = (60, 80)  # (width, height): Myntra's own photo size, a thumbnail's longest side is larger
SMOOTH = 1.0  # sigma of the smoothed photo the alignment runs on
BANDS = ((0.6, 2.0), (1.0, 2.5))  # the differences of Gaussians compared after alignment (fine, coarse)
SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)  # window scales of the coarse search
STEPS = 3  # positions per axis of a window in the free margin
ITERATIONS = 6
BATCH = 256


def grey(img: Image.Image) -> np.ndarray:
    """A decoded photo in grey at GREY_SIZE, uint8 [H, W]."""
    return np.asarray(img.convert("L").resize(GREY_SIZE, Image.Resampling.BILINEAR), np.uint8)


def _at(shape: tuple[int, int, int], x: np.ndarray, y: np.ndarray):
    """Where bilinear sampling at (x[p], y[p]) reads (pixel centres at integers, edges
    clamped): the flat index of each top-left neighbour in a [P*H*W] array, and weights."""
    p, h, w = shape
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0 = x.astype(np.int32)
    y0 = y.astype(np.int32)
    base = y0 * w + x0 + (np.arange(p, dtype=np.int32) * (h * w))[:, None]
    return base, (x - x0).astype(np.float32), (y - y0).astype(np.float32), w


def _read(a: np.ndarray, at) -> np.ndarray:
    base, wx, wy, w = at
    flat = a.reshape(-1)
    top = flat[base] * (1 - wx) + flat[base + 1] * wx
    bottom = flat[base + w] * (1 - wx) + flat[base + w + 1] * wx
    return top * (1 - wy) + bottom * wy


def _sample(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear a[p] at (x[p], y[p]) (pixel centres at integers, edges clamped): [P, N]."""
    return _read(a, _at(a.shape, x, y))


def _ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-6)


class Prepared:
    """Per-photo images the registration reads (computed once per photo, not per pair)."""

    def __init__(self, greys: np.ndarray):
        g = greys.astype(np.float32)
        self.smooth = gaussian_filter(g, (0, SMOOTH, SMOOTH))
        self.gy, self.gx = np.gradient(self.smooth, axis=(1, 2))
        self.bands = [gaussian_filter(g, (0, lo, lo)) - gaussian_filter(g, (0, hi, hi)) for lo, hi in BANDS]
        half = g.reshape(len(g), g.shape[1] // 2, 2, g.shape[2] // 2, 2).mean((2, 4))
        self.half = gaussian_filter(half, (0, SMOOTH / 2, SMOOTH / 2))


def _grid(h: int, w: int):
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return u.reshape(1, -1), v.reshape(1, -1)


def _coarse(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best crop hypothesis of src's window onto dst (half-size photos): scale, x, y
    (in half-size pixels) and its NCC."""
    p, h, w = src.shape
    u, v = _grid(h, w)
    d = dst.reshape(p, -1)
    best = np.full(p, -2.0, np.float32)
    bs, bx, by = np.ones(p, np.float32), np.zeros(p, np.float32), np.zeros(p, np.float32)
    for f in SCALES:
        for fy in (np.linspace(0, 1, STEPS) if f < 1 else (0.0,)):
            for fx in (np.linspace(0, 1, STEPS) if f < 1 else (0.0,)):
                tx, ty = fx * (1 - f) * (w - 1), fy * (1 - f) * (h - 1)
                c = _ncc(_sample(src, np.broadcast_to(tx + f * u, (p, u.size)),
                                 np.broadcast_to(ty + f * v, (p, v.size))), d)
                m = c > best
                best[m], bs[m], bx[m], by[m] = c[m], f, tx, ty
    return bs, bx, by, best


def _refine(P: Prepared, a: np.ndarray, b: np.ndarray, s, tx, ty) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton on (scale, x, y) of a's window onto b (full size): where each of b's
    pixels reads a, x and y [P, H*W]."""
    _, h, w = P.smooth.shape
    u, v = _grid(h, w)
    sa, ga_x, ga_y = P.smooth[a], P.gx[a], P.gy[a]
    sb = P.smooth[b].reshape(len(b), -1)
    sb = sb - sb.mean(1, keepdims=True)
    s, tx, ty = s[:, None].copy(), tx[:, None].copy(), ty[:, None].copy()
    for _ in range(ITERATIONS):
        at = _at(sa.shape, tx + s * u, ty + s * v)
        aw = _read(sa, at)
        aw -= aw.mean(1, keepdims=True)
        gain = (aw * sb).sum(1, keepdims=True) / ((aw * aw).sum(1, keepdims=True) + 1e-6)
        r = sb - gain * aw
        gx, gy = _read(ga_x, at), _read(ga_y, at)
        jac = gain[:, None, :] * np.stack([gx * u + gy * v, gx, gy], 1)  # [P, 3, N]
        jac -= jac.mean(2, keepdims=True)
        jtj = jac @ jac.transpose(0, 2, 1) + 1e-3 * np.eye(3, dtype=np.float32)
        step = np.linalg.solve(jtj, jac @ r[:, :, None])[:, :, 0]
        s = np.clip(s + np.clip(step[:, :1], -0.05, 0.05), 0.6, 1.0)
        tx = tx + np.clip(step[:, 1:2], -3, 3)
        ty = ty + np.clip(step[:, 2:3], -3, 3)
    return tx + s * u, ty + s * v


def align(P: Prepared, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The best crop alignment of each pair (a[k], b[k]), either photo taken as the crop
    of the other (the direction whose coarse crop fits better is refined): the photo
    read (src), the photo it is read onto (dst), and where each of dst's pixels reads
    src, x and y [P, H*W]."""
    fwd = _coarse(P.half[a], P.half[b])
    back = _coarse(P.half[b], P.half[a])
    swap = back[3] > fwd[3]
    src, dst = np.where(swap, b, a), np.where(swap, a, b)
    s = np.where(swap, back[0], fwd[0])
    tx, ty = 2 * np.where(swap, back[1], fwd[1]) + 0.5 * (1 - s), 2 * np.where(swap, back[2], fwd[2]) + 0.5 * (1 - s)
    return (src, dst, *_refine(P, src, dst, s, tx, ty))


def register(P: Prepared, i: np.ndarray, j: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Band NCCs of each pair (i[k], j[k]) of prepared photos at their best crop
    alignment, either photo taken as the crop of the other: float32 [len(i),
    len(BANDS)] in [-1, 1], one column per band."""
    out = np.zeros((len(i), len(BANDS)), np.float32)
    for s0 in range(0, len(i), batch):
        src, dst, x, y = align(P, i[s0:s0 + batch], j[s0:s0 + batch])
        at = _at(P.smooth[src].shape, x, y)
        out[s0:s0 + batch] = np.stack([_ncc(_read(band[src], at), band[dst].reshape(len(dst), -1))
                                       for band in P.bands], 1)
    return out


def similarity(band_ncc: np.ndarray, floor, top) -> np.ndarray:
    """Each band's NCC stretched from its [floor, top] to [0, 1] and clipped, then the
    best band: [n, len(BANDS)] (floor, top: one per band) -> [n]; a 1-D array of one
    band's NCCs with scalar floor and top stretches as it is."""
    floor, top = np.asarray(floor, np.float32), np.asarray(top, np.float32)
    out = np.clip((np.asarray(band_ncc, np.float32) - floor) / (top - floor), 0.0, 1.0)
    return (out.max(-1) if out.ndim == 2 else out).astype(np.float32)

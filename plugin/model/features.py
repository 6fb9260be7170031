"""Frozen-backbone features of a catalogue, computed once with the exported ONNX
backbones (the same graphs Triton serves) and cached on disk, so training and
evaluation run only the small fusion encoder.

Cache: <cache_dir>/<key>.npz with image_tokens (fp16 [N,T,1280]), text_tokens
(fp16 [N,L,384]), attention_mask (int8 [N,L]), has_image (bool [N]), ids. The key
hashes the catalogue file, the image backbone graph, the text backbone graph and
the preprocessing constants, so a changed input never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import contract as C
from . import preprocess as pp

log = logging.getLogger(__name__)


@dataclass
class Features:
    ids: np.ndarray  # str [N]
    image_tokens: np.ndarray  # fp16 [N, T, Fi]
    text_tokens: np.ndarray  # fp16 [N, L, Ft]
    attention_mask: np.ndarray  # int8 [N, L]
    has_image: np.ndarray  # bool [N]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def image_mask(self) -> np.ndarray:
        return np.repeat(self.has_image[:, None], self.image_tokens.shape[1], axis=1).astype(np.int64)


def _file_hash(path: Path, h=None) -> "hashlib._Hash":
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def cache_key(catalogue: Path, bundle: Path, consts: dict, ids: list[str] | None = None) -> str:
    h = _file_hash(catalogue)
    if ids is not None:  # a --limit run reads fewer rows of the same file
        h.update(f"rows={len(ids)}".encode())
    for name in (C.ONNX_IMAGE_BACKBONE, C.ONNX_TEXT_BACKBONE):
        _file_hash(bundle / name, h)
    h.update(repr(sorted(consts.items())).encode())
    return h.hexdigest()[:16]


def compute(ids: list[str], titles: list[str], photo_paths: list[Path | None], bundle: Path,
            batch: int = 64, progress: bool = True) -> Features:
    """Run the ONNX backbones over products. Unreadable photos count as absent
    (logged), since features feed training, not the index."""
    from ..encoders.onnx import OnnxEncoder

    enc = OnnxEncoder(bundle, max_batch=batch)
    consts = enc.consts
    n = len(ids)
    L = enc.max_len
    img = np.zeros((n, C.IMAGE_TOKENS, C.IMAGE_FEATURE_DIM), dtype=np.float16)
    txt = np.zeros((n, L, C.TEXT_FEATURE_DIM), dtype=np.float16)
    am = np.zeros((n, L), dtype=np.int8)
    has = np.zeros(n, dtype=bool)

    def load(i):
        p = photo_paths[i]
        if p is None:
            return i, None
        try:
            return i, pp.decode_image(Path(p).read_bytes(), consts)
        except (OSError, pp.PreprocessError) as exc:
            log.warning("product %s: photo skipped (%s)", ids[i], exc)
            return i, None

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="backbone features", unit="product")
    with ThreadPoolExecutor(max_workers=2) as pool:
        for s in range(0, n, batch):
            idx = list(range(s, min(n, s + batch)))
            loaded = [x for x in pool.map(load, idx) if x[1] is not None]
            if loaded:
                rows = [i for i, _ in loaded]
                img[rows] = enc.image_tokens(np.stack([a for _, a in loaded])).astype(np.float16)
                has[rows] = True
            clean = [pp.clean_title(titles[i], consts) for i in idx]
            tok = pp.tokenize(enc.tokenizer, clean)
            txt[idx] = enc.text_tokens(tok).astype(np.float16)
            am[idx] = tok[C.T_ATTENTION_MASK]
            if bar:
                bar.update(len(idx))
    if bar:
        bar.close()
    return Features(np.asarray(ids), img, txt, am, has)


def _rows_in(catalogue: Path) -> int:
    """Data rows of a CSV/JSONL file (the full-catalogue cache key stays stable)."""
    with open(catalogue, "rb") as f:
        n = sum(1 for line in f if line.strip())
    return n - 1 if catalogue.suffix.lower() == ".csv" else n


def cached(catalogue: Path, ids, titles, photo_paths, bundle: Path, cache_dir: Path, progress=True) -> Features:
    import json

    consts = json.loads((bundle / "preprocess.json").read_text())
    key = cache_key(catalogue, bundle, consts, None if len(ids) == _rows_in(catalogue) else list(ids))
    path = Path(cache_dir) / f"features-{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if len(z["ids"]) == len(ids) and list(z["ids"]) == list(ids):
            log.info("features from cache %s", path)
            return Features(z["ids"], z["image_tokens"], z["text_tokens"], z["attention_mask"], z["has_image"])
        log.warning("feature cache %s holds other products; recomputing", path)
    f = compute(ids, titles, photo_paths, bundle, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=f.ids, image_tokens=f.image_tokens, text_tokens=f.text_tokens,
             attention_mask=f.attention_mask, has_image=f.has_image)
    tmp.rename(path)
    return f


def fused_views(fusion, f: Features, batch: int = 512) -> dict[str, np.ndarray]:
    """The three views of every product from cached features (torch, no server)."""
    import torch

    out = {v: np.zeros((len(f), fusion.cfg.embed_dim), dtype=np.float32) for v in C.VIEWS}
    with torch.no_grad():
        for s in range(0, len(f), batch):
            sl = slice(s, s + batch)
            it = torch.from_numpy(f.image_tokens[sl].astype(np.float32))
            im = torch.from_numpy(np.repeat(f.has_image[sl, None], it.shape[1], axis=1).astype(np.int64))
            L = max(1, int(f.attention_mask[sl].sum(1).max()))  # padding is masked: trim it
            tt = torch.from_numpy(f.text_tokens[sl, :L].astype(np.float32))
            am = torch.from_numpy(f.attention_mask[sl, :L].astype(np.int64))
            for k, v in fusion.views(it, im, tt, am).items():
                out[k][sl] = v.numpy()
    return out


def backbone_vectors(f: Features, batch: int = 2048) -> dict[str, np.ndarray]:
    """The raw pretrained baselines: EfficientNet global average (photo) and MiniLM
    mean pooling (title), L2-normalised; zero rows where the input is absent."""
    img = f.image_tokens[:, 0].astype(np.float32)
    img /= np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    img *= f.has_image[:, None]
    txt = np.zeros((len(f), f.text_tokens.shape[2]), dtype=np.float32)
    for s in range(0, len(f), batch):
        m = f.attention_mask[s : s + batch, :, None].astype(np.float32)
        t = (f.text_tokens[s : s + batch].astype(np.float32) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        txt[s : s + batch] = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return {"image": img, "text": txt}


def for_catalogue(labelled, cache_dir: Path, progress: bool = True) -> Features:
    """Cached backbone features of a labelled catalogue (samestyle.model.dataset),
    computed with the shipped model's exported backbones (the backbones are frozen,
    so every fusion checkpoint shares them)."""
    from ..config import DEFAULT_MODEL_DIR
    from ..export import ensure_onnx

    bundle = ensure_onnx(DEFAULT_MODEL_DIR)
    return cached(labelled.path, labelled.ids, labelled.titles, labelled.photos, bundle, cache_dir, progress)

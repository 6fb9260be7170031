"""Frozen-backbone features of a catalogue, computed once with ONNX Runtime and
cached on disk, so training and evaluation run only what is trained: the photo
tower's tail and the fusion encoder.

Cache: <cache_dir>/stem-<key>.npz with image_stem (fp16 [N, *stem_shape(k, photo_input)]: the
frozen EfficientNet stem's activations at the input of block k, and with photo_input
"grey-colour" the colour histogram map beside them, see `ImageBackbone`), text_tokens (fp16 [N,L,384]),
attention_mask (int8 [N,L]), has_image (bool [N]), ids. The key hashes the
catalogue file, the stem graph, the text backbone graph and the preprocessing
constants, so a changed input never reuses a stale cache. Image tokens for a given
tail (the shipped one, or the untrained ImageNet one for the baselines) are computed
from the stem activations in torch (`tokens_through`), which is cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import contract as C
from ..bars import progress_bar
from . import preprocess as pp
from .backbones import ImageBackbone, TextBackbone, pooled_text
from .onnx import export_graph, export_text_backbone, session as _session

log = logging.getLogger(__name__)


def _private(path: Path, suffix: str) -> Path:
    """A temporary name beside `path` that only this process writes (two trainings started
    together share the cache folder), renamed onto `path` once complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


@dataclass
class Features:
    ids: np.ndarray  # str [N]
    image_tokens: np.ndarray | None  # fp16 [N, T, Fi] through one tail (see tokens_through)
    text_tokens: np.ndarray  # fp16 [N, L, Ft]
    attention_mask: np.ndarray  # int8 [N, L]
    has_image: np.ndarray  # bool [N]
    image_stem: np.ndarray | None = None  # fp16 [N, *stem_shape(tail_from, photo_input)]: frozen stem activations
    cache_name: str | None = None  # the stem cache file's stem, for caches derived from it
    tail_from: int = C.IMAGE_TAIL_FROM  # the block image_stem feeds (the photo tower's split)
    photo_input: str = C.PHOTO_INPUT  # what the photo tower sees (contract.PHOTO_INPUTS)
    stem_digest: str | None = None  # the fine-tuned stem the activations come from (None: ImageNet's)

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


def _rows_in(catalogue: Path) -> int:
    """Data rows of a CSV/JSONL file (the full-catalogue cache key stays stable)."""
    with open(catalogue, "rb") as f:
        n = sum(1 for line in f if line.strip())
    return n - 1 if catalogue.suffix.lower() == ".csv" else n


def fused_views(fusion, f: Features, batch: int = 512) -> dict[str, np.ndarray]:
    """The three views of every product from cached features (torch, no server)."""
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
    img = f.image_tokens[:, 0, : C.IMAGE_FEATURE_DIM].astype(np.float32)  # the head map's part
    img /= np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    img *= f.has_image[:, None]
    txt = np.zeros((len(f), f.text_tokens.shape[2]), dtype=np.float32)
    for s in range(0, len(f), batch):
        m = f.attention_mask[s : s + batch, :, None].astype(np.float32)
        t = (f.text_tokens[s : s + batch].astype(np.float32) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        txt[s : s + batch] = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return {"image": img, "text": txt}


def for_catalogue(labelled, cache_dir: Path, progress: bool = True, backbone=None, tokens: bool = True,
                  tail_from: int | None = None, photo_input: str | None = None) -> Features:
    """Cached frozen features of a labelled catalogue (samestyle.dataset): stem
    activations and title token states; with `tokens`, also the image tokens through
    `backbone`'s tail (default: the untrained ImageNet tail, i.e. the raw backbone)."""
    if tail_from is None:
        tail_from = backbone.tail_from if backbone is not None else C.IMAGE_TAIL_FROM
    if photo_input is None:
        photo_input = backbone.photo_input if backbone is not None else C.PHOTO_INPUT
    f = cached_stem(labelled.path, labelled.ids, labelled.titles, labelled.photos, cache_dir, progress,
                    tail_from=tail_from, photo_input=photo_input, stem=backbone)
    if tokens:
        f.image_tokens = tokens_through(f, backbone) if backbone is not None else imagenet_tokens(f, cache_dir)
    return f


# --- stem activations (the photo tower's frozen half) + title token states -----------

def _stem_onnx(path: Path, tail_from: int, photo_input: str = C.PHOTO_INPUT, stem=None) -> Path:
    """The frozen stem (ImageNet's, or `stem`'s when it is an ImageBackbone with a
    fine-tuned one) as an ONNX graph (ONNX Runtime runs it ~2x faster than torch here)."""
    if path.exists():
        return path
    ib = stem if stem is not None else ImageBackbone(tail_from=tail_from, photo_input=photo_input)

    class _Stem(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ib = ib

        def forward(self, x):
            return self.ib.stem(x)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private(path, ".onnx")
    with torch.no_grad():
        export_graph(_Stem().eval(), (torch.zeros(2, 3, C.IMAGE_SIZE, C.IMAGE_SIZE),), tmp, ["pixel_values"], ["stem"],
                     {"pixel_values": {0: "b"}, "stem": {0: "b"}})
    tmp.rename(path)
    return path


def _text_onnx(folder: Path) -> Path:
    """The frozen text backbone as ONNX + its tokenizer.json, exported once."""
    if (folder / C.ONNX_TEXT_BACKBONE).exists():
        return folder
    tmp = _private(folder, "")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export_text_backbone(TextBackbone(), tmp, C.MAX_TEXT_LEN)
    if (folder / C.ONNX_TEXT_BACKBONE).exists():  # another run finished the same export first
        shutil.rmtree(tmp, ignore_errors=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _title_states(text, tokenizer, titles, consts) -> tuple[np.ndarray, np.ndarray]:
    """Token states [B, L, 384] and attention mask [B, L] of a batch of raw titles."""
    tok = pp.tokenize(tokenizer, [pp.clean_title(t, consts) for t in titles])
    return text.run([C.T_TEXT_TOKENS], tok)[0], tok[C.T_ATTENTION_MASK]


def title_vectors(titles, cache_dir: Path, batch: int = 128, threads: int = 2, on_batch=None) -> np.ndarray:
    """The frozen text backbone's sentence vector of every title (mean pooling,
    L2-normalised, [N, 384] float32), through the same cleaning, tokenizer and ONNX graph
    as the training features. Cached in `cache_dir` under a key of the titles, the graph
    and the preprocessing constants, so a second run (a resumed or another photo-tune)
    reads them back instead of encoding 42k titles again."""
    text_dir = _text_onnx(Path(cache_dir) / f"text-L{C.MAX_TEXT_LEN}")
    consts = C.preprocess_constants()
    h = _file_hash(text_dir / C.ONNX_TEXT_BACKBONE)
    h.update(repr(sorted(consts.items())).encode())
    for t in titles:
        h.update(b"\0" + ("" if t is None else str(t)).encode("utf-8", "surrogatepass"))
    path = Path(cache_dir) / f"titles-{h.hexdigest()[:16]}.npy"
    if path.exists():
        out = np.load(path, allow_pickle=False)
        if out.shape == (len(titles), C.TEXT_FEATURE_DIM):
            log.info("title vectors from cache %s", path)
            if on_batch:
                on_batch(len(titles))
            return out
    text = _session(text_dir / C.ONNX_TEXT_BACKBONE, threads)
    tokenizer = pp.load_tokenizer(str(text_dir / "tokenizer.json"), C.MAX_TEXT_LEN)
    out = np.zeros((len(titles), C.TEXT_FEATURE_DIM), dtype=np.float32)
    for s in range(0, len(titles), batch):
        states, mask = _title_states(text, tokenizer, titles[s: s + batch], consts)
        out[s: s + len(states)] = pooled_text(torch.from_numpy(states.astype(np.float32)),
                                              torch.from_numpy(np.asarray(mask))).numpy()
        if on_batch:
            on_batch(len(states))
    tmp = _private(path, ".npy")
    np.save(tmp, out)
    tmp.rename(path)
    return out


def compute_stem(ids, titles, photo_paths, text_dir: Path, stem_graph: Path, batch: int = 64,
                 threads: int = 2, progress: bool = True, tail_from: int = C.IMAGE_TAIL_FROM,
                 photo_input: str = C.PHOTO_INPUT) -> Features:
    """Stem activations of every photo and token states of every title (ONNX Runtime).
    Unreadable photos count as absent (logged): features feed training, not the index."""
    stem = _session(stem_graph, threads)
    text = _session(text_dir / C.ONNX_TEXT_BACKBONE, threads)
    consts = C.preprocess_constants()
    n, L = len(ids), C.MAX_TEXT_LEN
    tokenizer = pp.load_tokenizer(str(text_dir / "tokenizer.json"), L)
    acts = np.zeros((n, *C.stem_shape(tail_from, photo_input)), dtype=np.float16)
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

    bar = progress_bar(total=n, desc="backbone features", unit="product", enabled=progress)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for s in range(0, n, batch):
            idx = list(range(s, min(n, s + batch)))
            loaded = [x for x in pool.map(load, idx) if x[1] is not None]
            if loaded:
                rows = [i for i, _ in loaded]
                acts[rows] = stem.run(["stem"], {"pixel_values": np.stack([a for _, a in loaded])})[0].astype(np.float16)
                has[rows] = True
            states, mask = _title_states(text, tokenizer, [titles[i] for i in idx], consts)
            txt[idx] = states.astype(np.float16)
            am[idx] = mask
            bar.update(len(idx))
    bar.close()
    return Features(np.asarray(ids), None, txt, am, has, image_stem=acts, tail_from=tail_from,
                    photo_input=photo_input)


def cached_stem(catalogue: Path, ids, titles, photo_paths, cache_dir: Path, progress=True, threads: int = 2,
                tail_from: int = C.IMAGE_TAIL_FROM, photo_input: str = C.PHOTO_INPUT, stem=None) -> Features:
    """Stem activations (at the input of block `tail_from`) + title features of a
    catalogue, computed once and cached. `stem`: an ImageBackbone whose stem is used
    when it is a fine-tuned one (else ImageNet's)."""
    if tail_from not in C.IMAGE_STEM_SHAPES:
        raise ValueError(f"the photo tower splits at blocks {sorted(C.IMAGE_STEM_SHAPES)}, not [{tail_from}]")
    text_bundle = _text_onnx(Path(cache_dir) / f"text-L{C.MAX_TEXT_LEN}")
    suffix = "" if photo_input == C.PHOTO_INPUT else f"-{C.check_photo_input(photo_input)}"
    digest = stem.stem_digest() if stem is not None else None
    if digest:
        suffix += f"-tuned{digest[:12]}"
    stem_graph = _stem_onnx(Path(cache_dir) / f"stem-b{tail_from}-{C.IMAGE_SIZE}{suffix}.onnx", tail_from,
                            photo_input, stem if digest else None)
    consts = C.preprocess_constants()
    h = _file_hash(catalogue)
    if len(ids) != _rows_in(catalogue):
        h.update(f"rows={len(ids)}".encode())
    _file_hash(stem_graph, h)
    _file_hash(text_bundle / C.ONNX_TEXT_BACKBONE, h)
    h.update(repr(sorted(consts.items())).encode())
    path = Path(cache_dir) / f"stem-{h.hexdigest()[:16]}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if list(z["ids"]) == list(ids):
            log.info("features from cache %s", path)
            return Features(z["ids"], None, z["text_tokens"], z["attention_mask"], z["has_image"],
                            image_stem=z["image_stem"], cache_name=path.stem, tail_from=tail_from,
                            photo_input=photo_input, stem_digest=digest)
        log.warning("feature cache %s holds other products; recomputing", path)
    f = compute_stem(ids, titles, photo_paths, text_bundle, stem_graph, progress=progress, threads=threads,
                     tail_from=tail_from, photo_input=photo_input)
    f.stem_digest = digest
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private(path, ".npz")
    np.savez(tmp, ids=f.ids, image_stem=f.image_stem, text_tokens=f.text_tokens,
             attention_mask=f.attention_mask, has_image=f.has_image)
    tmp.rename(path)
    return f


def imagenet_tokens(f: Features, cache_dir: Path | None = None, start=None) -> np.ndarray:
    """Image tokens through the untrained ImageNet tail (the raw backbone: baselines,
    locality reference), cached beside the stem activations they come from. Stem
    activations of a fine-tuned stem need `start`: the fine-tuned backbone they came
    from, whose own tail then stands in for ImageNet's (the tower training starts from)."""
    if f.stem_digest is not None:
        if start is None or start.stem_digest() != f.stem_digest:
            raise ValueError("these stem activations come from a fine-tuned stem: pass the backbone they came from")
        return tokens_through(f, start)
    path = Path(cache_dir) / f"{f.cache_name}.imagenet-tokens.npy" if cache_dir and f.cache_name else None
    if path is not None and path.exists():
        return np.load(path)
    tokens = tokens_through(f, ImageBackbone(tail_from=f.tail_from, photo_input=f.photo_input))
    if path is not None:
        tmp = _private(path, ".npy")
        np.save(tmp, tokens)
        tmp.rename(path)
    return tokens


def tokens_through(f: Features, backbone, batch: int = 512) -> np.ndarray:
    """Image tokens [N, T, F] (fp16) of every product through `backbone`'s tail,
    from the cached stem activations; zero rows where there is no photo."""
    if backbone.tail_from != f.tail_from:
        raise ValueError(f"stem activations feed block [{f.tail_from}], the tail starts at block [{backbone.tail_from}]")
    if backbone.photo_input != f.photo_input:
        raise ValueError(f"stem activations are of photo input [{f.photo_input}], "
                         f"the photo tower takes [{backbone.photo_input}]")
    if backbone.stem_digest() != f.stem_digest:
        raise ValueError("stem activations come from another stem than this photo tower's "
                         "(ImageNet's vs a fine-tuned one): compute them with the tower's own")
    out = np.zeros((len(f), C.IMAGE_TOKENS, C.image_feature_dim(f.photo_input)), dtype=np.float16)
    with torch.no_grad():
        for s in range(0, len(f), batch):
            sl = slice(s, s + batch)
            x = torch.from_numpy(f.image_stem[sl].astype(np.float32))
            out[sl] = (backbone.tail(x) * torch.from_numpy(f.has_image[sl])[:, None, None]).numpy().astype(np.float16)
    return out

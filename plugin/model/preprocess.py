"""Photo and title preprocessing shared by every runtime.

This file depends only on numpy, Pillow and `tokenizers`, because `samestyle export`
copies it verbatim into the Triton model repository, where the python-backend models
import it in the serving environment. Constants come in as a dict (see
`samestyle.contract.preprocess_constants`), never from this package, so the copy and
the original cannot disagree.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # checked below against the contract's own limit


class PreprocessError(ValueError):
    """A photo or title that cannot be encoded; `field` names which."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def decode_image(data: bytes, consts: dict) -> np.ndarray:
    """Encoded JPEG/PNG/WebP bytes -> float32 [3, S, S], padded to a square on white,
    resized bilinearly and normalised. Raises PreprocessError on bad bytes."""
    if len(data) > consts["max_photo_bytes"]:
        raise PreprocessError(
            "image", f"photo is {len(data)} bytes, over the limit of {consts['max_photo_bytes']}"
        )
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > consts["max_photo_pixels"]:
                raise PreprocessError(
                    "image", f"photo is {w}x{h} px, over the limit of {consts['max_photo_pixels']} px"
                )
            im = im.convert("RGB")
    except PreprocessError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise PreprocessError("image", f"undecodable photo ({type(exc).__name__}: {exc})") from None
    size = int(consts["image_size"])
    side = max(w, h)
    pad = int(consts["image_pad_value"])
    canvas = Image.new("RGB", (side, side), (pad, pad, pad))
    canvas.paste(im, ((side - w) // 2, (side - h) // 2))
    canvas = canvas.resize((size, size), Image.BILINEAR)
    arr = np.asarray(canvas, dtype=np.float32)
    mean = np.asarray(consts["image_mean"], dtype=np.float32)
    std = np.asarray(consts["image_std"], dtype=np.float32)
    arr = (arr - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def clean_title(text: str | bytes | None, consts: dict) -> str:
    """UTF-8 bytes or str -> stripped title ('' when absent). Raises on invalid UTF-8
    or an oversize title."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PreprocessError("text", f"title is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    text = " ".join(text.split())
    if len(text) > consts["max_title_chars"]:
        raise PreprocessError(
            "text", f"title has {len(text)} characters, over the limit of {consts['max_title_chars']}"
        )
    return text


def load_tokenizer(path: str, max_len: int):
    """A `tokenizers.Tokenizer` from tokenizer.json that truncates and pads to max_len."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(length=max_len, pad_id=0, pad_token="[PAD]")
    return tok


def tokenize(tokenizer, titles: list[str]) -> dict[str, np.ndarray]:
    """Titles -> int64 input_ids, attention_mask, token_type_ids, each [B, max_len].
    An empty title gives an all-zero attention mask (the text is masked)."""
    n = len(titles)
    encs = tokenizer.encode_batch([t if t else "" for t in titles]) if n else []
    max_len = tokenizer.padding["length"]
    ids = np.zeros((n, max_len), dtype=np.int64)
    mask = np.zeros((n, max_len), dtype=np.int64)
    for i, (t, e) in enumerate(zip(titles, encs)):
        if not t:
            continue
        ids[i] = e.ids
        mask[i] = e.attention_mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def view_inputs(image_tokens: np.ndarray, image_mask: np.ndarray, text_tokens: np.ndarray, attention_mask: np.ndarray) -> dict:
    """Fusion-encoder inputs for the three views of B products as one 3B batch, in
    the order fused (both), image (title masked), text (photo masked). Split the
    [3B, D] output with `split_views`."""
    zi = np.zeros_like(image_mask)
    zt = np.zeros_like(attention_mask)
    return {
        "image_tokens": np.concatenate([image_tokens] * 3).astype(np.float32, copy=False),
        "image_mask": np.concatenate([image_mask, image_mask, zi]).astype(np.int64, copy=False),
        "text_tokens": np.concatenate([text_tokens] * 3).astype(np.float32, copy=False),
        "attention_mask": np.concatenate([attention_mask, zt, attention_mask]).astype(np.int64, copy=False),
    }


def split_views(embedding: np.ndarray) -> dict[str, np.ndarray]:
    b = embedding.shape[0] // 3
    return {"fused": embedding[:b], "image": embedding[b : 2 * b], "text": embedding[2 * b :]}

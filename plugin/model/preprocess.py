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
from tokenizers import Tokenizer

# PIL's own decompression-bomb guard (Image.MAX_IMAGE_PIXELS) stays as it is: it is far
# above the contract's limit, which is checked below on every photo.

# SOF markers of Huffman-coded JPEGs (baseline, extended sequential, progressive): every
# 8x8 luma block costs at least one bit of entropy-coded data in them.
_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2}
_OTHER_SOF = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


# A reason saying an input is over a size limit carries this phrase; it crosses Triton
# inside the text "field: reason", so `too_large` reads it back on the far side.
OVER_LIMIT = "over the limit of"


def too_large(reason: str) -> bool:
    """Whether a refusal's reason is a size limit (the HTTP API answers 413)."""
    return OVER_LIMIT in reason


class PreprocessError(ValueError):
    """A photo or title that cannot be encoded; `field` names which, `too_large`
    whether it was refused for its size."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.too_large = too_large(reason)


def _jpeg_sof(data: bytes) -> int | None:
    """The SOF marker (0xC0..0xCF) of a JPEG, or None when not found in its headers."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _HUFFMAN_SOF or marker in _OTHER_SOF:
            return marker
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no SOF before it
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def check_header(data: bytes, fmt: str | None, w: int, h: int) -> str | None:
    """Why the header's size cannot be true for the bytes behind it, or None.

    A JPEG cut short (or one whose header was rewritten to claim more pixels) decodes
    without an error: libjpeg fills what is missing with grey. A Huffman-coded JPEG
    spends at least one bit per 8x8 luma block, so fewer bits than blocks means the
    header lies."""
    if fmt == "JPEG" and _jpeg_sof(data) in _HUFFMAN_SOF:
        blocks = -(-w // 8) * -(-h // 8)
        if len(data) * 8 < blocks:
            return (f"photo header claims {w}x{h} px, but its {len(data)} bytes cannot hold that many "
                    f"({blocks} blocks need at least {blocks // 8 + 1} bytes): truncated or forged")
    return None


def open_photo(data: bytes, consts: dict) -> Image.Image:
    """Encoded JPEG/PNG/WebP bytes -> a fully decoded RGB image within the contract's
    limits, transparency composited on white (the pad colour). Raises PreprocessError."""
    if len(data) > consts["max_photo_bytes"]:
        raise PreprocessError(
            "image", f"photo is {len(data)} bytes, {OVER_LIMIT} {consts['max_photo_bytes']}"
        )
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > consts["max_photo_pixels"]:
                raise PreprocessError(
                    "image", f"photo is {w}x{h} px, {OVER_LIMIT} {consts['max_photo_pixels']} px"
                )
            lie = check_header(data, im.format, w, h)
            if lie:
                raise PreprocessError("image", lie)
            im.load()  # the whole photo: a truncated PNG/GIF/WebP raises here
            if im.size != (w, h):
                raise PreprocessError("image", f"photo header says {w}x{h} px, decoded {im.size[0]}x{im.size[1]}")
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
                pad = int(consts["image_pad_value"])
                rgba = im.convert("RGBA")
                out = Image.new("RGB", (w, h), (pad, pad, pad))
                out.paste(rgba, mask=rgba.getchannel("A"))
                return out
            return im.convert("RGB")
    except PreprocessError:
        raise
    except Image.DecompressionBombError as exc:
        raise PreprocessError("image", f"photo is over PIL's decompression-bomb limit ({exc})") from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise PreprocessError("image", f"undecodable photo ({type(exc).__name__}: {exc})") from None


def decode_image(data: bytes, consts: dict) -> np.ndarray:
    """Encoded JPEG/PNG/WebP bytes -> float32 [3, S, S], padded to a square on white,
    resized bilinearly and normalised. Raises PreprocessError on bad bytes."""
    im = open_photo(data, consts)
    w, h = im.size
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
            "text", f"title has {len(text)} characters, {OVER_LIMIT} {consts['max_title_chars']}"
        )
    return text


def load_tokenizer(path: str, max_len: int):
    """A `tokenizers.Tokenizer` from tokenizer.json that truncates and pads to max_len."""
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

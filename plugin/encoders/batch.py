"""One batch of products -> the three L2-normalised views: the encode steps that every
runtime shares, so the in-process encoder and the Triton entry model cannot drift.

Used by `samestyle.encoders.onnx.OnnxEncoder` and, copied into the Triton repository
beside preprocess.py by `samestyle export` (samestyle.triton_repo), by the entry model
`product_encoder/1/model.py`. The caller supplies the graphs (`run_backbones`,
`run_fusion`): ONNX Runtime sessions in process, BLS calls in Triton.

This file also runs in Triton's python backend (.venv-serve, numpy<2,
requirements/serve.txt): it imports numpy and preprocess only.
"""

from __future__ import annotations

import numpy as np

try:  # in the app: samestyle.model.preprocess
    from ..model import preprocess as pp
except ImportError:  # in the Triton repository: preprocess.py beside this file
    import preprocess as pp

VIEWS = ("image", "text", "fused")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # pp.tokenize's keys


def prepare(images, texts, consts: dict):
    """Decode the photos and clean the titles of a batch. Returns (pixels, titles, errors):
    pixels {index: [3, S, S]} for products with a usable photo, one title per product
    ('' when absent), one `preprocess.PreprocessError` or None per product. A product
    that fails keeps neither photo nor title, so it reaches no encoder."""
    n = len(images)
    pixels: dict[int, np.ndarray] = {}
    titles = [""] * n
    errors: list = [None] * n
    for i in range(n):
        try:
            titles[i] = pp.clean_title(texts[i], consts)
            if images[i]:
                pixels[i] = pp.decode_image(images[i], consts)
            if not titles[i] and i not in pixels:
                raise pp.PreprocessError("image,text", "product has neither a photo nor a title")
        except pp.PreprocessError as exc:
            errors[i] = exc
            titles[i] = ""
            pixels.pop(i, None)
    return pixels, titles, errors


def encode_batch(images, texts, consts: dict, tokenizer, dim: int, run_backbones, run_fusion):
    """The three views of a batch: (views, errors).

    `images`: photo bytes per product (None or empty for none); `texts`: titles (str,
    UTF-8 bytes or None); `consts`: preprocess.json; `tokenizer`: `pp.load_tokenizer`'s.
    `run_backbones(pixel_values, text_inputs) -> (image_tokens, text_tokens)` runs the
    image backbone on the products with a photo and the text backbone on those with a
    title (an input is None, and its output ignored, when no product has one; the caller
    may run both at once). `run_fusion(feeds) -> [3B, D]` runs the fusion encoder on
    `pp.view_inputs`' feeds (keys: tensor names as in the contract).

    Returns views {image, text, fused: float32 [B, dim]} and one PreprocessError or None
    per product; a failed product's views are zero. A batch in which every product
    failed calls no graph (the fusion encoder's output for fully masked input is zero)."""
    n = len(images)
    pixels, titles, errors = prepare(images, texts, consts)
    has_img = sorted(pixels)
    has_text = [i for i, t in enumerate(titles) if t]
    if not has_img and not has_text:
        # Also what lets Triton's warmup (empty strings) run before BLS is accepted.
        return {v: np.zeros((n, dim), np.float32) for v in VIEWS}, errors
    n_tok, max_len = int(consts["image_tokens"]), int(consts["max_text_len"])
    img_tok = np.zeros((n, n_tok, int(consts["image_feature_dim"])), np.float32)
    img_mask = np.zeros((n, n_tok), np.int64)
    enc = pp.tokenize(tokenizer, titles)
    txt_tok = np.zeros((n, max_len, int(consts["text_feature_dim"])), np.float32)
    pixel_values = np.stack([pixels[i] for i in has_img]) if has_img else None
    text_inputs = {k: enc[k][has_text] for k in TEXT_INPUTS} if has_text else None
    image_out, text_out = run_backbones(pixel_values, text_inputs)
    if has_img:
        img_tok[has_img] = image_out
        img_mask[has_img] = 1
    if has_text:
        txt_tok[has_text] = text_out
    views = pp.split_views(run_fusion(pp.view_inputs(img_tok, img_mask, txt_tok, enc["attention_mask"])))
    return views, errors

"""One source of truth for names, shapes and limits shared by the model, the ONNX
export, the Triton model repository, the Milvus collection and the query layer.

Everything that must agree across processes (the app, the Triton python models,
services querying Milvus directly) is spelled here once. The Triton side cannot
import this package (it runs in its own serving environment), so `export` writes
the values it needs into the model repository as JSON (see `preprocess_constants`).
"""

from __future__ import annotations

# --- model views -----------------------------------------------------------------
VIEWS = ("image", "text", "fused")
"""The three views of a product: photo only (title masked), title only (photo
masked), photo + title fused. A view that cannot exist for a product (the photo
view of a product without a photo) is the all-zero vector: its norm is 0, so it is
recognisable, and under the inner-product metric it scores 0 against everything."""

DEFAULT_EMBED_DIM = 256
MAX_TEXT_LEN = 32  # tokens, [CLS] and [SEP] included
IMAGE_SIZE = 160  # square input of the image backbone, pixels (5x5 head map; see docs/model.md)
IMAGE_GRID = 2  # image tokens: 1 global + IMAGE_GRID**2 regional
IMAGE_TOKENS = 1 + IMAGE_GRID * IMAGE_GRID
IMAGE_FEATURE_DIM = 1280  # EfficientNet-Lite0 head channels
# The photo tower is split where fine-tuning starts: the stem (stem conv + MBConv blocks
# 0..IMAGE_TAIL_FROM-1) stays at its ImageNet weights, so its activations can be cached;
# the tail (blocks IMAGE_TAIL_FROM.., head conv) is trained with the fusion encoder.
# A checkpoint records its split (manifest image_tail.from_block); IMAGE_TAIL_FROM is the default.
IMAGE_TAIL_FROM = 15  # EfficientNet-Lite0 has 16 MBConv blocks; 15 is the last (192 -> 320 ch)
# stem activations [C, H, W] at IMAGE_SIZE for each supported split (the input of block k)
IMAGE_STEM_SHAPES = {
    11: (112, IMAGE_SIZE // 16, IMAGE_SIZE // 16),
    12: (192, IMAGE_SIZE // 32, IMAGE_SIZE // 32),
    13: (192, IMAGE_SIZE // 32, IMAGE_SIZE // 32),
    14: (192, IMAGE_SIZE // 32, IMAGE_SIZE // 32),
    15: (192, IMAGE_SIZE // 32, IMAGE_SIZE // 32),
}
# What the photo tower sees: a checkpoint's manifest `preprocess.photo_input` (absent: "rgb").
#   "rgb"          the photo as it is (every model up to run 8);
#   "grey-colour"  EfficientNet sees the photo's luminance only (shape and texture, the same
#                  in every colourway of a style), and a soft histogram of each region's
#                  colours over a COLOUR_BINS palette rides beside its features, so colour is
#                  read from the pixels rather than from ImageNet features.
PHOTO_GREY_COLOUR = "grey-colour"
PHOTO_INPUTS = ("rgb", PHOTO_GREY_COLOUR)
PHOTO_INPUT = "rgb"
COLOUR_LEVELS = 3  # palette: COLOUR_LEVELS per RGB channel
COLOUR_BINS = COLOUR_LEVELS**3
COLOUR_SIGMA = 0.15  # soft assignment of a pixel (RGB in 0..1) to the palette's colours
COLOUR_SCALE = 2.0  # sqrt-histogram scaled into the range of the head map's features
TEXT_FEATURE_DIM = 384  # all-MiniLM-L6-v2 hidden size
# EfficientNet-Lite normalisation: (x - 127) / 128 on 0..255 pixels.
IMAGE_MEAN = (127.0, 127.0, 127.0)
IMAGE_STD = (128.0, 128.0, 128.0)
IMAGE_PAD_VALUE = 255  # photos are padded to a square on white, catalogue-style


def check_photo_input(photo_input: str) -> str:
    if photo_input not in PHOTO_INPUTS:
        raise ValueError(f"photo_input must be one of {list(PHOTO_INPUTS)}, got [{photo_input}]")
    return photo_input


def image_feature_dim(photo_input: str = PHOTO_INPUT) -> int:
    """Channels of each image token: the head map's, plus the colour histogram's."""
    return IMAGE_FEATURE_DIM + (COLOUR_BINS if check_photo_input(photo_input) == PHOTO_GREY_COLOUR else 0)


def stem_shape(tail_from: int, photo_input: str = PHOTO_INPUT) -> tuple[int, int, int]:
    """Cached stem activations [C, H, W] of a split; with PHOTO_GREY_COLOUR the colour
    histogram map rides along as COLOUR_BINS more channels."""
    c, h, w = IMAGE_STEM_SHAPES[tail_from]
    return (c + image_feature_dim(photo_input) - IMAGE_FEATURE_DIM, h, w)


# --- limits ---------------------------------------------------------------------
MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_PHOTO_PIXELS = 40_000_000  # decompression-bomb guard
MAX_TITLE_CHARS = 2_000
MAX_ID_CHARS = 256
MAX_BATCH = 64  # Triton max_batch_size of every batched model

# --- ONNX graphs (tensor names in Hugging Face words) -------------------------------
ONNX_IMAGE_BACKBONE = "image_backbone.onnx"
ONNX_TEXT_BACKBONE = "text_backbone.onnx"
ONNX_FUSION = "fusion_encoder.onnx"

T_PIXEL_VALUES = "pixel_values"  # FP32 [B, 3, IMAGE_SIZE, IMAGE_SIZE]
T_IMAGE_TOKENS = "image_tokens"  # FP32 [B, IMAGE_TOKENS, IMAGE_FEATURE_DIM]
T_INPUT_IDS = "input_ids"  # INT64 [B, L]
T_ATTENTION_MASK = "attention_mask"  # INT64 [B, L]
T_TOKEN_TYPE_IDS = "token_type_ids"  # INT64 [B, L]
T_TEXT_TOKENS = "text_tokens"  # FP32 [B, L, TEXT_FEATURE_DIM]
T_IMAGE_MASK = "image_mask"  # INT64 [B, IMAGE_TOKENS]; 0 masks the photo
T_EMBEDDING = "embedding"  # FP32 [B, D], L2-normalised (zero when all inputs masked)

# --- Triton model repository -----------------------------------------------------
ENTRY_MODEL = "product_encoder"
IN_IMAGE = "image"  # TYPE_STRING [B, 1]: encoded JPEG/PNG/WebP bytes, may be empty
IN_TEXT = "text"  # TYPE_STRING [B, 1]: UTF-8 title, may be empty
OUT_IMAGE = "image_embedding"
OUT_TEXT = "text_embedding"
OUT_FUSED = "fused_embedding"
OUT_ERROR = "error"  # TYPE_STRING [B, 1]: empty when the product encoded, else the reason
VIEW_OUTPUTS = {"image": OUT_IMAGE, "text": OUT_TEXT, "fused": OUT_FUSED}
# The encoders behind the entry model (`<modality>_<role>`); each serves the ONNX graph
# of the same stem, as `<name>/1/model.onnx`.
IMAGE_MODEL = "image_backbone"
TEXT_MODEL = "text_backbone"
FUSION_MODEL = "fusion_encoder"
# The entry model runs the fusion encoder once on all three views of its batch (3B rows).
FUSION_MAX_BATCH = len(VIEWS) * MAX_BATCH

# --- Milvus collection ------------------------------------------------------------
COLLECTION_ALIAS = "products"
COLLECTION_PREFIX = "products_v"
IMAGE_VEC = "image_vec"
TEXT_VEC = "text_vec"
FUSED_VEC = "fused_vec"
VECTOR_FIELDS = {"image": IMAGE_VEC, "text": TEXT_VEC, "fused": FUSED_VEC}
# Where a photo + modifier query ("this dress, but white") looks by default: the shipped
# model's modifier term was trained to find the asked colourway's photo view
# (`samestyle train --mod-target image`), which keeps fused_vec colour-blind for
# same-style search. A model trained with --mod-target fused wants FUSED_VEC here.
MODIFIER_FIELD = IMAGE_VEC
METRIC = "IP"  # vectors are L2-normalised, so IP is cosine and a zero vector scores 0
PRIMARY_KEY = "id"
CATEGORY_FIELD = "category"  # leaf category: partition key, dedup scope, weight-profile key

# --- search limits (query layer, HTTP API) --------------------------------------------
# How the hits of several fields are fused: WeightedRanker (no score normalisation) or
# RRFRanker(RRF_K), which ignores the weights.
RANKERS = ("weighted", "rrf")
# What a phrase is searched against (`samestyle search --target`, the HTTP `target`): the
# vector field of one view, or all three as one hybrid search.
TEXT_TARGETS = ("text", "image", "fused", "all")
RRF_K = 60
MAX_SEARCH_K = 1000
MAX_SEARCH_OFFSET = 10_000  # offset + k stays far below Milvus's 16,384 cap
MAX_BATCH_IDS = 1000  # product ids in one HTTP batch search request
MAX_NAME_CHARS = 256  # an attribute or weight-profile name in a search option (group_by, category)
SEARCH_TIMEOUT_S = 10.0  # HTTP request timeout for one search

# --- dedup ------------------------------------------------------------------------
# `dedup`'s default method: the photo (image_vec cosine) and the title (character trigrams)
# scored apart, each product linked to its mutual best match only. Its threshold (on
# DEDUP_IMAGE_WEIGHT x photo cosine + the rest x title overlap) is the one `samestyle bench
# dedup` tuned on re-listed Myntra products (docs/benchmarks). A vector field name instead
# of the method links products whose one vector is at least the threshold alike (union-find).
DEDUP_PHOTO_TITLE = "photo+title"
DEDUP_METHODS = (DEDUP_PHOTO_TITLE, *VECTOR_FIELDS.values())
DEDUP_THRESHOLD = 0.93  # best F1 on the tuning sample (--seed 1) once the stored-colour rule was in
DEDUP_IMAGE_WEIGHT = 0.9
# A product's perceptual photo signature (samestyle.photohash: the 63 lowest DCT frequencies
# of the grey photo, int8, 126 hex digits), computed at ingest from the decoded photo and
# stored as a dynamic attribute. photo+title scores a pair's photo as (1 - DEDUP_HASH_WEIGHT)
# x image_vec cosine + DEDUP_HASH_WEIGHT x the signatures' cosine stretched from
# [DEDUP_HASH_FLOOR, 1] to [0, 1], when both products have one; a collection ingested before
# the signature (or without a dynamic field) falls back to the cosine alone.
PHOTO_HASH = "photo_hash"
# The collection's colour attribute (milvus/collection.json; filled from a catalogue's
# colour/color/baseColour column): photo+title never links two products whose colours are
# both stored and differ (two colourways, or one photo recoloured, are not one listing).
DEDUP_COLOUR_FIELD = "colour"
DEDUP_HASH_WEIGHT = 0.95  # best F1 on the tuning sample (--seed 1) with model run 15: 0.8, 0.9, 0.95, 1.0 tried
DEDUP_HASH_FLOOR = 0.98
# With the products' grey photos at hand (dedup reads ingest's thumbnails), a pair whose
# titles and embeddings already agree (title overlap and image_vec cosine at least these)
# is also registered (samestyle.photoreg: the band NCCs at the best crop alignment), which
# finds re-cropped copies; each band's NCC (photoreg.BANDS: fine, coarse) is stretched from
# its [FLOOR, TOP] to [0, 1], the best band counts, and the photo scores the larger of it
# and the signature similarity. Tuned in `samestyle bench dedup` (the coarse band's on the
# tuning sample, --seed 1: floors 0.88-0.90 and tops 0.97-0.99 tried).
DEDUP_REG_MIN_TITLE = 0.5
DEDUP_REG_MIN_COSINE = 0.7
DEDUP_REG_FLOOR = (0.85, 0.89)
DEDUP_REG_TOP = (0.95, 0.98)


def colour_dims(manifest) -> int:
    """How many of a model's last dimensions carry colour apart (its manifest's
    `fusion.colour_dims`; 0 for a model that keeps none, or a manifest without it)."""
    return int((manifest.get("fusion") or {}).get("colour_dims", 0) or 0)


def collection_name(version: int) -> str:
    """`products_v<N>`: the versioned physical collection behind the alias."""
    if version < 1:
        raise ValueError(f"collection version must be >= 1, got [{version}]")
    return f"{COLLECTION_PREFIX}{version}"


def preprocess_constants(max_text_len: int = MAX_TEXT_LEN, photo_input: str = PHOTO_INPUT) -> dict:
    """What the serving side needs to preprocess exactly as the training side did
    (`photo_input` is written only when it is not the default, so older manifests match)."""
    extra = {} if photo_input == PHOTO_INPUT else {"photo_input": photo_input}
    return {
        "image_size": IMAGE_SIZE,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "image_pad_value": IMAGE_PAD_VALUE,
        "image_tokens": IMAGE_TOKENS,
        "image_feature_dim": image_feature_dim(photo_input),
        "text_feature_dim": TEXT_FEATURE_DIM,
        "max_text_len": max_text_len,
        "max_photo_bytes": MAX_PHOTO_BYTES,
        "max_photo_pixels": MAX_PHOTO_PIXELS,
        "max_title_chars": MAX_TITLE_CHARS,
    } | extra

"""Golden test: ONNX Runtime on the exported graphs equals torch on the same inputs
(<= 1e-4 absolute), and the in-process encoder keeps the masking guarantees."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from samestyle import contract as C
from samestyle.config import DEFAULT_MODEL_DIR
from samestyle.encoders.base import ProductInput
from samestyle.model import checkpoint
from samestyle.model import preprocess as pp
from samestyle.model.backbones import ImageBackbone, TextBackbone

TOL = 1e-4


def _sess(bundle, name):
    return ort.InferenceSession(str(bundle / name), providers=["CPUExecutionProvider"])


def test_onnx_graphs_have_named_io_and_dynamic_batch(onnx_bundle):
    import onnx

    expect = {
        C.ONNX_IMAGE_BACKBONE: ([C.T_PIXEL_VALUES], [C.T_IMAGE_TOKENS]),
        C.ONNX_TEXT_BACKBONE: ([C.T_INPUT_IDS, C.T_ATTENTION_MASK, C.T_TOKEN_TYPE_IDS], [C.T_TEXT_TOKENS]),
        C.ONNX_FUSION: ([C.T_IMAGE_TOKENS, C.T_IMAGE_MASK, C.T_TEXT_TOKENS, C.T_ATTENTION_MASK], [C.T_EMBEDDING]),
    }
    for name, (ins, outs) in expect.items():
        g = onnx.load(str(onnx_bundle / name), load_external_data=False).graph
        assert [i.name for i in g.input] == ins, name
        assert [o.name for o in g.output] == outs, name
        for t in list(g.input) + list(g.output):
            assert t.type.tensor_type.shape.dim[0].dim_param, f"{name}:{t.name} batch axis is not dynamic"


@pytest.mark.slow  # builds the torch backbone (the shipped tail) and runs it beside ONNX; the quick set pins the ONNX output with tests/model/test_golden_embeddings.py
def test_image_backbone_matches_torch(onnx_bundle, catalogue):
    import json

    consts = json.loads((onnx_bundle / "preprocess.json").read_text())
    photos = sorted((catalogue.root / "images").iterdir())[:3]
    x = np.stack([pp.decode_image(p.read_bytes(), consts) for p in photos])
    shipped = checkpoint.image_backbone(DEFAULT_MODEL_DIR)  # the shipped stem (ImageNet or fine-tuned) + its fine-tuned tail
    with torch.no_grad():
        ref = shipped(torch.from_numpy(x)).numpy()
        split = shipped.tail(shipped.stem(torch.from_numpy(x))).numpy()
        imagenet = ImageBackbone(photo_input=shipped.photo_input)(torch.from_numpy(x)).numpy()  # same input, all ImageNet
    got = _sess(onnx_bundle, C.ONNX_IMAGE_BACKBONE).run(None, {C.T_PIXEL_VALUES: x})[0]
    assert np.abs(got - ref).max() <= TOL * max(1.0, float(np.abs(ref).max()) / 10)
    assert np.array_equal(split, ref)  # training's stem/tail split is the served graph
    if checkpoint.read_manifest(DEFAULT_MODEL_DIR).get("image_tail"):
        assert np.abs(imagenet - ref).max() > 1e-2  # the fine-tuned tail is what gets served


@pytest.mark.slow  # builds the torch text backbone and runs it beside ONNX; the quick set pins the ONNX output with tests/model/test_golden_embeddings.py
def test_text_backbone_matches_torch(onnx_bundle):
    tb = TextBackbone()
    tok = pp.load_tokenizer(str(onnx_bundle / "tokenizer.json"), C.MAX_TEXT_LEN)
    enc = pp.tokenize(tok, ["Puma Men Red Logo T-shirt", "Biba Women Floral Kurta", ""])
    with torch.no_grad():
        ref = tb(*(torch.from_numpy(enc[k]) for k in (C.T_INPUT_IDS, C.T_ATTENTION_MASK, C.T_TOKEN_TYPE_IDS))).numpy()
    got = _sess(onnx_bundle, C.ONNX_TEXT_BACKBONE).run(None, enc)[0]
    assert np.abs(got - ref).max() <= TOL


def test_fusion_matches_torch(onnx_bundle):
    fusion, _ = checkpoint.load(DEFAULT_MODEL_DIR)
    g = np.random.default_rng(0)
    b, L = 5, C.MAX_TEXT_LEN
    it = g.standard_normal((b, C.IMAGE_TOKENS, fusion.cfg.image_feature_dim)).astype(np.float32)
    tt = g.standard_normal((b, L, C.TEXT_FEATURE_DIM)).astype(np.float32)
    im = np.ones((b, C.IMAGE_TOKENS), dtype=np.int64)
    am = np.zeros((b, L), dtype=np.int64)
    am[:, :9] = 1
    im[1] = 0
    am[2] = 0
    feeds = pp.view_inputs(it, im, tt, am)
    got = _sess(onnx_bundle, C.ONNX_FUSION).run(None, feeds)[0]
    with torch.no_grad():
        ref = fusion(*(torch.from_numpy(feeds[k]) for k in (C.T_IMAGE_TOKENS, C.T_IMAGE_MASK, C.T_TEXT_TOKENS, C.T_ATTENTION_MASK))).numpy()
    assert np.abs(got - ref).max() <= TOL


def test_onnx_encoder_masking_end_to_end(onnx_encoder, catalogue):
    photo = (catalogue.root / "images" / "P00001.png").read_bytes()
    other = (catalogue.root / "images" / "P00009.jpg").read_bytes()
    a = onnx_encoder.encode_batch([ProductInput("a", photo, "Puma red striped tee"), ProductInput("b", photo, "Levis blue jeans"),
                                   ProductInput("c", other, "Puma red striped tee")])
    np.testing.assert_allclose(a.image[0], a.image[1], atol=1e-6)  # title changed, image view did not
    np.testing.assert_allclose(a.text[0], a.text[2], atol=1e-6)  # photo changed, text view did not
    assert np.abs(a.fused[0] - a.fused[1]).max() > 1e-3

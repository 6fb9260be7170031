"""The fusion encoder's views: masking is exact, missing inputs give zero vectors."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from samestyle import contract as C
from samestyle.model.fusion import FusionConfig, FusionEncoder, colour_part, style_part
from samestyle.model.onnx import export_graph
from samestyle.train import TrainConfig


COLOUR_APART = {"skip": True, "colour_dims": 8, "colour_weight": 0.35}


ANCHORED = {**COLOUR_APART, "image_anchor": 0.5}


@pytest.fixture(scope="module", params=[{}, {"skip": True}, {"skip": True, "image_lock": True}, COLOUR_APART, ANCHORED],
                ids=["transformer", "with-skip", "image-lock", "colour-apart", "image-anchor"])
def model(request):
    torch.manual_seed(0)
    m = FusionEncoder(FusionConfig(embed_dim=64, d_model=64, layers=2, heads=4, **request.param))
    return m.eval()


def _inputs(b=4, L=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    it = torch.randn(b, C.IMAGE_TOKENS, C.IMAGE_FEATURE_DIM, generator=g)
    tt = torch.randn(b, L, C.TEXT_FEATURE_DIM, generator=g)
    im = torch.ones(b, C.IMAGE_TOKENS, dtype=torch.long)
    am = torch.ones(b, L, dtype=torch.long)
    am[:, L - 3 :] = 0  # some padding
    return it, im, tt, am


def test_image_view_ignores_title(model):
    it, im, tt, am = _inputs()
    other_tt = torch.randn_like(tt) * 5
    other_am = torch.ones_like(am)
    with torch.no_grad():
        a = model.views(it, im, tt, am)
        b = model.views(it, im, other_tt, other_am)
    assert torch.equal(a["image"], b["image"])
    assert not torch.allclose(a["fused"], b["fused"])
    assert not torch.allclose(a["text"], b["text"])


def test_text_view_ignores_photo(model):
    it, im, tt, am = _inputs()
    with torch.no_grad():
        a = model.views(it, im, tt, am)
        b = model.views(torch.randn_like(it) * 3, im, tt, am)
    assert torch.equal(a["text"], b["text"])
    assert not torch.allclose(a["image"], b["image"])


def test_padding_length_does_not_change_vectors(model):
    it, im, tt, am = _inputs(L=12)
    with torch.no_grad():
        full = model.views(it, im, tt, am)
        trimmed = model.views(it, im, tt[:, :9], am[:, :9])
    for v in C.VIEWS:
        torch.testing.assert_close(full[v], trimmed[v], rtol=0, atol=1e-6)


def test_views_are_unit_norm_and_missing_views_are_zero(model):
    it, im, tt, am = _inputs()
    im[1] = 0  # product 1 has no photo
    am[2] = 0  # product 2 has no title
    with torch.no_grad():
        v = model.views(it, im, tt, am)
    n = {k: x.norm(dim=1).numpy() for k, x in v.items()}
    np.testing.assert_allclose(n["fused"], 1, atol=1e-5)
    assert n["image"][1] == 0 and n["text"][2] == 0
    np.testing.assert_allclose(np.delete(n["image"], 1), 1, atol=1e-5)
    # a product with one input still has a fused view: exactly that input's view
    torch.testing.assert_close(v["fused"][1], v["text"][1])
    torch.testing.assert_close(v["fused"][2], v["image"][2])


def test_a_locked_photo_view_is_the_fixed_projection_and_does_not_train():
    torch.manual_seed(0)
    m = FusionEncoder(FusionConfig(embed_dim=64, d_model=64, layers=2, heads=4, skip=True, image_lock=True))
    assert "lock_proj" in m.state_dict() and all(p is not m.lock_proj for p in m.parameters())
    q = m.lock_proj
    torch.testing.assert_close(q.t() @ q, torch.eye(64), atol=1e-5, rtol=0)  # orthonormal columns
    it, im, tt, am = _inputs()
    expected = torch.nn.functional.normalize(it[:, 0] @ q, dim=1)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.train()
    v = m.views(it, im, tt, am)
    torch.testing.assert_close(v["image"], expected)
    (-(v["fused"] * v["image"]).sum() - (v["text"] * v["image"]).sum()).backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        after = m.views(it, im, tt, am)
    torch.testing.assert_close(after["image"], expected)  # the photo view did not move
    assert not torch.allclose(after["fused"], v["fused"].detach())  # the rest did
    # same seed, same projection: a checkpoint's photo vectors are reproducible
    again = FusionEncoder(FusionConfig(embed_dim=64, d_model=64, layers=2, heads=4, image_lock=True))
    assert torch.equal(again.lock_proj, q)


@pytest.mark.parametrize("kw", [{"image_anchor": 0.25}, ANCHORED,
                                {**ANCHORED, "image_colour_channels": 27, "colour_from_histogram": True}],
                         ids=["whole-vector", "style-part", "colour-from-histogram"])
def test_an_anchored_photo_view_is_the_mix_of_the_learned_view_and_the_fixed_projection(kw):
    """The photo view's style part is unit((1 - a) unit(learned) + a unit(grey pooled @ anchor_proj)):
    the projection is fixed (a buffer), the learned part trains, the colour part and the other
    views are as without the anchor."""
    torch.manual_seed(0)
    cfg = FusionConfig(embed_dim=64, d_model=64, layers=2, heads=4, **{"skip": True, **kw})
    m = FusionEncoder(cfg)
    plain = FusionEncoder(FusionConfig(**{**cfg.to_dict(), "image_anchor": 0.0}))
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if k != "anchor_proj"})
    q, k, a = m.anchor_proj, cfg.colour_dims, cfg.image_anchor
    assert "anchor_proj" in m.state_dict() and all(p is not q for p in m.parameters())
    assert q.shape == (cfg.image_feature_dim - cfg.image_colour_channels, 64 - k)
    torch.testing.assert_close(q.t() @ q, torch.eye(64 - k), atol=1e-5, rtol=0)  # orthonormal columns
    it, im, tt, am = _inputs()
    m.eval()
    plain.eval()
    with torch.no_grad():
        v, w = m.views(it, im, tt, am), plain.views(it, im, tt, am)
        grey = it[:, 0, : cfg.image_feature_dim - cfg.image_colour_channels]
        anchor = torch.nn.functional.normalize(grey @ q, dim=1)
    n = 64 - k
    style = lambda x: torch.nn.functional.normalize(x[:, :n], dim=1)  # noqa: E731
    want = torch.nn.functional.normalize((1 - a) * style(w["image"]) + a * anchor, dim=1)
    torch.testing.assert_close(style(v["image"]), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(v["image"][:, n:], w["image"][:, n:])  # the colour part unchanged
    for view in ("fused", "text"):
        torch.testing.assert_close(v[view], w[view])
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    (-(m.views(it, im, tt, am)["image"] * v["text"]).sum()).backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        after = m.views(it, im, tt, am)
    assert torch.equal(m.anchor_proj, q)  # the projection did not train
    assert not torch.allclose(after["image"], v["image"])  # the learned part did


def test_a_locked_photo_view_refuses_a_trained_tail():
    with pytest.raises(ValueError, match="tail_lr"):
        TrainConfig(tail_lr=1e-4, fusion={"image_lock": True})


def test_colour_apart_splits_the_unit_vector_by_the_colour_weight():
    """The last colour_dims carry colour at norm colour_weight, the rest the style at
    sqrt(1 - w^2); style_part/colour_part give each back at unit length, zero rows stay zero."""
    torch.manual_seed(0)
    cfg = FusionConfig(embed_dim=64, d_model=64, layers=1, heads=4, **COLOUR_APART)
    m = FusionEncoder(cfg).eval()
    it, im, tt, am = _inputs()
    im[1] = 0
    with torch.no_grad():
        v = m.views(it, im, tt, am)
    fused = v["fused"]
    np.testing.assert_allclose(fused[:, -8:].norm(dim=1).numpy(), 0.35, atol=1e-6)
    np.testing.assert_allclose(fused[:, :-8].norm(dim=1).numpy(), np.sqrt(1 - 0.35**2), atol=1e-6)
    torch.testing.assert_close(style_part(fused, cfg), fused[:, :-8] / np.sqrt(1 - 0.35**2))
    torch.testing.assert_close(colour_part(fused, cfg), fused[:, -8:] / 0.35)
    assert style_part(v["image"], cfg)[1].abs().sum() == 0 and colour_part(v["image"], cfg)[1].abs().sum() == 0
    plain = FusionConfig(embed_dim=64)
    assert style_part(fused, plain) is fused  # a model without colour apart: the whole vector


@pytest.mark.parametrize("kw, message", [
    ({"colour_dims": 64, "colour_weight": 0.3}, "colour_dims must be between 1 and embed_dim - 1"),
    ({"colour_dims": 8}, "colour_weight must be in"),
    ({"colour_dims": 8, "colour_weight": 1.0}, "colour_weight must be in"),
    ({"colour_dims": 8, "colour_weight": 0.3, "image_lock": True}, "no colour part"),
    ({"image_anchor": 1.0}, "image_anchor must be in"),
    ({"image_anchor": 0.5, "image_lock": True}, "use one of them"),
])
def test_colour_apart_refuses_impossible_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        FusionConfig(embed_dim=64, **kw)
    with pytest.raises(ValueError, match=message):  # checked before training starts
        TrainConfig(fusion={"embed_dim": 64, **kw})
    with pytest.raises(ValueError, match="colour_dims"):
        TrainConfig(w_colour=0.5)


@pytest.mark.parametrize("kw", [{"image_lock": True}, COLOUR_APART, ANCHORED], ids=["image-lock", "colour-apart", "image-anchor"])
def test_the_fusion_graph_exports_to_onnx_unchanged(tmp_path, kw):
    """The lock and the colour split are inside the one fusion graph: ONNX Runtime gives the same views."""
    torch.manual_seed(0)
    m = FusionEncoder(FusionConfig(embed_dim=64, d_model=64, layers=2, heads=4, **{"skip": True, **kw})).eval()
    it, im, tt, am = _inputs(b=3)
    batch = {0: "batch"}
    names = [C.T_IMAGE_TOKENS, C.T_IMAGE_MASK, C.T_TEXT_TOKENS, C.T_ATTENTION_MASK]
    with torch.no_grad():
        export_graph(m, (it, im, tt, am), tmp_path / "fusion.onnx", names, [C.T_EMBEDDING],
                     {**{n: batch for n in names}, C.T_EMBEDDING: batch})
    sess = ort.InferenceSession(str(tmp_path / "fusion.onnx"), providers=["CPUExecutionProvider"])
    no_text, no_photo = torch.zeros_like(am), torch.zeros_like(im)
    for masks in ((im, am), (im, no_text), (no_photo, am)):  # fused, photo view, title view
        with torch.no_grad():
            want = m(it, masks[0], tt, masks[1]).numpy()
        got = sess.run(None, dict(zip(names, (it.numpy(), masks[0].numpy(), tt.numpy(), masks[1].numpy()))))[0]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)

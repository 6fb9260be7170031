"""The fusion encoder's views: masking is exact, missing inputs give zero vectors."""

import numpy as np
import pytest
import torch

from samestyle import contract as C
from samestyle.model.fusion import FusionConfig, FusionEncoder


@pytest.fixture(scope="module", params=[False, True], ids=["transformer", "with-skip"])
def model(request):
    torch.manual_seed(0)
    m = FusionEncoder(FusionConfig(embed_dim=64, d_model=64, layers=2, heads=4, skip=request.param))
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

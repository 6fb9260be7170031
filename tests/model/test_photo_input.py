"""Photo input "grey-colour" (`samestyle train --photo-input grey-colour`): EfficientNet
sees the photo's luminance only, and a soft colour histogram of each region rides beside
its features. Checked: the network part of the tokens cannot tell two colourings of one
luminance apart while the colour part can; the histogram names the colour; the cache,
training, checkpoint, ONNX export and Triton config all follow the manifest."""

import json

import numpy as np
import pytest
import torch

from samestyle import contract as C
from samestyle import dataset
from samestyle.errors import CheckpointError
from samestyle.export import export_onnx
from samestyle.model import checkpoint, features
from samestyle.model import preprocess as pp
from samestyle.model.backbones import ImageBackbone, colour_map
from samestyle.model.manifest import read_manifest
from samestyle.model.onnx import session
from samestyle.train import TrainConfig, train
from samestyle.triton_repo import model_specs

GC = "grey-colour"
S = C.IMAGE_SIZE


def _same_luminance_pair(seed=0):
    """Two photos (normalised pixel values) with equal luminance everywhere and
    different colours: the second moves along a direction the luminance weights cancel."""
    g = np.random.default_rng(seed)
    rgb = g.uniform(70, 185, size=(1, 3, S, S)).astype(np.float32)
    shift = np.float32(60.0)  # the same colour cast over the whole photo
    v = np.array([0.587, -0.299, 0.0], np.float32).reshape(1, 3, 1, 1)  # 0.299*v0 + 0.587*v1 = 0
    other = rgb + shift * v / np.abs(v).max()
    norm = lambda x: torch.from_numpy((x - 127.0) / 128.0)  # noqa: E731
    return norm(rgb), norm(other)


def test_the_network_sees_luminance_only_the_histogram_sees_colour():
    a, b = _same_luminance_pair()
    F = C.IMAGE_FEATURE_DIM
    with torch.no_grad():
        ta, tb = ImageBackbone(photo_input=GC)(torch.cat([a, b])).numpy()
        ra, rb = ImageBackbone()(torch.cat([a, b])).numpy()
    assert ta.shape == (C.IMAGE_TOKENS, C.image_feature_dim(GC))
    assert np.abs(ta[:, :F] - tb[:, :F]).max() < 1e-4 * np.abs(ta[:, :F]).max()
    assert np.abs(ta[:, F:] - tb[:, F:]).max() > 0.05  # the colour part tells them apart
    assert np.abs(ra - rb).max() > 1e-2 * np.abs(ra).max()  # an RGB tower does too


def test_the_histogram_names_the_colour():
    red = torch.full((1, 3, S, S), -127.0 / 128.0)
    red[:, 0] = 128.0 / 128.0  # (255, 0, 0)
    h = colour_map(red, (5, 5))
    assert h.shape == (1, C.COLOUR_BINS, 5, 5)
    levels = C.COLOUR_LEVELS
    red_bin = (levels - 1) * levels * levels  # palette order: R major, then G, then B
    assert (h.argmax(dim=1) == red_bin).all()
    # per cell, a square-rooted distribution: its squares sum to COLOUR_SCALE^2
    assert torch.allclose((h**2).sum(dim=1), torch.full((1, 5, 5), C.COLOUR_SCALE**2), rtol=1e-5)


@pytest.fixture(scope="module")
def grey_colour(catalogue, tmp_path_factory):
    data = dataset.read(catalogue.csv_path, label_col="style_group", colour_col="baseColour")
    cache = tmp_path_factory.mktemp("gc-cache")
    return data, features.for_catalogue(data, cache, progress=False, tokens=False, photo_input=GC), cache


def test_cache_train_checkpoint_export_follow_the_photo_input(grey_colour, tmp_path):
    data, f, cache = grey_colour
    assert f.photo_input == GC and f.image_stem.shape == (len(data), *C.stem_shape(C.IMAGE_TAIL_FROM, GC))
    assert (cache / f"stem-b{C.IMAGE_TAIL_FROM}-{S}-{GC}.onnx").exists()
    # the cached stem (network + colour map) through the tail = the whole served tower
    i = int(np.flatnonzero(f.has_image)[0])
    px = pp.decode_image(open(data.photos[i], "rb").read(), C.preprocess_constants())
    ib = ImageBackbone(photo_input=GC)
    with torch.no_grad():
        whole = ib(torch.from_numpy(px[None])).numpy()[0]
    assert np.abs(whole - features.tokens_through(f, ib)[i].astype(np.float32)).max() < 0.05 * np.abs(whole).max()
    with pytest.raises(ValueError, match="photo input"):
        features.tokens_through(f, ImageBackbone())

    from samestyle.pairs import group_pairs

    index = {p: k for k, p in enumerate(data.ids)}
    pairs = np.array([(index[a], index[b]) for a, b in group_pairs(data.ids, data.labels)])
    small = {"embed_dim": 32, "d_model": 64, "heads": 2, "layers": 1}
    with pytest.raises(ValueError, match="photo input"):  # RGB training cannot read grey-colour activations
        train(f, data.labels, np.arange(len(data)), pairs,
              TrainConfig(steps=1, tail_lr=1e-3, fusion=small), progress=False)
    cfg = TrainConfig(steps=2, batch_size=16, warmup=1, lr=1e-3, tail_lr=1e-3, photo_input=GC, seed=0, threads=1,
                      loss="infonce", fusion=small)
    model, tail, _ = train(f, data.labels, np.arange(len(data)), pairs, cfg, progress=False)
    assert model.cfg.image_feature_dim == C.image_feature_dim(GC)

    man = checkpoint.save(tmp_path / "m", model, image_tail=tail.tail_state(), photo_input=GC)
    assert man["preprocess"]["photo_input"] == GC
    assert man["preprocess"]["image_feature_dim"] == C.image_feature_dim(GC)
    assert checkpoint.photo_input(read_manifest(tmp_path / "m")) == GC
    assert checkpoint.image_backbone(tmp_path / "m").photo_input == GC

    export_onnx(tmp_path / "m", tmp_path / "onnx")
    served = session(tmp_path / "onnx" / C.ONNX_IMAGE_BACKBONE, 1).run([C.T_IMAGE_TOKENS], {C.T_PIXEL_VALUES: px[None]})[0]
    with torch.no_grad():
        trained = checkpoint.image_backbone(tmp_path / "m")(torch.from_numpy(px[None])).numpy()
    assert served.shape == (1, C.IMAGE_TOKENS, C.image_feature_dim(GC))
    assert np.abs(served - trained).max() < 1e-4 * max(1.0, np.abs(trained).max())
    specs = model_specs(man)
    dims = {t["name"]: t["dims"] for t in specs[C.IMAGE_MODEL]["outputs"]}
    assert dims[C.T_IMAGE_TOKENS] == [C.IMAGE_TOKENS, C.image_feature_dim(GC)]


def test_an_unknown_photo_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="photo_input must be one of"):
        TrainConfig(photo_input="sepia")
    from samestyle.model.fusion import FusionConfig, FusionEncoder

    checkpoint.save(tmp_path, FusionEncoder(FusionConfig(embed_dim=32)))
    man = json.loads((tmp_path / "manifest.json").read_text())
    man["preprocess"]["photo_input"] = "sepia"
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CheckpointError, match=r"photo input \[sepia\]"):
        read_manifest(tmp_path)


def test_histogram_apart_keeps_masking_exact_and_reads_the_histogram():
    from samestyle.model.fusion import FusionConfig, FusionEncoder

    k, fi = C.COLOUR_BINS, C.image_feature_dim(GC)
    torch.manual_seed(0)
    enc = FusionEncoder(FusionConfig(embed_dim=32, d_model=64, heads=2, layers=1, skip=True,
                                     image_feature_dim=fi, image_colour_channels=k)).eval()
    g = torch.Generator().manual_seed(1)
    it = torch.randn(3, C.IMAGE_TOKENS, fi, generator=g)
    tt = torch.randn(3, 8, C.TEXT_FEATURE_DIM, generator=g)
    im, am = torch.ones(3, C.IMAGE_TOKENS, dtype=torch.long), torch.ones(3, 8, dtype=torch.long)
    with torch.no_grad():
        v = enc.views(it, im, tt, am)
        other_title = enc.views(it, im, tt + 1.0, am)
        recoloured = it.clone()
        recoloured[..., -k:] = torch.rand(3, C.IMAGE_TOKENS, k, generator=g)
        other_colour = enc.views(recoloured, im, tt, am)
    assert torch.equal(v["image"], other_title["image"])  # the photo view ignores the title, bit for bit
    assert torch.equal(v["text"], other_colour["text"])  # the title view ignores the photo
    assert (v["image"] - other_colour["image"]).abs().max() > 1e-3  # the histogram's own projection is live
    with pytest.raises(ValueError, match="image_colour_channels"):
        FusionConfig(image_feature_dim=fi, image_colour_channels=fi)
    with pytest.raises(ValueError, match="needs photo_input"):
        TrainConfig(fusion={"image_colour_channels": k})


def test_histogram_apart_without_grey_input_is_refused_before_any_work(catalogue, tmp_path):
    from click.testing import CliRunner

    from samestyle.cli.main import cli

    r = CliRunner().invoke(cli, ["train", str(catalogue.csv_path), "--histogram-apart", "--out", str(tmp_path / "m")],
                           env={"SAMESTYLE_DATA_DIR": str(tmp_path / "data")})
    assert r.exit_code == 2 and f"--photo-input {GC}" in r.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "m").exists()  # no features were cached


def test_colour_from_histogram_splits_style_and_colour_by_construction(tmp_path):
    """--colour-from-histogram: the photo view's style part is the grey features' alone and
    its colour part the histogram's alone; fused and title views never read the histogram;
    the exported fusion graph computes the same split."""
    from samestyle.model.fusion import FusionConfig, FusionEncoder

    k, fi, cd = C.COLOUR_BINS, C.image_feature_dim(GC), 8
    torch.manual_seed(0)
    enc = FusionEncoder(FusionConfig(embed_dim=32, d_model=64, heads=2, layers=1, skip=True, image_feature_dim=fi,
                                     image_colour_channels=k, colour_dims=cd, colour_weight=0.35,
                                     colour_from_histogram=True)).eval()
    assert enc.img_colour_proj is None and enc.img_colour_skip is None and enc.photo_colour is not None
    g = torch.Generator().manual_seed(1)
    it = torch.randn(3, C.IMAGE_TOKENS, fi, generator=g)
    tt = torch.randn(3, 8, C.TEXT_FEATURE_DIM, generator=g)
    im, am = torch.ones(3, C.IMAGE_TOKENS, dtype=torch.long), torch.ones(3, 8, dtype=torch.long)
    recoloured, reshaped = it.clone(), it.clone()
    recoloured[..., -k:] = torch.rand(3, C.IMAGE_TOKENS, k, generator=g)
    reshaped[..., :-k] = torch.randn(3, C.IMAGE_TOKENS, fi - k, generator=g)
    with torch.no_grad():
        v, vc, vs = (enc.views(x, im, tt, am) for x in (it, recoloured, reshaped))
    style, colour = slice(0, 32 - cd), slice(32 - cd, 32)
    assert torch.equal(v["image"][:, style], vc["image"][:, style])  # style: blind to the histogram
    assert (v["image"][:, colour] - vc["image"][:, colour]).abs().max() > 1e-3  # colour: reads it
    assert torch.equal(v["image"][:, colour], vs["image"][:, colour])  # colour: blind to the grey features
    assert torch.equal(v["fused"], vc["fused"])  # a photo + words query takes no colour from the photo
    assert torch.allclose(v["image"][:, colour].norm(dim=1), torch.full((3,), 0.35))

    checkpoint.save(tmp_path / "m", enc, photo_input=GC)
    export_onnx(tmp_path / "m", tmp_path / "onnx")
    mask = torch.tensor([[1] * C.IMAGE_TOKENS, [1] * C.IMAGE_TOKENS, [0] * C.IMAGE_TOKENS])
    L = C.MAX_TEXT_LEN  # the served graph takes whole padded titles
    tt = torch.cat([tt, torch.zeros(3, L - 8, C.TEXT_FEATURE_DIM)], dim=1)
    words = torch.tensor([[0] * L, [1] * 8 + [0] * (L - 8), [1] * 8 + [0] * (L - 8)])  # photo, photo + words, words
    feeds = {C.T_IMAGE_TOKENS: it.numpy(), C.T_IMAGE_MASK: mask.numpy(), C.T_TEXT_TOKENS: tt.numpy(),
             C.T_ATTENTION_MASK: words.numpy()}
    sess = session(tmp_path / "onnx" / C.ONNX_FUSION, 1)
    served = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0]
    with torch.no_grad():
        expected = enc(it, mask, tt, words).numpy()
    assert np.abs(served - expected).max() < 1e-4
    with pytest.raises(ValueError, match="colour_from_histogram"):
        FusionConfig(image_feature_dim=fi, image_colour_channels=k, colour_from_histogram=True)


def test_colour_from_histogram_and_histogram_apart_are_alternatives(catalogue, tmp_path):
    from click.testing import CliRunner

    from samestyle.cli.main import cli

    r = CliRunner().invoke(cli, ["train", str(catalogue.csv_path), "--photo-input", GC, "--histogram-apart",
                                 "--colour-from-histogram", "--colour-dims", "8", "--colour-weight", "0.3",
                                 "--out", str(tmp_path / "m")], env={"SAMESTYLE_DATA_DIR": str(tmp_path / "data")})
    assert r.exit_code == 2 and "alternatives" in r.output
    r = CliRunner().invoke(cli, ["train", str(catalogue.csv_path), "--photo-input", GC, "--colour-from-histogram",
                                 "--out", str(tmp_path / "m")], env={"SAMESTYLE_DATA_DIR": str(tmp_path / "data")})
    assert r.exit_code == 2 and "colour_dims" in r.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "m").exists()

"""A photo tower fine-tuned whole (`samestyle bench photo-tune`) feeds `samestyle train
--image-weights`: its stem gets its own activation cache, the tail trains on from the
tuned weights, the checkpoint carries the stem (hash-checked), the exported graph is the
tuned tower, and `samestyle eval` keeps the raw ImageNet backbone as its baseline."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from samestyle import contract as C
from samestyle import dataset
from samestyle import phototune as pt
from samestyle.errors import CheckpointError
from samestyle.model import checkpoint, features
from samestyle.model import preprocess as pp
from samestyle.model.backbones import ImageBackbone


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """image_backbone.pth of a 2-step whole-tower fine-tune on random photos (grey-colour)."""
    out = tmp_path_factory.mktemp("tuned")
    photos = np.random.default_rng(0).integers(0, 256, size=(8, pt.STORE_SIDE, pt.STORE_SIDE, 3), dtype=np.uint8)
    cfg = pt.TuneConfig(steps=2, batch_pairs=4, size=32, warmup=1, lr=1e-2, seed=0)
    pt.train(photos, np.array([0, 0, 1, 1, -1, -1, -1, -1]), np.arange(8), cfg, out)
    return out / pt.BACKBONE_FILE


def test_tuned_stem_caches_its_own_activations(catalogue, tuned, tmp_path):
    data = dataset.read(catalogue.csv_path, label_col="style_group", limit=12)
    ib = ImageBackbone(tuned, photo_input=C.PHOTO_GREY_COLOUR)
    assert ib.stem_tuned and ImageBackbone(photo_input=C.PHOTO_GREY_COLOUR).stem_digest() is None
    f = features.for_catalogue(data, tmp_path, progress=False, backbone=ib, tokens=False)
    raw = features.for_catalogue(data, tmp_path, progress=False, tokens=False, photo_input=C.PHOTO_GREY_COLOUR)
    assert f.stem_digest == ib.stem_digest() and raw.stem_digest is None
    assert (tmp_path / f"stem-b15-160-grey-colour-tuned{f.stem_digest[:12]}.onnx").exists()
    assert f.cache_name != raw.cache_name or f.cache_name is None
    assert not np.array_equal(f.image_stem, raw.image_stem)
    # the cached activations through the tuned tail are the tuned network on the photo
    i = int(np.flatnonzero(f.has_image)[0])
    px = pp.decode_image(open(data.photos[i], "rb").read(), C.preprocess_constants())
    with torch.no_grad():
        whole = ib(torch.from_numpy(px[None])).numpy()[0]
    via = features.tokens_through(f, ib)[i].astype(np.float32)
    assert np.abs(whole - via).max() < 0.05 * np.abs(whole).max()
    with pytest.raises(ValueError, match="another stem"):
        features.tokens_through(f, ImageBackbone(photo_input=C.PHOTO_GREY_COLOUR))
    with pytest.raises(ValueError, match="fine-tuned stem"):
        features.imagenet_tokens(f, tmp_path)


@pytest.mark.slow  # train, export, and eval --encoder local (three catalogue passes)
def test_train_from_tuned_weights_ships_the_stem(catalogue, tuned, tmp_path):
    from samestyle.cli.main import cli
    from samestyle.export import export_onnx
    from samestyle.model.onnx import session

    env = {"SAMESTYLE_DATA_DIR": str(tmp_path / "data")}
    base = ["train", str(catalogue.csv_path), "--label-col", "style_group", "--steps", "3", "--batch-size", "16",
            "--embed-dim", "32", "--tail-lr", "1e-4", "--photo-input", "grey-colour", "--json"]
    r = CliRunner().invoke(cli, [*base, "--image-weights", str(tuned), "--out", str(tmp_path / "ck")], env=env)
    assert r.exit_code == 0, r.output
    ck = tmp_path / "ck"
    man = checkpoint.read_manifest(ck)
    assert man["image_stem"]["file"] == "image_stem.safetensors" and (ck / "image_stem.safetensors").exists()
    assert man["training"]["image_weights"]["sha256"] and man["training"]["config"]["image_weights"] == str(tuned)
    start = ImageBackbone(tuned, photo_input=C.PHOTO_GREY_COLOUR)
    ib = checkpoint.image_backbone(ck)
    assert ib.stem_digest() == start.stem_digest()  # the stem is the tuned one, frozen
    s0, s1 = start.tail_state(), ib.tail_state()
    assert any(not torch.equal(s0[k], s1[k]) for k in s0)  # the tail trained on from the tuned weights

    # the served graph is the tuned tower
    onnx_dir = export_onnx(ck, tmp_path / "onnx") and tmp_path / "onnx"
    data = dataset.read(catalogue.csv_path, label_col="style_group", limit=4)
    px = np.stack([pp.decode_image(open(p, "rb").read(), C.preprocess_constants()) for p in data.photos])
    got = session(onnx_dir / C.ONNX_IMAGE_BACKBONE, 1).run(None, {C.T_PIXEL_VALUES: px})[0]
    with torch.no_grad():
        want = ib(torch.from_numpy(px)).numpy()
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())

    # eval's baseline is the raw ImageNet backbone whatever the model's stem
    r = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "plain")], env=env)
    assert r.exit_code == 0, r.output
    res = {}
    for name in ("ck", "plain"):
        r = CliRunner().invoke(cli, ["eval", str(catalogue.csv_path), "--label-col", "style_group", "--model",
                                     str(tmp_path / name), "--encoder", "local", "--all-groups", "--json"], env=env)
        assert r.exit_code == 0, r.output
        res[name] = json.loads(r.output[r.output.index("{"):])
    assert res["ck"]["baselines"] == res["plain"]["baselines"]
    assert res["ck"]["directions"] != res["plain"]["directions"]

    # a replaced stem file is refused
    (ck / "image_stem.safetensors").write_bytes((tmp_path / "plain" / "fusion.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="image_stem.safetensors"):
        checkpoint.image_backbone(ck)


def test_image_weights_need_a_training_tail():
    from samestyle.train import TrainConfig

    with pytest.raises(ValueError, match="tail_lr"):
        TrainConfig(image_weights="x.pth", tail_lr=0.0)

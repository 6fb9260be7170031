"""Checkpoint round trip and clear errors for missing or incompatible checkpoints."""

import json

import pytest
import torch

from samestyle.errors import CheckpointError
from samestyle.model import checkpoint
from samestyle.model.fusion import FusionConfig, FusionEncoder


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(1)
    m = FusionEncoder(FusionConfig(embed_dim=32, d_model=32, heads=2, layers=1))
    manifest = checkpoint.save(tmp_path / "ck", m, training={"data_sha256": "abc"})
    return tmp_path / "ck", m, manifest


def test_round_trip(saved):
    path, m, manifest = saved
    loaded, man2 = checkpoint.load(path)
    assert man2["model_version"] == manifest["model_version"]
    assert man2["embed_dim"] == 32 and man2["training"]["data_sha256"] == "abc"
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert {"image_size", "image_mean", "max_text_len"} <= set(man2["preprocess"])


def test_version_is_derived_from_weights(saved, tmp_path):
    path, m, manifest = saved
    again = checkpoint.save(tmp_path / "again", m)
    assert again["model_version"] == manifest["model_version"]
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    assert checkpoint.save(tmp_path / "changed", m)["model_version"] != manifest["model_version"]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="manifest.json is missing") as e:
        checkpoint.load(tmp_path / "nope")
    assert e.value.fix


def test_dimension_mismatch(saved):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match="makes 32-d vectors, 256-d were expected"):
        checkpoint.load(path, expect_dim=256)


@pytest.mark.parametrize("key,value,match", [
    ("format", 99, "format \\[99\\]"),
    ("preprocess.image_size", 999, "image_size=\\[999\\]"),
])
def test_incompatible_manifest(saved, key, value, match):
    path, _, _ = saved
    man = json.loads((path / "manifest.json").read_text())
    if "." in key:
        a, b = key.split(".")
        man[a][b] = value
    else:
        man[key] = value
    (path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(path)


def test_damaged_weights(saved):
    path, _, _ = saved
    other = FusionEncoder(FusionConfig(embed_dim=32, d_model=32, heads=2, layers=1))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path / "fusion.safetensors"))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        checkpoint.load(path)

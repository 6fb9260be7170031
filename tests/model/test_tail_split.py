"""The photo tower's split is a checkpoint's choice (`--tail-from`): a deeper tail caches
its own stem activations, trains only its blocks, round-trips through the manifest, and
the served graph (stem + tail) gives the tokens training saw."""

import numpy as np
import pytest
import torch

from samestyle import contract as C
from samestyle import dataset
from samestyle.errors import CheckpointError
from samestyle.model import checkpoint, features
from samestyle.model.backbones import ImageBackbone
from samestyle.model.fusion import FusionConfig, FusionEncoder
from samestyle.train import TrainConfig, train


@pytest.fixture(scope="module")
def split11(catalogue, tmp_path_factory):
    data = dataset.read(catalogue.csv_path, label_col="style_group", colour_col="baseColour")
    cache = tmp_path_factory.mktemp("split-cache")
    return data, features.for_catalogue(data, cache, progress=False, tokens=False, tail_from=11), cache


def test_deeper_split_caches_its_own_stem(split11):
    data, f, cache = split11
    assert f.tail_from == 11 and f.image_stem.shape == (len(data), *C.IMAGE_STEM_SHAPES[11])
    assert (cache / "stem-b11-160.onnx").exists()
    # the split's activations are the backbone's own: its tail over them = the whole network
    i = int(np.flatnonzero(f.has_image)[0])
    from samestyle.model import preprocess as pp

    px = pp.decode_image(open(data.photos[i], "rb").read(), C.preprocess_constants())
    ib = ImageBackbone(tail_from=11)
    with torch.no_grad():
        whole = ib(torch.from_numpy(px[None])).numpy()
    via_cache = features.tokens_through(f, ib)[i].astype(np.float32)
    assert np.abs(whole[0] - via_cache).max() < 0.05 * np.abs(whole).max()
    with pytest.raises(ValueError, match="block"):
        features.tokens_through(f, ImageBackbone())  # a block-15 tail cannot read block-11 activations


def test_deeper_tail_trains_its_blocks_and_round_trips(split11, tmp_path):
    data, f, _ = split11
    from samestyle.pairs import group_pairs

    index = {p: i for i, p in enumerate(data.ids)}
    pairs = np.array([(index[a], index[b]) for a, b in group_pairs(data.ids, data.labels)])
    cfg = TrainConfig(steps=3, batch_size=16, warmup=1, lr=1e-3, tail_lr=1e-3, tail_from=11, seed=0, threads=1,
                      loss="infonce", fusion={"embed_dim": 32, "d_model": 64, "heads": 2, "layers": 1})
    model, tail, _ = train(f, data.labels, np.arange(len(data)), pairs, cfg, progress=False)
    assert tail.tail_from == 11
    fresh, trained = ImageBackbone().state_dict(), tail.state_dict()
    moved = {k.split(".")[2] for k in fresh if k.startswith("net._blocks.") and not torch.equal(fresh[k], trained[k])}
    assert moved and all(int(b) >= 11 for b in moved) and "11" in moved

    man = checkpoint.save(tmp_path, model, image_tail=tail.tail_state(), tail_from=tail.tail_from)
    assert man["image_tail"]["from_block"] == 11 and checkpoint.tail_from_block(man) == 11
    loaded = checkpoint.image_backbone(tmp_path)
    assert loaded.tail_from == 11
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())


def test_unsupported_splits_are_refused(split11, tmp_path):
    data, f, _ = split11
    with pytest.raises(ValueError, match="tail_from must be one of"):
        TrainConfig(tail_from=9)
    cfg = TrainConfig(steps=1, tail_lr=1e-4, tail_from=15, fusion={"embed_dim": 32})
    with pytest.raises(ValueError, match="feed block"):  # features of another split
        train(f, data.labels, np.arange(len(data)), np.zeros((0, 2), dtype=np.int64), cfg, progress=False)
    model = FusionEncoder(FusionConfig(embed_dim=32))
    checkpoint.save(tmp_path, model, image_tail=ImageBackbone(tail_from=14).tail_state(), tail_from=14)
    import json

    man = json.loads((tmp_path / "manifest.json").read_text())
    man["image_tail"]["from_block"] = 9
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CheckpointError, match=r"from block \[9\]"):
        checkpoint.image_backbone(tmp_path)

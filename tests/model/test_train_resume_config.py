"""Resuming a training run: a state saved before an option existed resumes when the option
is left at its default; a state from other options is refused, naming what differs."""

import pytest
import torch

from samestyle.errors import ConfigError
from samestyle.train import TrainConfig, _comparable, _State


def test_a_fusion_option_added_later_at_its_default_compares_equal():
    old = TrainConfig(fusion={"embed_dim": 256, "skip": True}).to_dict()  # saved before image_lock existed
    now = TrainConfig(fusion={"embed_dim": 256, "skip": True, "image_lock": False}).to_dict()
    assert old != now and _comparable(old) == _comparable(now)
    locked = TrainConfig(fusion={"embed_dim": 256, "skip": True, "image_lock": True}).to_dict()
    assert _comparable(old) != _comparable(locked)


def test_a_state_from_other_options_is_refused_naming_them(tmp_path):
    path = tmp_path / ".train-state.pt"
    torch.save({"config": TrainConfig(steps=5, w_mod=0.0).to_dict()}, path)
    with pytest.raises(ConfigError, match=r"differs in: steps, w_mod") as e:
        _State.load(path, TrainConfig(steps=6, w_mod=0.3), None, None, None, None, None, None)
    assert "--no-resume" in e.value.fix and str(path) in e.value.fix

"""The alignment probe (samestyle.probe): pure functions on arrays."""

import numpy as np
import pytest

from samestyle import probe


def _latent_catalogue(n=600, seed=0):
    """Photos and titles that are two noisy linear views of one latent per product;
    pairs of products share a label."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 12)).astype(np.float32)
    photo = np.tanh(z @ rng.normal(size=(12, 48))).astype(np.float32)[:, None, :].repeat(3, axis=1)
    photo += 0.05 * rng.normal(size=photo.shape).astype(np.float32)
    title = (z @ rng.normal(size=(12, 24))).astype(np.float32)
    labels = np.arange(n) // 2
    return photo, title, labels


def test_inputs_pool_and_mask():
    tokens = np.arange(2 * 3 * 4, dtype=np.float16).reshape(2, 3, 4)
    assert probe.photo_inputs(tokens, "mean").shape == (2, 4)
    assert probe.photo_inputs(tokens, "tokens").shape == (2, 12)
    states = np.ones((1, 3, 2), dtype=np.float16) * np.array([1, 2, 100], dtype=np.float16)[None, :, None]
    mask = np.array([[1, 1, 0]], dtype=np.int8)
    assert np.allclose(probe.title_inputs(states, mask), [[1.5, 1.5]])  # padding ignored


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="pool"):
        probe.ProbeConfig(pool="max")
    with pytest.raises(ValueError, match="batch"):
        probe.fit(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), np.arange(4),
                  probe.ProbeConfig(batch_size=8))


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only spin on a shared machine
    yield
    torch.set_num_threads(before)


def test_probe_learns_the_alignment_a_random_head_lacks(one_thread):
    photo, title, labels = _latent_catalogue()
    has = np.ones(len(labels), dtype=bool)
    train, held = np.arange(400), np.arange(400, 600)
    x, t = probe.photo_inputs(photo, "mean"), title
    cfg = probe.ProbeConfig(steps=150, batch_size=64, dim=16, lr=3e-3)
    untrained = probe.report(*probe.fit(x, t, train, probe.ProbeConfig(steps=1, batch_size=64, dim=16, lr=0.0))[:2],
                             has, labels, held, cfg, [])
    pv, tv, history = probe.fit(x, t, train, cfg)
    r = probe.report(pv, tv, has, labels, held, cfg, history)
    assert history[-1] < 0.5 * history[0]
    own, chance = r["own_pair"]["title->own photo"]["r@10"], untrained["own_pair"]["title->own photo"]["r@10"]
    assert own > 0.6 and own > chance + 0.4, (own, chance)
    assert r["directions"]["i2t"]["r@10"] > untrained["directions"]["i2t"]["r@10"]
    assert r["queries"] == 200 and np.allclose(np.linalg.norm(pv, axis=1), 1, atol=1e-5)

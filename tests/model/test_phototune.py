"""The whole-photo-tower fine-tune (samestyle.phototune, `samestyle bench photo-tune`):
augmentation, pair sampling, the loss's masking, resumable seeded training, weights
that load back into the served backbone, and the bench command end to end."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from samestyle import phototune as pt
from samestyle.model.backbones import ImageBackbone

TINY = dict(steps=4, batch_pairs=4, size=32, warmup=1, save_every=2, seed=0)


def _photos(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, pt.STORE_SIDE, pt.STORE_SIDE, 3), dtype=np.uint8)


def test_augment_is_seeded_and_fills_with_white():
    cfg = pt.TuneConfig(size=48, jitter=0.0)
    x = torch.from_numpy(_photos(4))
    a = pt.augment(x, cfg, torch.Generator().manual_seed(1))
    b = pt.augment(x, cfg, torch.Generator().manual_seed(1))
    c = pt.augment(x, cfg, torch.Generator().manual_seed(2))
    assert a.shape == (4, 3, 48, 48) and torch.equal(a, b) and not torch.equal(a, c)
    white = torch.full((3, pt.STORE_SIDE, pt.STORE_SIDE, 3), 255, dtype=torch.uint8)
    w = pt.augment(white, cfg, torch.Generator().manual_seed(3))
    assert torch.allclose(w, torch.full_like(w, (255 - 127) / 128), atol=1e-5)  # a crop never brings black in
    plain = pt.augment(x, cfg, None, train=False)
    assert plain.shape == (4, 3, 48, 48) and float(plain.min()) >= -127 / 128 - 1e-6 and float(plain.max()) <= 1.0


def test_served_resize_matches_serving_preprocessing(tmp_path):
    """Training's plain resize of the stored square is serving's decode to within one
    grey level (PIL rounds to uint8 after resizing)."""
    from PIL import Image

    from samestyle import contract as C
    from samestyle.model import preprocess as pp

    arr = _photos(1)[0][:, 10:70]  # 80 high, 60 wide: Myntra's shape
    p = tmp_path / "p.png"
    Image.fromarray(arr).save(p)
    consts = C.preprocess_constants()
    served = pp.decode_image(p.read_bytes(), consts)
    sq = pt.read_photo(p, consts)
    ours = pt.augment(torch.from_numpy(sq[None].copy()), pt.TuneConfig(size=C.IMAGE_SIZE), None, train=False)[0].numpy()
    assert np.abs(ours - served).max() <= 1 / 128 + 1e-6


def test_pairs_come_from_training_groups_and_instances():
    labels = np.array([0, 0, 1, 1, 1, 2, -1, -1, 3, 3, 4, 4])
    train_idx = np.arange(10)  # 10, 11 (group 4) are held out
    groups = pt.style_groups(labels, train_idx)
    assert [list(g) for g in groups] == [[0, 1], [2, 3, 4], [8, 9]]
    cfg = pt.TuneConfig(batch_pairs=6, style_share=0.5)
    left, right = pt.sample_pairs(np.random.default_rng(0), train_idx, groups, cfg)
    assert len(left) == len(right) == 6
    style = [(a, b) for a, b in zip(left[:3], right[:3])]
    assert all(a != b and labels[a] == labels[b] for a, b in style)
    assert len({labels[a] for a, _ in style}) == 3  # distinct groups
    assert np.array_equal(left[3:], right[3:]) and set(left) <= set(train_idx)


def test_loss_never_uses_a_groupmate_or_the_same_product_as_a_negative():
    g = torch.Generator().manual_seed(0)
    za = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    zb = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    labels, ids = torch.tensor([5, 5, 6, -1, -1]), torch.tensor([0, 1, 2, 3, 3])
    logits = za @ zb.T / 0.1
    allowed = [[0, 2, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 2, 4]]
    # rows: 0 and 1 share group 5; 3 and 4 are one product (ungrouped, -1, never a group)
    rows = [torch.logsumexp(logits[i, allowed[i]], 0) - logits[i, i] for i in range(5)]
    cols = [torch.logsumexp(logits[allowed[i], i], 0) - logits[i, i] for i in range(5)]
    want = (torch.stack(rows).mean() + torch.stack(cols).mean()) / 2
    assert pt.pair_loss(za, zb, labels, ids, 0.1).item() == pytest.approx(want.item(), rel=1e-6)


class _Stop(Exception):
    pass


def test_training_resumes_bit_identically_and_writes_loadable_weights(tmp_path):
    photos, labels = _photos(12), np.array([0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1])
    train_idx = np.arange(12)
    cfg = pt.TuneConfig(**TINY)
    full, hist = pt.train(photos, labels, train_idx, cfg, tmp_path / "a")
    assert len(hist) >= 1 and all(np.isfinite(h["loss"]) for h in hist)

    calls = []

    def stop_after_two():
        calls.append(1)
        if len(calls) == 2:  # the state was saved after step 2
            raise _Stop

    with pytest.raises(_Stop):
        pt.train(photos, labels, train_idx, cfg, tmp_path / "b", on_step=stop_after_two)
    resumed, hist_b = pt.train(photos, labels, train_idx, cfg, tmp_path / "b")
    sa, sb = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and hist == hist_b
    # an other config does not resume from that state: it starts over
    other = dataclasses.replace(cfg, lr=3e-4)
    _, hist_c = pt.train(photos, labels, train_idx, other, tmp_path / "b")
    assert hist_c[0]["step"] == 0

    # the written backbone is the served photo graph with the tuned weights
    ib = ImageBackbone(tmp_path / "a" / pt.BACKBONE_FILE, photo_input=cfg.photo_input)
    x = pt.augment(torch.from_numpy(photos[:3]), cfg, None, train=False)
    with torch.no_grad():
        assert torch.allclose(ib(x)[:, 0, :1280], full.pooled(x), atol=1e-5)
        raw = pt.PhotoTower(cfg).eval().pooled(x)
    assert not torch.allclose(raw, full.pooled(x), atol=1e-4)  # it did train


def test_bench_photo_tune_scores_raw_and_tuned_on_held_out_groups(catalogue, tmp_path):
    from samestyle.cli.main import cli

    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["bench", "photo-tune", str(catalogue.csv_path), "--label-col", "style_group",
                                 "--heldout", "0.4", "--out-dir", str(out), "--steps", "2", "--batch-pairs", "4",
                                 "--size", "32", "--threads", "1", "--exclude", "articleType=Tshirts", "--json",
                                 "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert set(rep["i2i"]) == {"raw pooled", "tuned pooled", "tuned projection head"}
    assert all(m["queries"] == rep["queries"] > 0 and 0 <= m["r@1"] <= m["r@10"] <= 1 for m in rep["i2i"].values())
    assert rep["train_products"] > 0 and rep["config"]["steps"] == 2 and rep["photo_error_count"] == 0
    assert (out / pt.BACKBONE_FILE).exists() and rep["split"] == "heldout 0.4, seed 0"
    # the category left out of training is scored on its own, raw beside tuned
    chk = rep["category_check"]["articleType=Tshirts"]
    assert rep["excluded"] == ["articleType=Tshirts"] and chk["queries"] > 0
    assert chk["raw pooled"]["queries"] == chk["tuned pooled"]["queries"] == chk["queries"]
    bad = CliRunner().invoke(cli, ["bench", "photo-tune", str(catalogue.csv_path), "--label-col", "style_group",
                                   "--out-dir", str(out), "--exclude", "Footwear"])
    assert bad.exit_code != 0 and "--exclude [Footwear] is not COL=VALUE" in bad.output


def test_the_own_title_term_trains_a_title_head_into_the_photo_space(tmp_path):
    photos, labels = _photos(12), np.array([0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1])
    titles = np.random.default_rng(1).normal(size=(12, 384)).astype(np.float32)
    cfg = pt.TuneConfig(**{**TINY, "w_title": 1.0})
    with pytest.raises(ValueError, match="one title vector per photo"):
        pt.train(photos, labels, np.arange(12), cfg, tmp_path / "none")
    tower, hist = pt.train(photos, labels, np.arange(12), cfg, tmp_path / "t", titles=titles)
    photo_only, hist_p = pt.train(photos, labels, np.arange(12), pt.TuneConfig(**TINY), tmp_path / "p")
    assert hist[0]["loss"] > hist_p[0]["loss"]  # the same photo term plus a positive title term
    head = torch.nn.Linear(384, cfg.dim)
    head.load_state_dict(torch.load(tmp_path / "t" / pt.TITLE_HEAD_FILE))
    assert torch.equal(head.weight, tower.title_head.weight)
    assert not (tmp_path / "p" / pt.TITLE_HEAD_FILE).exists() and photo_only.title_head is None
    assert tower.embed_titles(torch.from_numpy(titles[:2])).shape == (2, cfg.dim)
    with pytest.raises(ValueError, match="w_title"):
        pt.TuneConfig(w_title=-1)


def test_a_state_saved_before_an_option_existed_resumes_with_its_default(tmp_path):
    photos, labels = _photos(12), np.array([0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1])
    cfg = pt.TuneConfig(**TINY)
    pt.train(photos, labels, np.arange(12), cfg, tmp_path)
    state = torch.load(tmp_path / pt.STATE_FILE, weights_only=False)
    del state["config"]["w_title"]  # as run 13 and 14 wrote it
    torch.save(state, tmp_path / pt.STATE_FILE)
    _, hist = pt.train(photos, labels, np.arange(12), cfg, tmp_path)
    assert hist == state["history"]  # nothing retrained: it resumed at the last step


def test_bench_photo_tune_with_titles_scores_title_to_own_photo(catalogue, tmp_path):
    from samestyle.cli.main import cli

    r = CliRunner().invoke(cli, ["bench", "photo-tune", str(catalogue.csv_path), "--label-col", "style_group",
                                 "--heldout", "0.4", "--out-dir", str(tmp_path / "run"), "--steps", "2",
                                 "--batch-pairs", "4", "--size", "32", "--threads", "1", "--w-title", "0.5",
                                 "--no-baseline", "--json", "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())  # the output also carries the text backbone's load bar
    assert rep["config"]["w_title"] == 0.5 and set(rep["i2i"]) == {"tuned pooled", "tuned projection head"}
    own = rep["own_pair"]
    assert set(own) == {"title->own photo", "photo->own title"}
    assert all(0 < m["queries"] and 0 <= m["r@1"] <= m["r@10"] <= 1 for m in own.values())
    assert (tmp_path / "run" / pt.TITLE_HEAD_FILE).exists()


def test_title_loss_with_extra_negatives_ranks_each_photo_title_above_them():
    g = torch.Generator().manual_seed(0)
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=1)  # noqa: E731
    zp, zt, ze = unit(3), unit(3), unit(4)
    labels, ids = torch.tensor([5, 6, -1]), torch.tensor([0, 1, 2])
    extra_labels, extra_ids = torch.tensor([5, 7, -1, -1]), torch.tensor([10, 11, 2, 12])
    # without extras it is pair_loss itself
    assert pt.title_loss(zp, zt, labels, ids, 0.1).item() == pt.pair_loss(zp, zt, labels, ids, 0.1).item()
    full = torch.cat([zt, ze])
    logits = zp @ full.T / 0.1
    # photo 0 (group 5) never meets extra 0 (group 5) as a negative; photo 2 never its own title again (extra 2)
    allowed = [[0, 1, 2, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 6]]
    rows = torch.stack([torch.logsumexp(logits[i, allowed[i]], 0) - logits[i, i] for i in range(3)]).mean()
    cols = torch.stack([torch.logsumexp(logits[:3, i], 0) - logits[i, i] for i in range(3)]).mean()
    got = pt.title_loss(zp, zt, labels, ids, 0.1, ze, extra_labels, extra_ids)
    assert got.item() == pytest.approx(((rows + cols) / 2).item(), rel=1e-6)


def test_the_title_term_on_its_own_photo_head_with_extra_negatives(tmp_path):
    photos, labels = _photos(12), np.array([0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1])
    titles = np.random.default_rng(1).normal(size=(12, 384)).astype(np.float32)
    shared, _ = pt.train(photos, labels, np.arange(12), pt.TuneConfig(**{**TINY, "w_title": 1.0}), tmp_path / "s",
                         titles=titles)
    cfg = pt.TuneConfig(**{**TINY, "w_title": 1.0, "title_head_apart": True, "title_negatives": 5})
    apart, hist = pt.train(photos, labels, np.arange(12), cfg, tmp_path / "a", titles=titles)
    assert shared.photo_title_head is None and not (tmp_path / "s" / pt.PHOTO_TITLE_HEAD_FILE).exists()
    head = torch.nn.Linear(1280, cfg.dim)
    head.load_state_dict(torch.load(tmp_path / "a" / pt.PHOTO_TITLE_HEAD_FILE))
    assert torch.equal(head.weight, apart.photo_title_head.weight)
    x = pt.augment(torch.from_numpy(photos[:3]), cfg, None, train=False)
    with torch.no_grad():
        p = apart.pooled(x)
        assert not torch.allclose(apart.photos_for_titles(p), apart.embed(x))  # its own projection
        assert torch.allclose(shared.photos_for_titles(shared.pooled(x)), shared.embed(x))
    # resumable like the rest: a second call with the same config retrains nothing
    _, again = pt.train(photos, labels, np.arange(12), cfg, tmp_path / "a", titles=titles)
    assert again == hist
    for bad in ({"title_head_apart": True}, {"title_negatives": 3}):
        with pytest.raises(ValueError, match="need w_title > 0"):
            pt.TuneConfig(**bad)
    with pytest.raises(ValueError, match="title_negatives"):
        pt.TuneConfig(w_title=0.5, title_negatives=-1)


def test_bench_photo_tune_scores_the_title_term_through_its_own_photo_head(catalogue, tmp_path):
    from samestyle.cli.main import cli

    r = CliRunner().invoke(cli, ["bench", "photo-tune", str(catalogue.csv_path), "--label-col", "style_group",
                                 "--heldout", "0.4", "--out-dir", str(tmp_path / "run"), "--steps", "2",
                                 "--batch-pairs", "4", "--size", "32", "--threads", "1", "--w-title", "0.5",
                                 "--title-head", "apart", "--title-negatives", "8",
                                 "--no-baseline", "--json", "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["config"]["title_head_apart"] is True and rep["config"]["title_negatives"] == 8
    assert all(0 < m["queries"] and 0 <= m["r@1"] <= m["r@10"] <= 1 for m in rep["own_pair"].values())
    assert (tmp_path / "run" / pt.PHOTO_TITLE_HEAD_FILE).exists()


def test_title_vectors_are_cached_by_the_titles_they_encode(tmp_path):
    from samestyle.model import features

    titles = ["Puma Men Black T-shirt", "Nike Women Blue Shoes", "Fastrack Unisex Watch"]
    calls = []
    first = features.title_vectors(titles, tmp_path, threads=1)
    cached = sorted(tmp_path.glob("titles-*.npy"))
    assert len(cached) == 1 and first.shape == (3, 384)
    again = features.title_vectors(titles, tmp_path, threads=1, on_batch=calls.append)
    assert np.array_equal(first, again) and calls == [3]  # read back, the progress still told
    other = features.title_vectors(titles[:2] + ["Fastrack Unisex Watch "], tmp_path, threads=1)
    assert len(sorted(tmp_path.glob("titles-*.npy"))) == 2  # other titles: another entry
    assert np.allclose(other[:2], first[:2], atol=1e-6)

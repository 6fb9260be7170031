"""Training on a tiny generated set lowers the loss; evaluation metrics are right on
hand-made cases; the CLI writes a loadable checkpoint."""

import dataclasses
import json

import numpy as np
import pytest

from samestyle import evaluate as ev
from samestyle import dataset
from samestyle.model import checkpoint, features
from samestyle.train import TrainConfig, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """SAMESTYLE_DATA_DIR of this module: its cache/ holds the feature cache that the
    `tiny` fixture fills and `samestyle train`/`eval` then read, as they would after
    any earlier command on the same catalogue (stem and title graphs exported once)."""
    return tmp_path_factory.mktemp("train-data")


@pytest.fixture(scope="module")
def tiny(catalogue, data_dir):
    data = dataset.read(catalogue.csv_path, label_col="style_group")
    feats = features.for_catalogue(data, data_dir / "cache", progress=False)
    return data, feats


def test_loss_decreases(tiny):
    data, feats = tiny
    from samestyle.pairs import group_pairs

    index = {p: i for i, p in enumerate(data.ids)}
    pairs = np.array([(index[a], index[b]) for a, b in group_pairs(data.ids, data.labels)])
    cfg = TrainConfig(steps=40, batch_size=32, warmup=5, lr=1e-3, seed=0, threads=1,
                      fusion={"embed_dim": 32, "d_model": 64, "heads": 2, "layers": 1})
    _, _, hist = train(feats, data.labels, np.arange(len(data)), pairs, cfg, progress=False, log_every=1)
    first = np.mean([h["loss"] for h in hist[:5]])
    last = np.mean([h["loss"] for h in hist[-5:]])
    assert last < 0.7 * first, (first, last)
    # deterministic for a seed
    _, _, again = train(feats, data.labels, np.arange(len(data)), pairs, cfg, progress=False, log_every=1)
    assert [h["loss"] for h in hist[:5]] == [h["loss"] for h in again[:5]]


@pytest.fixture(scope="module")
def tiny_colours(catalogue, tiny):
    data = dataset.read(catalogue.csv_path, label_col="style_group", colour_col="baseColour")
    return data, tiny[1]


def _full_cfg(**kw):
    # one torch thread: these tiny batches gain nothing from more, and test runs share the cores
    return TrainConfig(steps=kw.pop("steps", 30), threads=kw.pop("threads", 1), batch_size=32, warmup=5, lr=1e-3, tail_lr=1e-4, seed=0,
                       loss="infonce", temperature=0.2, self_temperature=0.05, w_ii=0.5, w_ti=0.5, w_mod=0.5,
                       w_local_image=0.2, self_colour_negatives=True, w_colour=0.5,
                       fusion={"embed_dim": 32, "d_model": 64, "heads": 2, "layers": 1, "skip": True,
                               "colour_dims": 8, "colour_weight": 0.35}, **kw)


def _pairs(data):
    from samestyle.pairs import group_pairs

    index = {p: i for i, p in enumerate(data.ids)}
    return np.array([(index[a], index[b]) for a, b in group_pairs(data.ids, data.labels)])


def test_tail_and_every_term_train(tiny_colours):
    """The photo tail trains with the fusion encoder; every loss term is active and
    the loss falls; the frozen stem and the BN statistics do not move."""
    import torch

    from samestyle.model.backbones import ImageBackbone

    data, feats = tiny_colours
    _, tail, hist = train(feats, data.labels, np.arange(len(data)), _pairs(data), _full_cfg(), progress=False,
                          log_every=1, colours=data.colours)
    assert {"pair_fused", "ii", "ti", "self", "mod", "colour", "local", "local_image"} <= set(hist[0])
    assert all(hist[0][k] > 0 for k in ("ii", "ti", "mod", "self", "colour"))
    assert np.mean([h["loss"] for h in hist[-5:]]) < np.mean([h["loss"] for h in hist[:5]])
    fresh = ImageBackbone()
    a, b = fresh.state_dict(), tail.state_dict()
    moved = [k for k in a if not torch.equal(a[k], b[k])]
    assert moved and all(k.startswith(("net._blocks.15.", "net._conv_head.", "net._bn1.")) for k in moved)
    assert not any("running" in k for k in moved)


@pytest.mark.slow  # 30 more training steps (27 s in #14's timing); test_tail_and_every_term_train trains every term
def test_modifier_term_against_the_photo_view(tiny_colours):
    """mod_target="image": photo of a + b's colour must find b's photo view; the term
    alone (every other weight 0) trains, and its loss falls."""
    data, feats = tiny_colours
    cfg = dataclasses.replace(_full_cfg(steps=30, mod_target="image", mod_temperature=0.1),
                              **{w: 0.0 for w in ("w_fused", "w_text", "w_image", "w_ii", "w_ti", "w_self",
                                                  "w_local", "w_local_image")})
    _, _, hist = train(feats, data.labels, np.arange(len(data)), _pairs(data), cfg, progress=False, log_every=1,
                       colours=data.colours)
    mods = [h["mod"] for h in hist]
    assert all(m > 0 for m in mods)
    assert np.mean(mods[-5:]) < 0.8 * np.mean(mods[:5])
    with pytest.raises(ValueError, match="mod_target"):
        _full_cfg(mod_target="title")


@pytest.mark.slow  # 30 more training steps; test_tail_and_every_term_train trains every term
def test_colour_term_alone_teaches_the_colour_part(tiny_colours):
    """With colour kept apart, the colour term alone (every other weight 0) trains: its
    loss falls, and afterwards the photo views' colour parts sit closer to products of
    their own colour than to the others."""
    import torch

    from samestyle.model.fusion import colour_part

    data, feats = tiny_colours
    cfg = dataclasses.replace(_full_cfg(steps=30), **{w: 0.0 for w in (
        "w_fused", "w_text", "w_image", "w_ii", "w_ti", "w_self", "w_mod", "w_local", "w_local_image")})
    model, tail, hist = train(feats, data.labels, np.arange(len(data)), _pairs(data), cfg, progress=False,
                              log_every=1, colours=data.colours)
    losses = [h["colour"] for h in hist]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    with torch.no_grad():
        stem = torch.from_numpy(feats.image_stem.astype(np.float32))
        tok = tail.tail(stem)
        im = torch.ones(len(tok), tok.shape[1], dtype=torch.long)
        empty_t = torch.zeros(len(tok), 1, feats.text_tokens.shape[2])
        v = model(tok, im, empty_t, torch.zeros(len(tok), 1, dtype=torch.long))
    col = colour_part(v, model.cfg).numpy()
    names = np.array(data.colours)
    sim = col @ col.T
    same = (names[:, None] == names[None, :]) & ~np.eye(len(names), dtype=bool)
    other = names[:, None] != names[None, :]
    assert sim[same].mean() > sim[other].mean() + 0.2, (sim[same].mean(), sim[other].mean())


def test_resume_reproduces_an_uninterrupted_run(tiny_colours, tmp_path):
    data, feats = tiny_colours
    args = (feats, data.labels, np.arange(len(data)), _pairs(data))
    # one thread: what is compared is resuming, not multi-threaded reductions, whose
    # summation order may change when a loaded machine hands a run fewer threads
    cfg = _full_cfg(steps=12)
    m1, t1, _ = train(*args, cfg, progress=False, colours=data.colours)
    state = tmp_path / "state.pt"
    # a run stopped after 6 steps (its state saved), then resumed to 12
    train(*args, cfg, progress=False, colours=data.colours, state_file=state, save_every=6, _stop_after=6)
    m2, t2, _ = train(*args, cfg, progress=False, colours=data.colours, state_file=state, save_every=6)
    from samestyle.model.checkpoint import weights_hash

    assert weights_hash(m1.state_dict()) == weights_hash(m2.state_dict())
    assert weights_hash(t1.tail_state()) == weights_hash(t2.tail_state())


def test_rank_metrics_on_hand_made_case():
    # 4 products; 0 and 1 share a label; query 0's best relevant is 1 at rank 2
    g = np.array([[1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1]], dtype=np.float32)
    labels = np.array([5, 5, -1, -1])
    rel = ev.same_label_index(labels)
    ranks = ev.first_relevant_ranks(g[[0]], g, np.array([0]), rel)
    assert ranks.tolist() == [2]  # product 2 (0.8) beats product 1 (0.6); the query itself is excluded
    m = ev.metrics(ranks)
    assert m["mrr"] == 0.5 and m["r@1"] == 0.0 and m["r@5"] == 1.0


def test_table_sends_query_views_against_the_stored_views():
    """A search may send another vector than it stores (its colour part scaled): the
    table ranks each query view against the stored views."""
    from samestyle.query.requests import with_colour

    # dims: [style, style, colour]; 0 and 1 share a style, 2 shares 0's colour
    stored = np.array([[1, 0, 0.6], [1, 0, -0.6], [0.7, 0.7, 0.6]], dtype=np.float32)
    views = {"fused": stored}
    labels = np.array([1, 1, -1])
    full = ev.table(views, labels, np.array([0]), directions=("m2m",))
    blind = ev.table(views, labels, np.array([0]), directions=("m2m",),
                     query_views={"fused": with_colour(stored, 1, 0.0)})
    assert full["m2m"]["r@1"] == 0.0 and blind["m2m"]["r@1"] == 1.0
    assert with_colour(stored, 0, 0.0) is stored and with_colour(stored, 1, 1.0) is stored


def test_own_pair_and_queries():
    t = np.eye(3, dtype=np.float32)
    i = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    m = ev.own_pair(t, i, np.arange(3))
    assert m["r@1"] == pytest.approx(1 / 3, abs=1e-4)
    q = ev.label_queries(np.array([1, 1, 2, -1, 3, 3]), np.arange(6), None)
    assert q.tolist() == [0, 1, 4, 5]  # singleton label 2 and unlabelled 3 are not queries


def test_own_pair_queries_need_a_photo_and_a_title_that_is_not_blank():
    has_image = np.array([1, 1, 0, 1, 1, 1], dtype=bool)
    titles = ["red dress", "  ", "blue shirt", "", "green cap", "tee"]
    # row 1 and 3: blank titles; row 2: no photo; row 5: not a candidate
    assert ev.own_pair_queries(has_image, titles, np.array([0, 1, 2, 3, 4]), None).tolist() == [0, 4]
    picked = ev.own_pair_queries(has_image, titles, np.arange(6), 2, seed=3)
    assert len(picked) == 2 and set(picked) <= {0, 4, 5} and list(picked) == sorted(picked)
    assert picked.tolist() == ev.own_pair_queries(has_image, titles, np.arange(6), 2, seed=3).tolist()


def test_heldout_split_is_by_group_and_stable():
    labels = np.repeat(np.arange(200), 3)
    a = dataset.heldout_groups(labels, 0.25, seed=0)
    assert a.tolist() == dataset.heldout_groups(labels, 0.25, seed=0).tolist()
    for g in range(200):
        assert len(set(a[labels == g])) == 1  # whole groups only
    assert 0.15 < a.mean() < 0.35


@pytest.mark.slow  # `samestyle train`, then `eval --encoder local` over the catalogue (49 s in #14's timing)
def test_train_and_eval_cli(catalogue, data_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from samestyle.cli.main import cli

    env = {"SAMESTYLE_DATA_DIR": str(data_dir)}
    out = tmp_path / "ck"
    r = CliRunner().invoke(cli, ["train", str(catalogue.csv_path), "--label-col", "style_group", "--steps", "5",
                                 "--batch-size", "16", "--embed-dim", "32", "--tail-lr", "1e-4", "--w-mod", "0.5",
                                 "--colour-col", "baseColour", "--self-colour-negatives",
                                 "--colour-dims", "8", "--colour-weight", "0.35", "--w-colour", "0.5",
                                 "--exclude", "articleType=Tshirts", "--out", str(out), "--json"], env=env)
    assert r.exit_code == 0, r.output
    man = checkpoint.read_manifest(out)
    assert man["embed_dim"] == 32 and man["training"]["data_sha256"]
    assert man["image_tail"]["from_block"] == 15 and (out / "image_tail.safetensors").exists()
    assert not (out / ".train-state.pt").exists()
    r = CliRunner().invoke(cli, ["eval", str(catalogue.csv_path), "--label-col", "style_group", "--model", str(out),
                                 "--encoder", "local", "--all-groups", "--colour-col", "baseColour", "--threads", "1",
                                 "--out", str(tmp_path / "eval.json"), "--json"], env=env)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "eval.json").read_text())
    assert res == json.loads(r.output[r.output.index("{"):])
    assert set(res["directions"]) == set(ev.DIRECTIONS)
    assert res["queries"] > 50 and "title->own photo" in res["own_pair"]
    assert res["modifier"]["queries"] > 20 and 0 <= res["modifier"]["photo + colour word"]["hit@10"] <= 1
    # colour kept apart: the table is as served (each search type's query colour), and again at full colour
    assert man["fusion"]["colour_dims"] == 8 and res["query_colour"]["colour_dims"] == 8
    assert res["query_colour"]["photo_text"] == 1.0 and res["query_colour"]["product"] == 0.0
    assert set(res["with_colour"]["directions"]) == {"i2i", "t2i", "i2t", "t2t", "m2m"}
    # the category the model was trained without is checked by default, beside the raw backbone
    chk = res["category_check"]["articleType=Tshirts"]
    assert chk["products"] > 0 and chk["i2i"]["queries"] == chk["i2i raw backbone"]["queries"] > 0
    # the frozen-feature ceiling on the model's own held-out split, from the same feature cache
    r = CliRunner().invoke(cli, ["bench", "probe", str(catalogue.csv_path), "--label-col", "style_group",
                                 "--model", str(out), "--steps", "20", "--batch-size", "16", "--json"], env=env)
    assert r.exit_code == 0, r.output
    pr = json.loads(r.output[r.output.index("{"):])
    assert pr["split"] == f"heldout {man['training']['heldout']}, seed {man['training'].get('split_seed', 0)}"
    assert pr["queries"] > 0 and pr["train_products"] > 16 and len(pr["loss"]) >= 1
    assert set(pr["directions"]) == {"t2i", "i2t", "i2i"} and 0 <= pr["own_pair"]["title->own photo"]["r@10"] <= 1


def test_self_temperature_sharpens_only_the_self_term():
    """--self-temperature: the self-distinctiveness term can use its own (sharper)
    InfoNCE temperature while the pair terms keep --temperature."""
    import torch

    from samestyle.train import contrastive

    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    k = torch.nn.functional.normalize(q + 0.3 * torch.randn(8, 16, generator=g), dim=1)
    neg_ok = ~torch.eye(8, dtype=torch.bool)
    warm = TrainConfig(loss="infonce", temperature=0.2)
    sharp = TrainConfig(loss="infonce", temperature=0.05)
    assert float(contrastive(q, k, neg_ok, warm, 0.05)) == pytest.approx(float(contrastive(q, k, neg_ok, sharp)))
    assert float(contrastive(q, k, neg_ok, warm, None)) == pytest.approx(float(contrastive(q, k, neg_ok, warm)))
    assert float(contrastive(q, k, neg_ok, warm, 0.05)) != pytest.approx(float(contrastive(q, k, neg_ok, warm)))


def test_an_anchored_photo_view_trains_saves_and_evaluates(catalogue, data_dir, tmp_path):
    """`samestyle train --image-anchor`: the checkpoint carries the fixed projection (the
    seeded one, not trained) and `samestyle eval` runs on it."""
    import torch
    from click.testing import CliRunner

    from samestyle.cli.main import cli
    from samestyle.model.fusion import FusionConfig, FusionEncoder

    env = {"SAMESTYLE_DATA_DIR": str(data_dir)}
    out = tmp_path / "anchored"
    r = CliRunner().invoke(cli, ["train", str(catalogue.csv_path), "--label-col", "style_group", "--steps", "5",
                                 "--batch-size", "16", "--embed-dim", "32", "--tail-lr", "1e-4",
                                 "--colour-col", "baseColour", "--colour-dims", "8", "--colour-weight", "0.35",
                                 "--image-anchor", "0.5", "--threads", "1", "--out", str(out), "--json"], env=env)
    assert r.exit_code == 0, r.output
    model, man = checkpoint.load(out)
    assert man["fusion"]["image_anchor"] == 0.5
    fresh = FusionEncoder(FusionConfig.from_dict(man["fusion"]))
    assert torch.equal(model.anchor_proj, fresh.anchor_proj)
    r = CliRunner().invoke(cli, ["eval", str(catalogue.csv_path), "--label-col", "style_group", "--model", str(out),
                                 "--encoder", "local", "--all-groups", "--threads", "1", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert 0 <= json.loads(r.output[r.output.index("{"):])["directions"]["i2i"]["r@1"] <= 1

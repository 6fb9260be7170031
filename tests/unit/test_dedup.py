"""Near-duplicate detection: block-wise pairs equal brute force, union-find clusters
are the connected components, pairwise P/R/F1 equal counting by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from samestyle import contract as C
from samestyle import dedup as D


def _data(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n // 3, d))
    x = np.concatenate([base, base + 0.05 * rng.normal(size=base.shape), rng.normal(size=(n - 2 * len(base), d))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    groups = rng.choice(["A", "B", "C"], size=n).tolist()
    return x.astype(np.float32), groups


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_find_pairs_equals_brute_force(block):
    x, groups = _data()
    got = D.find_pairs(x, groups, 0.9, block=block)
    want = {(i, j) for i, j in itertools.combinations(range(len(x)), 2)
            if groups[i] == groups[j] and float(x[i] @ x[j]) >= 0.9}
    assert set(zip(got.i.tolist(), got.j.tolist())) == want and len(got) == len(want)
    assert np.allclose(got.score, np.einsum("ij,ij->i", x[got.i], x[got.j]), atol=1e-5)
    assert (got.above(0.99).score >= 0.99).all()


def test_cluster_ids_are_connected_components():
    pairs = D.Pairs(np.array([0, 1, 5, 7]), np.array([1, 2, 6, 5]), np.ones(4, np.float32))
    c = D.cluster_ids(9, pairs)
    assert c[0] == c[1] == c[2] and c[5] == c[6] == c[7]
    assert len({c[0], c[5], c[3], c[4], c[8]}) == 5


def test_evaluate_counts_pairs():
    cids = np.array([0, 0, 0, 3, 3, 5, 6])
    labels = ["a", "a", "b", "b", -1, "a", None]
    s = D.evaluate(cids, labels, links=4, threshold=0.9)
    # predicted pairs: C(3,2) + C(2,2) = 4; true pairs: a:{0,1,5}=3, b:{2,3}=1 -> 4; TP: (0,1) only.
    assert (s.clusters, s.clustered, s.predicted_pairs, s.true_pairs, s.tp) == (2, 5, 4, 4, 1)
    assert s.precision == pytest.approx(0.25) and s.recall == pytest.approx(0.25) and s.f1 == pytest.approx(0.25)
    assert D.evaluate(cids, None, 4, 0.9).precision is None


def test_cluster_records():
    ids = ["p0", "p1", "p2", "p3"]
    pairs = D.Pairs(np.array([0, 1]), np.array([1, 2]), np.array([0.99, 0.97], np.float32))
    cids = D.cluster_ids(4, pairs)
    recs = list(D.cluster_records(ids, ["A"] * 4, cids, pairs, labels=[1, 1, -1, 2]))
    assert len(recs) == 1
    r = recs[0]
    assert r["members"] == ["p0", "p1", "p2"] and r["size"] == 3 and r["category"] == "A"
    assert r["links"][0] == ["p0", "p1", 0.99] and r["score_min"] == pytest.approx(0.97)
    assert r["labels"] == [1, 1, None]


# --- photo+title: the photo and the title scored apart, mutual best matches --------------
def _unit(rows):
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("block", [3, 1024])
def test_nearest_equals_brute_force(block):
    x, groups = _data(n=240)
    got = D.nearest(x, groups, k=4, block=block)
    g = np.asarray(groups)
    for r in range(len(x)):
        same = np.flatnonzero((g == g[r]) & (np.arange(len(x)) != r))
        want = same[np.argsort(-(x[same] @ x[r]), kind="stable")[:4]]
        assert np.allclose(np.sort(x[got[r]] @ x[r]), np.sort(x[want] @ x[r]), atol=1e-6)
        assert set(got[r].tolist()) <= set(same.tolist())


def test_nearest_pads_small_groups_and_ivf_path_finds_planted_copies():
    x, _ = _data(n=30)
    got = D.nearest(x, ["A", "A", "B"] + ["C"] * 27, k=3)
    assert got[0].tolist() == [1, -1, -1] and (got[2] == -1).all()
    rng = np.random.default_rng(5)
    base = _unit(rng.normal(size=(3000, 32)))
    copy = _unit(base[:300] + 0.1 * rng.normal(size=(300, 32)))
    xs = np.concatenate([base, copy])
    ivf = D.nearest(xs, ["A"] * len(xs), k=2, exact_max=100)  # through the IVF index
    found = np.mean([3000 + r in ivf[r] for r in range(300)])
    assert found >= 0.95


def test_candidate_pairs_are_unique_and_ordered():
    nn1 = np.array([[1, 2], [0, -1], [0, 1]])
    nn2 = np.array([[2, -1], [2, -1], [1, -1]])
    i, j = D.candidate_pairs(3, nn1, nn2)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_title_overlap_is_trigram_jaccard():
    titles = ["Puma Men Blue Running Shoes", "Running Shoes Puma Men Blue", "Puma Men Bleu Runing Shoes",
              "Nike Women Red Top", "", None]
    i = np.array([0, 0, 0, 4, 4])
    j = np.array([1, 2, 3, 5, 0])
    got = D.title_overlap(titles, i, j)
    g = [D.title_grams(t) for t in titles]
    want = [len(g[a] & g[b]) / len(g[a] | g[b]) if g[a] | g[b] else 0.0 for a, b in zip(i, j)]
    assert np.allclose(got, want, atol=1e-6)
    assert got[0] == pytest.approx(1.0) and 0.5 < got[1] < 1.0 and got[2] < 0.2 and got[3] == 0 and got[4] == 0
    assert D.title_grams("Red") == {" re", "red", "ed "}


def test_numbers_differ():
    titles = ["Lakme Lipstick 63", "Lakme Lipstick 10", "Lipstick 63 Lakme", "Lakme Lipstick"]
    got = D.numbers_differ(titles, np.array([0, 0, 0]), np.array([1, 2, 3]))
    assert got.tolist() == [True, False, False]


def test_colours_differ():
    titles = ["Nike Men Blue Track Pants", "Nike Men Black Track Pants", "Nike Men Navy Blue Track Pants",
              "Nike Men Bleu Track Pants", "Track Pants Nike Men Blue"]
    got = D.colours_differ(titles, np.array([0, 0, 0, 0, 1]), np.array([1, 2, 3, 4, 3]))
    assert got.tolist() == [True, False, False, False, False]  # a typo'd colour names none


def test_attributes_differ_only_where_both_are_stored():
    colours = ["Navy Blue", "navy  blue", "Black", None, ""]
    got = D.attributes_differ(colours, np.array([0, 0, 0, 0, 3]), np.array([1, 2, 3, 4, 4]))
    assert got.tolist() == [False, True, False, False, False]
    assert not D.attributes_differ(None, np.array([0]), np.array([2])).any()


def test_a_stored_colour_that_differs_never_links_whatever_the_photo_and_title():
    # one photo under one title, stored as two colours (one shot recoloured, a generic
    # title): two colourways; the same pair with one colour missing links as before
    photo, text, titles, groups = _relisting_catalogue()
    linked = lambda p: set(zip(p.i.tolist(), p.j.tolist()))  # noqa: E731
    colours = ["Blue", "Blue", "Black", "White", "Grey", None, None, None, None]
    assert linked(D.photo_title_pairs(photo, text, titles, groups, colours=colours)) == {(0, 1)}
    colours[4] = None
    assert linked(D.photo_title_pairs(photo, text, titles, groups, colours=colours)) == {(0, 1), (3, 4)}
    cat = D.Catalogue([f"p{n}" for n in range(9)], {"image_vec": photo, "text_vec": text}, groups, None,
                      {"title": titles, C.DEDUP_COLOUR_FIELD: ["Blue", "Blue", "Black", "White", "Grey"] + [None] * 4})
    assert linked(D.link(cat, "photo+title", 0.9)) == {(0, 1)}  # dedup's own link reads the stored colour


def test_mutual_best_breaks_chains_and_keeps_ties():
    # a chain 0-1 0.99, 1-2 0.98, 2-3 0.97: 0 and 1 are each other's best; 2's best is 1
    # and 3's is 2, neither returned -> only 0-1 (a threshold alone would join all four).
    i, j = np.array([0, 1, 2]), np.array([1, 2, 3])
    assert D.mutual_best(4, i, j, np.array([0.99, 0.98, 0.97])).tolist() == [True, False, False]
    # three byte-identical copies tie at 1.0: every pair kept, one cluster.
    i, j = np.array([0, 0, 1]), np.array([1, 2, 2])
    assert D.mutual_best(3, i, j, np.ones(3)).all()


def _relisting_catalogue():
    """p0 and its re-listing p1 (same photo, reordered title); p2 another colourway of
    p0's style (similar title, another photo); p3 a re-listing of p4 with a re-cropped
    photo and the same title; p5/p6 two shades whose titles differ only by number;
    p7/p8 one photo shoot in two named colours."""
    rng = np.random.default_rng(0)
    photo = _unit(rng.normal(size=(7, 64)))
    photo[1] = photo[0]
    photo[2] = _unit(photo[0] + 0.9 * rng.normal(size=64))
    photo[3] = _unit(photo[4] + 0.03 * rng.normal(size=64))
    photo[6] = _unit(photo[5] + 0.01 * rng.normal(size=64))
    photo = np.concatenate([photo, _unit(rng.normal(size=(2, 64)))])
    photo[8] = _unit(photo[7] + 0.01 * rng.normal(size=64))
    text = _unit(rng.normal(size=(9, 64)))
    titles = ["Roadster Men Blue Slim Jeans", "Men Blue Roadster Slim Jeans", "Roadster Men Black Slim Jeans",
              "Nike Women White Sneakers", "Nike Women White Sneakers", "Lakme Lipstick 63", "Lakme Lipstick 10",
              "Nike Men Blue Track Pants", "Nike Men Black Track Pants"]
    return photo, text, titles, ["Jeans"] * 3 + ["Shoes"] * 2 + ["Lips"] * 2 + ["Pants"] * 2


def test_photo_title_pairs_link_relistings_not_colourways():
    photo, text, titles, groups = _relisting_catalogue()
    pairs = D.photo_title_pairs(photo, text, titles, groups)
    linked = set(zip(pairs.i.tolist(), pairs.j.tolist()))
    assert linked == {(0, 1), (3, 4)}
    s01 = pairs.score[pairs.i == 0][0]
    assert s01 == pytest.approx(D.IMAGE_WEIGHT * 1.0 + (1 - D.IMAGE_WEIGHT) * 1.0, abs=1e-5)  # reordered: same grams
    cids = D.cluster_ids(9, pairs.above(0.9))
    assert cids[0] == cids[1] and cids[3] == cids[4] and cids[2] not in (cids[0], cids[3]) and cids[5] != cids[6]
    assert cids[7] != cids[8]


def test_link_and_subset():
    photo, text, titles, groups = _relisting_catalogue()
    cat = D.Catalogue([f"p{n}" for n in range(9)], {"image_vec": photo, "text_vec": text}, groups, None,
                      {"title": titles})
    pairs = lambda p: set(zip(p.i.tolist(), p.j.tolist()))  # noqa: E731
    assert pairs(D.link(cat, "photo+title", 0.9)) == {(0, 1), (3, 4)}
    assert pairs(D.link(cat, "image_vec", 0.95)) == pairs(D.find_pairs(photo, groups, 0.95))
    sub = cat.subset(np.array([3, 4]))
    assert sub.ids == ["p3", "p4"] and sub.extra["title"] == titles[3:5] and np.allclose(sub.vectors["image_vec"], photo[3:5])
    assert D.needs("photo+title") == (["image_vec", "text_vec"], ["title", "photo_hash", C.DEDUP_COLOUR_FIELD])
    assert D.needs("fused_vec") == (["fused_vec"], [])
    with pytest.raises(ValueError):
        D.needs("nosuch")


def _recrop_catalogue():
    """p0 a photo; p1 its re-cropped copy (image cosine 0.88, the same photo hash); p2
    another product of the same style (cosine 0.93 to p0, another photo hash). All three
    share one title, so only the photo can tell the copy."""
    e = np.eye(8, dtype=np.float32)
    photo = np.stack([e[0], 0.88 * e[0] + np.sqrt(1 - 0.88**2) * e[1], 0.93 * e[0] + np.sqrt(1 - 0.93**2) * e[2]])
    text = _unit(np.random.default_rng(1).normal(size=(3, 8)))
    return photo.astype(np.float32), text, ["Puma Men Black Running Shoes"] * 3, ["Shoes"] * 3


def test_photo_hashes_tell_a_copy_from_a_lookalike():
    photo, text, titles, groups = _recrop_catalogue()
    linked = lambda p: set(zip(p.i.tolist(), p.j.tolist()))  # noqa: E731
    from samestyle import photohash as PH

    sig = _unit(np.random.default_rng(2).normal(size=(2, PH.DIM)))
    same, other = PH.to_hex(sig[0]), PH.to_hex(sig[1])  # cosine about 0: two photos
    # cosine alone: the lookalike is p0's best match and the copy stays out
    assert linked(D.photo_title_pairs(photo, text, titles, groups)) == {(0, 2)}
    assert linked(D.photo_title_pairs(photo, text, titles, groups, hashes=[None] * 3)) == {(0, 2)}
    with_hash = D.photo_title_pairs(photo, text, titles, groups, hashes=[same, same, other], hash_weight=0.5)
    assert linked(with_hash) == {(0, 1)}
    assert with_hash.score[0] == pytest.approx(D.IMAGE_WEIGHT * (0.5 * 0.88 + 0.5 * 1.0) + (1 - D.IMAGE_WEIGHT),
                                               abs=1e-5)
    # p2 without a hash: its pairs fall back to the cosine (0.93), below the copy's blend
    fallback = D.photo_title_pairs(photo, text, titles, groups, hashes=[same, same, None], hash_weight=0.5)
    assert linked(fallback) == {(0, 1)}
    cat = D.Catalogue(["a", "b", "c"], {"image_vec": photo, "text_vec": text}, groups, None,
                      {"title": titles, "photo_hash": [same, same, other]})
    assert linked(D.link(cat, "photo+title", 0.0)) == {(0, 1)}
    del cat.extra["photo_hash"]  # a collection ingested before the hash: cosine only
    assert linked(D.link(cat, "photo+title", 0.0)) == {(0, 2)}


def test_a_copy_behind_its_style_by_image_vec_is_found_by_its_photo_signature():
    """p0 a photo, p1 its copy (the same signature) whose image_vec sits nearer p2, another
    photo of the style, than p0 (0.95 against 0.88): with one neighbour per row, image_vec
    and text_vec never make (p0, p1) a candidate; the signature's neighbours do."""
    from samestyle import photohash as PH

    e = np.eye(8, dtype=np.float32)
    photo = np.stack([0.93 * e[0] + np.sqrt(1 - 0.93**2) * e[1], 0.95 * e[0] + np.sqrt(1 - 0.95**2) * e[2], e[0]])
    text = np.stack([e[3], e[4], (e[3] + e[4]) / np.sqrt(2)]).astype(np.float32)
    titles, groups = ["Puma Men Black Running Shoes"] * 3, ["Shoes"] * 3
    sig = _unit(np.random.default_rng(2).normal(size=(2, PH.DIM)))
    hashes = [PH.to_hex(sig[0]), PH.to_hex(sig[0]), PH.to_hex(sig[1])]
    linked = lambda p: set(zip(p.i.tolist(), p.j.tolist()))  # noqa: E731
    kw = dict(k=1, hashes=hashes, hash_weight=0.8)
    assert (0, 1) not in linked(D.photo_title_pairs(photo.astype(np.float32), text, titles, groups,
                                                    signature_candidates=False, **kw))
    assert linked(D.photo_title_pairs(photo.astype(np.float32), text, titles, groups, **kw)) == {(0, 1)}
    # a row without a signature has no signature neighbours
    sigs, has = PH.parse([hashes[0], None, hashes[2]])
    nn = D.signature_nearest(sigs, has, groups, k=1)
    assert nn[1].tolist() == [-1] and set(nn[[0, 2], 0].tolist()) == {0, 2}

"""Crop registration (samestyle.photoreg) tells a re-cropped copy of a photo from a
lookalike with the same silhouette, and dedup uses it where the signature cannot."""

import io

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from samestyle import contract as C
from samestyle import dedup as D
from samestyle import photohash as PH
from samestyle import photoreg as PR


def _photo(seed: int, silhouette_seed: int = 0) -> Image.Image:
    """A 60x80 catalogue-like photo: a smooth product silhouette on white, with its own
    fine texture (seeded apart, so two seeds give lookalikes of one silhouette)."""
    h, w = 80, 60
    v, u = np.mgrid[0:h, 0:w]
    rs = np.random.default_rng(silhouette_seed)
    cx, cy, rx, ry = 30 + rs.uniform(-3, 3), 40 + rs.uniform(-3, 3), 18 + rs.uniform(-2, 2), 30 + rs.uniform(-2, 2)
    inside = ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 < 1
    texture = gaussian_filter(np.random.default_rng(seed).normal(size=(h, w)), 1.0)
    g = np.where(inside, 110 + 60 * texture / texture.std(), 250)
    return Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)).convert("RGB")


def _recrop(img: Image.Image, f: float, fx: float, fy: float, quality: int = 40) -> Image.Image:
    """What a seller does: keep f of each side at an offset, resize back, re-save as JPEG."""
    w, h = img.size
    cw, ch = int(w * f), int(h * f)
    x0, y0 = int(fx * (w - cw)), int(fy * (h - ch))
    out = io.BytesIO()
    img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h)).save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def test_a_recrop_registers_and_a_lookalike_does_not():
    src = _photo(1)
    copies = [_recrop(src, f, fx, fy) for f, fx, fy in ((0.9, 0.3, 0.7), (0.95, 1.0, 0.0), (0.82, 0.5, 0.5))]
    lookalike = _photo(2)  # same silhouette, another texture
    greys = np.stack([PR.grey(im) for im in [src, *copies, lookalike]])
    assert greys.shape == (5, 80, 60) and greys.dtype == np.uint8
    P = PR.Prepared(greys)
    i, j = np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])
    ncc = PR.register(P, i, j)
    assert ncc.shape == (4, len(PR.BANDS))
    assert (ncc[:3] > 0.9).all(), ncc  # in every band
    assert (ncc[3] < 0.5).all(), ncc
    # either photo may be the crop: read the other way round, the copies score the same
    back = PR.register(P, j, i)
    np.testing.assert_allclose(back[:3], ncc[:3], atol=1e-5)
    assert (back[3] < 0.5).all()
    # the signature alone does not see the crops (why registration exists)
    sig = np.stack([PH.signature(im) for im in [src, *copies]])
    assert (sig[1:] @ sig[0]).min() < 0.98


def test_similarity_stretches_and_clips():
    np.testing.assert_allclose(PR.similarity(np.array([0.5, 0.85, 0.9, 0.95, 1.0]), 0.85, 0.95),
                               [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_similarity_stretches_each_band_from_its_own_floor_and_takes_the_best():
    """A copy down-sized or re-saved hard loses its fine detail: the fine band falls,
    the coarse one holds, each judged against its own floor."""
    ncc = np.array([[0.90, 0.90], [0.97, 0.80], [0.80, 0.935], [0.5, 0.5]])
    np.testing.assert_allclose(PR.similarity(ncc, (0.85, 0.89), (0.95, 0.98)), [0.5, 1.0, 0.5, 0.0], atol=1e-6)


def test_every_band_has_its_own_stretch():
    """dedup stretches each of photoreg's bands from its own floor to its own top."""
    assert len(C.DEDUP_REG_FLOOR) == len(C.DEDUP_REG_TOP) == len(PR.BANDS)
    assert all(0 < f < t <= 1 for f, t in zip(C.DEDUP_REG_FLOOR, C.DEDUP_REG_TOP))
    assert all(0 < lo < hi for lo, hi in PR.BANDS)


def test_a_downsized_copy_keeps_the_coarse_band():
    """A copy saved at half size and a hard JPEG: the coarse band correlates more than
    the fine one, so the copy gets copy evidence the fine band alone denies it, and a
    lookalike still gets none."""
    src = _photo(1)
    small = io.BytesIO()
    src.resize((30, 40)).save(small, "JPEG", quality=30)
    copy = Image.open(io.BytesIO(small.getvalue()))
    greys = np.stack([PR.grey(im) for im in (src, copy, _photo(2))])
    ncc = PR.register(PR.Prepared(greys), np.array([0, 0]), np.array([1, 2]))
    assert ncc[0, 1] > ncc[0, 0], ncc
    sim = PR.similarity(ncc, (0.85, 0.89), (0.95, 0.98))
    fine_only = PR.similarity(ncc[:, 0], 0.85, 0.95)
    assert fine_only[0] == 0.0 and sim[0] > 0.1 and sim[1] == 0.0, (ncc, sim)


def test_dedup_links_a_recropped_copy_only_with_the_photos():
    """p0 a photo; p1 its re-cropped copy (another signature: the crop moved it; image
    cosine 0.88); p2 a lookalike (cosine 0.93, another signature). One title for all
    three, so only the photo can tell the copy; the signature alone picks the lookalike."""
    src = _photo(1)
    ims = [src, _recrop(src, 0.88, 0.2, 0.8), _photo(2)]
    greys = np.stack([PR.grey(im) for im in ims])
    hashes = [PH.to_hex(PH.signature(im)) for im in ims]
    e = np.eye(8, dtype=np.float32)
    photo = np.stack([e[0], 0.88 * e[0] + np.sqrt(1 - 0.88**2) * e[1], 0.93 * e[0] + np.sqrt(1 - 0.93**2) * e[2]])
    text = np.tile(e[3], (3, 1))
    titles, groups = ["Puma Men Black Running Shoes"] * 3, ["Shoes"] * 3
    linked = lambda p: set(zip(p.i.tolist(), p.j.tolist()))  # noqa: E731
    assert linked(D.photo_title_pairs(photo, text, titles, groups, hashes=hashes)) == {(0, 2)}
    with_photos = D.photo_title_pairs(photo, text, titles, groups, hashes=hashes, greys=greys)
    assert linked(with_photos) == {(0, 1)} and with_photos.score[0] > D.DEFAULT_THRESHOLD
    # photos read lazily, only those of the pairs registration is run on
    asked = []

    def lazy(rows):
        asked.append(rows.tolist())
        return greys[rows]

    assert linked(D.photo_title_pairs(photo, text, titles, groups, hashes=hashes, greys=lazy)) == {(0, 1)}
    assert asked == [[0, 1, 2]]
    # a missing photo (all zeros) is no evidence: back to the signature's answer
    missing = greys.copy()
    missing[1] = 0
    assert linked(D.photo_title_pairs(photo, text, titles, groups, hashes=hashes, greys=missing)) == {(0, 2)}


def test_thumbnail_greys(tmp_path):
    from samestyle.thumbs import Thumbnails

    th = Thumbnails(tmp_path)
    buf = io.BytesIO()
    _photo(1).save(buf, "JPEG", quality=95)
    key = "ab" * 32
    assert th.save(key, buf.getvalue())
    (tmp_path / "thumbs" / "cd").mkdir()
    (tmp_path / "thumbs" / "cd" / ("cd" * 32 + ".jpg")).write_bytes(b"not a jpeg")
    out = th.greys([key, None, "../etc/passwd", "cd" * 32, "ef" * 32], PR.grey, (80, 60))
    assert out.shape == (5, 80, 60)
    assert out[0].any() and not out[1:].any()  # none, not a digest, unreadable, not written
    assert np.abs(out[0].astype(int) - PR.grey(_photo(1)).astype(int)).mean() < 4

"""`samestyle bench dedup`, the scoring of a clustering against the re-listing truth:
pair precision, recall and F1 with the pairs of byte-identical photos left out of both
sides (`score`, with its second scoring that sets the catalogue's own copies apart and
the bound that sets same-title-and-colour pairs apart too), recall by re-listing kind
(`by_kind`) and by photo edit (`by_photo_edit`), and the other-colourway pairs of one
style group that the clustering merges (`style_false_merges`)."""

from __future__ import annotations

import numpy as np

from ... import dedup as D
from .relist import KINDS, PHOTO_EDITS


def _pairs_within(keys: np.ndarray) -> int:
    _, counts = np.unique(keys, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def score(cids: np.ndarray, truth: list[tuple[int, int]], same_photo: np.ndarray, threshold: float,
          links: int, near_identical: int = 0, same_listing: int | None = None) -> dict:
    """Pair precision/recall/F1 of clusters against the re-listing truth pairs; pairs
    of two products sharing a byte-identical photo (`same_photo`: a group id per row,
    -1 for none) are left out of both sides and reported on their own. `near_identical`
    (linked catalogue pairs of one photo saved twice, `near_identical_linked`) gives the
    second scoring, `near_identical_apart`, where those pairs also count neither way; the
    first is unchanged by it. `same_listing` (linked catalogue pairs under the copy limit
    with the same title and colour, `catalogue_link_kinds`) adds `listing_text_apart`:
    those counted neither way too, an upper bound on precision (some are two products
    under one generic title), never the figure a target is judged on."""
    _, sizes = np.unique(cids, return_counts=True)
    predicted = int((sizes * (sizes - 1) // 2).sum())
    has = same_photo >= 0
    photo_pairs = _pairs_within(same_photo[has])
    linked_photo = _pairs_within(np.char.add(np.char.add(cids[has].astype(str), ":"), same_photo[has].astype(str)))
    tp = sum(1 for a, b in truth if cids[a] == cids[b])
    judged = predicted - linked_photo
    p, r, f1 = _prf(tp, judged, len(truth))
    return {"threshold": threshold, "links": links, "clusters": int((sizes > 1).sum()), "predicted_pairs": predicted,
            "true_pairs": len(truth), "tp": tp, "precision": _r(p), "recall": _r(r), "f1": _r(f1),
            "byte_identical_pairs": photo_pairs, "byte_identical_linked": linked_photo,
            "byte_identical_recall": _r(linked_photo / photo_pairs if photo_pairs else None),
            "near_identical_apart": _apart(tp, judged - near_identical, len(truth),
                                           near_identical_linked=near_identical),
            **({} if same_listing is None else {"listing_text_apart": _apart(
                tp, judged - near_identical - same_listing, len(truth), same_listing_text_linked=same_listing)})}


def _prf(tp: int, judged: int, true_pairs: int) -> tuple[float | None, float | None, float | None]:
    """Precision over the `judged` predicted pairs, recall over the true pairs, and F1."""
    p = tp / judged if judged > 0 else None
    r = tp / true_pairs if true_pairs else None
    f1 = (2 * p * r / (p + r) if p + r > 0 else 0.0) if p is not None and r is not None else None
    return p, r, f1


def _apart(tp: int, judged: int, true_pairs: int, **linked: int) -> dict:
    """A scoring with some linked pairs set apart: how many (`linked`, one named count),
    then precision, recall and F1 over the `judged` pairs left."""
    p, r, f1 = _prf(tp, judged, true_pairs)
    return {**linked, "precision": _r(p), "recall": _r(r), "f1": _r(f1)}


def _r(v):
    return None if v is None else round(float(v), 4)


def by_kind(cids: np.ndarray, truth: list[tuple[int, int]], kinds: list[str]) -> dict:
    out = {}
    for k in KINDS:
        sel = [t for t, kk in zip(truth, kinds) if kk == k]
        out[k] = _r(sum(1 for a, b in sel if cids[a] == cids[b]) / len(sel)) if sel else None
    return out


def by_photo_edit(cids: np.ndarray, truth: list[tuple[int, int]], kinds: list[str], edits: list[str]) -> dict:
    """Recall of the photo-changed re-listings (photo or both) by photo edit; a re-listing
    with two edits counts for both."""
    out = {}
    for e in PHOTO_EDITS:
        sel = [t for t, k, h in zip(truth, kinds, edits) if k != "title" and e in h.split("/")[0].split("+")]
        out[e] = _r(sum(1 for a, b in sel if cids[a] == cids[b]) / len(sel)) if sel else None
    return out


def style_false_merges(cids: np.ndarray, style: list, same_photo: np.ndarray) -> dict:
    """Pairs of different products of one style group (other colourways, not duplicates)
    that the clustering merges, as a count and a rate; pairs sharing a byte-identical
    photo left out (the catalogue's own duplicates)."""
    lab = np.array(["" if v in D.NO_LABEL else str(v) for v in style], dtype=object)
    has = lab != ""
    key = lambda *parts: np.array([":".join(map(str, t)) for t in zip(*parts)], dtype=object)  # noqa: E731
    lab, cid, photo = lab[has], cids[has], same_photo[has]
    shared = photo >= 0
    pairs = _pairs_within(lab) - _pairs_within(key(lab[shared], photo[shared]))
    merged = _pairs_within(key(cid, lab)) - _pairs_within(key(cid[shared], lab[shared], photo[shared]))
    return {"style_pairs": pairs, "merged": merged, "rate": _r(merged / pairs if pairs else None)}

"""`samestyle bench dedup`, the misses: why each re-listing the clustering leaves out
at a threshold was left out (`why_missed`). Each missed (source, re-listing) pair is
scored as `dedup` scores it, in parts, and put under one reason:

- `rule`: a rule keeps the two apart (their titles carry other numbers or colour words,
  or their stored colours differ);
- `below`: it scores under the threshold. Its parts are reported: the image_vec
  cosine, the photo-signature similarity, the crop registration as `dedup` ran it
  (0 where its gate, image cosine >= C.DEDUP_REG_MIN_COSINE and title overlap >=
  C.DEDUP_REG_MIN_TITLE, kept it from running) and as it would score without the gate,
  and the title overlap; `gated_out` counts the pairs the gate stopped and
  `over_without_gate` those that registration would have lifted over the threshold;
- `outmatched`: it scores at or above the threshold and is still not linked: one of
  its products has a better match, or the pair never became a candidate.

Pure given its inputs (the photos come through `greys`, as `dedup` reads them)."""

from __future__ import annotations

import numpy as np

from ... import contract as C
from ... import dedup as D
from ... import photohash as PH

REASONS = ("rule", "below", "outmatched")


def why_missed(cat: D.Catalogue, truth: list[tuple[int, int]], cids: np.ndarray, threshold: float,
               kinds: list[str], greys=None) -> dict:
    """Counts of the missed truth pairs by reason (overall and by re-listing kind) and
    the quartiles of the below-threshold pairs' score parts."""
    miss = [(a, b, k) for (a, b), k in zip(truth, kinds) if cids[a] != cids[b]]
    out: dict = {"threshold": threshold, "missed": len(miss), "of": len(truth)}
    if not miss:
        return {**out, **{r: 0 for r in REASONS}}
    i = np.array([m[0] for m in miss], np.int64)
    j = np.array([m[1] for m in miss], np.int64)
    kind = np.array([m[2] for m in miss], dtype=object)
    titles, colours = cat.extra.get("title") or [None] * len(cat.ids), cat.extra.get(C.DEDUP_COLOUR_FIELD)
    rule = D.kept_apart(titles, colours, i, j)
    overlap = D.title_overlap(titles, i, j)
    image = cat.vectors[C.IMAGE_VEC]
    hashes = cat.extra.get(C.PHOTO_HASH)
    photo = D.photo_scores(image, hashes, i, j, greys=greys, overlap=overlap)
    score = D.pair_score(photo, overlap)
    reason = np.where(rule, "rule", np.where(score < threshold, "below", "outmatched"))
    out.update({r: int((reason == r).sum()) for r in REASONS})
    out["by_kind"] = {k: {r: int(((reason == r) & (kind == k)).sum()) for r in REASONS}
                      for k in sorted(set(kinds))}
    below = reason == "below"
    if below.any():
        out["below_parts"] = _below_parts(image, hashes, greys, i[below], j[below], overlap[below], score[below],
                                          threshold)
    return out


def _below_parts(image, hashes, greys, i, j, overlap, score, threshold: float) -> dict:
    cosine = D._dot_pairs(np.asarray(image, np.float32), i, j)
    parts = {"score": score, "image_cosine": cosine, "title_overlap": overlap}
    gate = D.registration_gate(cosine, overlap)
    report: dict = {"pairs": len(i), "gated_out": int((~gate).sum())}
    if hashes is not None:
        sigs, has = PH.parse(hashes)
        both = has[i] & has[j]
        sig = np.zeros(len(i), np.float32)
        sig[both] = PH.similarity(sigs, i[both], j[both], C.DEDUP_HASH_FLOOR)
        parts["signature"] = sig
        report["without_signature"] = int((~both).sum())
        if greys is not None:
            free = D.registration(greys, i, j)
            parts["registration"] = np.where(gate & (sig < 1), free, 0).astype(np.float32)  # as dedup ran it
            parts["registration_without_gate"] = free
            copy = np.maximum(sig, free)
            photo = np.where(both, (1 - D.HASH_WEIGHT) * cosine + D.HASH_WEIGHT * copy, cosine)
            lifted = D.pair_score(photo, overlap)
            report["over_without_gate"] = int(((lifted >= threshold) & ~gate).sum())
    report["quartiles"] = {name: [round(float(q), 4) for q in np.quantile(v, [0.25, 0.5, 0.75])]
                           for name, v in parts.items()}
    return report

"""The copy-detection measurement of docs/benchmarks "dedup" (issue 15), outside the CLI:
`bench dedup`'s own pieces (make_relists, score, by_kind, by_photo_edit,
near_identical_linked) and dedup's own scoring (nearest, candidate_pairs, title_overlap,
photo_scores, mutual_best: what dedup.photo_title_pairs chains), so a sweep over the copy
floor re-uses one candidate search.

    # 1. re-listings of one seed, drawn among the copy model's held-out products only
    python docs/benchmarks/copydetect/measure.py relist CATALOGUE.pkl ONNX_DIR SEED OUT.pkl
    # 2. P/R/F1 per threshold without and with the copy embedding (one run per floor)
    python docs/benchmarks/copydetect/measure.py score OUT.pkl WEIGHTS.npz GREY.npy FLOOR...

The photo score with the embedding (what dedup would have used): 0.2 x image_vec cosine +
0.8 x the larger of the signature similarity (stretched from 0.98, as shipped) and the
copy embeddings' cosine stretched from FLOOR ("K3" instead of a number: stretched from
the larger of the two products' cosine to their 3rd nearest neighbour of the category in
copy space, SSCD-style score normalisation).

CATALOGUE.pkl: the collection as `dedup.load` returns it, pickled as a dict: ids, vectors
(by field), groups, titles, hashes (photo_hash per product), same_photo (byte-identical
photo group per product, -1 for none);
the figures used /tmp/ss42k (42,222 products, model ss-256d-1048764c4820), its
re-listings encoded with that model's ONNX bundle. GREY.npy: each catalogue photo in grey
at 60x80 (bench dedup's grey_thumb), for the near-identical scoring.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import sys
import time
from pathlib import Path

import numpy as np

from samestyle import contract as C
from samestyle import dedup as D
from samestyle import photohash as PH
from samestyle.bench import dedup as B
from samestyle.model.preprocess import open_photo

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train as CD  # noqa: E402  (heldout, embed, load_weights: the network of this folder)

PHOTOS = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "myntra" / "images"
CONSTS = C.preprocess_constants()


def relist(catalogue: str, onnx_dir: str, seed: int, out: str, n: int = 1500) -> None:
    from samestyle.encoders.base import ProductInput
    from samestyle.encoders.onnx import OnnxEncoder

    d = pickle.load(open(catalogue, "rb"))
    nc = len(d["ids"]) - len(d.get("truth", []))
    ids = d["ids"][:nc]
    path = lambda pid: PHOTOS / f"{pid}.jpg"  # noqa: E731
    digest = {pid: hashlib.sha1(path(pid).read_bytes()).hexdigest() for pid in ids}
    counts: dict[str, int] = {}
    for h in digest.values():
        counts[h] = counts.get(h, 0) + 1
    pool = [pid for pid in ids if counts[digest[pid]] == 1 and CD.heldout(pid)]  # never trained on
    rng, pos = random.Random(seed), {pid: i for i, pid in enumerate(ids)}
    sources = [{C.PRIMARY_KEY: pid, "title": d["titles"][pos[pid]], C.CATEGORY_FIELD: d["groups"][pos[pid]]}
               for pid in rng.sample(pool, min(n, len(pool)))]
    rel = B.make_relists(sources, lambda s: path(s[C.PRIMARY_KEY]).read_bytes(), rng)
    enc = OnnxEncoder(Path(onnx_dir))
    try:
        got = enc.encode([ProductInput(r["id"], image=r["photo"], text=r["title"]) for r in rel])
    finally:
        enc.close()
    ok = [i for i, x in enumerate(got.errors) if x is None]
    view_of = {f: v for v, f in C.VECTOR_FIELDS.items()}
    pickle.dump(dict(
        ids=ids + [rel[i]["id"] for i in ok], nc=nc, pool=len(pool),
        vectors={f: np.concatenate([d["vectors"][f][:nc], got.view(view_of[f])[ok].astype(np.float32)])
                 for f in d["vectors"]},
        groups=d["groups"][:nc] + [rel[i]["category"] for i in ok],
        titles=d["titles"][:nc] + [rel[i]["title"] for i in ok],
        hashes=d["hashes"][:nc] + [PH.photo_hash(open_photo(rel[i]["photo"], CONSTS)) for i in ok],
        truth=[(pos[rel[i]["source"]], nc + k) for k, i in enumerate(ok)],
        kinds=[rel[i]["kind"] for i in ok], hows=[rel[i]["how"] for i in ok],
        same_photo=np.concatenate([d["same_photo"][:nc], -np.ones(len(ok), int)]),
        rel_photos=[rel[i]["photo"] for i in ok]), open(out, "wb"))


def _embed(datas: list[bytes], w) -> np.ndarray:
    return np.concatenate([CD.embed([open_photo(x, CONSTS) for x in datas[s:s + 256]], w)
                           for s in range(0, len(datas), 256)])


def photo_scores(image, hashes, copies, i, j, floor) -> np.ndarray:
    """dedup.photo_scores (shipped: cosine and signature) with the copy embeddings beside the
    signature: the larger of the two similarities. `copies` None: as shipped."""
    photo = D._dot_pairs(np.asarray(image, np.float32), i, j)
    h, has = PH.parse(hashes)
    same = np.zeros(len(i), np.float32)
    have = has[i] & has[j]
    same[have] = PH.similarity(h, i[have], j[have], C.DEDUP_HASH_FLOOR)
    if copies is not None:
        e, groups = copies
        c = np.einsum("ij,ij->i", e[i], e[j])
        if floor == "K3":  # each row's cosine to its 3rd nearest neighbour of its category
            nn = D.nearest(e, groups, 3)
            bg = np.where(nn[:, 2] >= 0, np.einsum("ij,ij->i", e, e[np.maximum(nn[:, 2], 0)]), 0)
            f = np.minimum(np.maximum(bg[i], bg[j]), 0.999)
        else:
            f = float(floor)
        same = np.maximum(same, np.clip((c - f) / (1 - f), 0, 1))
        have[:] = True
    photo[have] = (1 - C.DEDUP_HASH_WEIGHT) * photo[have] + C.DEDUP_HASH_WEIGHT * same[have]
    return photo


def score(sample: str, weights: str, grey_path: str, floors: list[str]) -> dict:
    d = pickle.load(open(sample, "rb"))
    nc, n, truth, kinds, hows = d["nc"], len(d["ids"]), d["truth"], d["kinds"], d["hows"]
    w = CD.load_weights(weights)
    cache = Path(weights).with_suffix(".cat.npy")  # the catalogue's embeddings, once per weights
    if not cache.exists():
        np.save(cache, _embed([(PHOTOS / f"{pid}.jpg").read_bytes() for pid in d["ids"][:nc]], w))
    stored = [PH.to_hex(v) for v in np.concatenate([np.load(cache), _embed(d["rel_photos"], w)])]  # int8, as stored
    copies = (PH.parse(stored, CD.DIM)[0], d["groups"])
    grey = np.load(grey_path)
    img, txt, titles, groups = d["vectors"][C.IMAGE_VEC], d["vectors"][C.TEXT_VEC], d["titles"], d["groups"]
    ci, cj = D.candidate_pairs(n, D.nearest(img, groups), D.nearest(txt, groups))
    overlap = D.title_overlap(titles, ci, cj)
    ok = ~(D.numbers_differ(titles, ci, cj) | D.colours_differ(titles, ci, cj))
    report = {"sample": sample, "weights": weights, "relists": len(truth), "runs": {}}
    for floor in [None, *floors]:
        photo = photo_scores(img, d["hashes"], None if floor is None else copies, ci, cj, floor)
        s = D.IMAGE_WEIGHT * photo + (1 - D.IMAGE_WEIGHT) * overlap
        i, j, s = ci[ok], cj[ok], s[ok]
        keep = D.mutual_best(n, i, j, s)
        pairs = D.Pairs(i[keep], j[keep], s[keep].astype(np.float32))
        sweep = []
        for th in (float(t) for t in B.THRESHOLDS.split(",")):
            p = pairs.above(th)
            cids = D.cluster_ids(n, p)
            near = B.near_identical_linked(cids, nc, d["same_photo"], lambda r: grey[r])
            row = B.score(cids, truth, d["same_photo"], th, len(p), near)
            row["recall_by_kind"] = B.by_kind(cids, truth, kinds)
            row["recall_by_photo_edit"] = B.by_photo_edit(cids, truth, kinds, hows)
            sweep.append(row)
        report["runs"][str(floor)] = sweep
        at = next(r for r in sweep if r["threshold"] == C.DEDUP_THRESHOLD)
        print(f"copy floor {floor}: at {C.DEDUP_THRESHOLD} P {at['precision']} R {at['recall']} F1 {at['f1']} "
              f"crop recall {at['recall_by_photo_edit']['crop']}", file=sys.stderr, flush=True)
    return report


if __name__ == "__main__":
    t0 = time.time()
    if sys.argv[1] == "relist":
        relist(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        print(json.dumps(score(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]), indent=1))
    print(f"{time.time() - t0:.0f} s", file=sys.stderr)

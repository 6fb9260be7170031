"""Dump `bench dedup`'s mixed catalogue (re-listings in), its truth and every row's grey photo
for the offline copy-test experiments of this folder (issue 15). Usage: dump_dedup.py SEED OUT_STEM
(SAMESTYLE_DATA_DIR pointing at the ingested 42k collection; writes OUT_STEM.pkl and OUT_STEM-greys.npy)."""
import pickle, sys
import numpy as np
import samestyle.bench.dedup as B
from samestyle.dedup import Pairs

seed = int(sys.argv[1]); out = sys.argv[2]
box = {}

def fake_timed(cat, method, th, greys=None):
    box["cat"] = cat
    box["greys"] = greys(np.arange(len(cat.ids)))
    e = np.zeros(0, np.int64)
    return 0.0, Pairs(e, e, np.zeros(0, np.float32)), np.arange(len(cat.ids))

def fake_near(truth, kinds, edits, grey_of):
    box.update(truth=truth, kinds=kinds, edits=edits)
    return {"min_ncc": 0.999}

def fake_kinds(*a, **k):
    return {"copies": 0, "same_listing_text": 0}

def fake_score(cids, truth, same_photo, *a, **k):
    box["same_photo"] = same_photo
    c = box["cat"]
    pickle.dump({"ids": c.ids, "vectors": c.vectors, "groups": c.groups, "extra": c.extra,
                 "truth": box["truth"], "kinds": box["kinds"], "edits": box["edits"], "same_photo": same_photo},
                open(out + ".pkl", "wb"))
    np.save(out + "-greys.npy", box["greys"])
    raise SystemExit(0)

B.timed_dedup = fake_timed; B.near_limit = fake_near; B.catalogue_link_kinds = fake_kinds; B.score = fake_score
from samestyle.cli.main import cli as main
main.main(["bench", "dedup", "--relists", "1500", "--seed", str(seed), "--encoder", "onnx", "--synthetic-sizes", "",
                "--photo-dir", "../shared/datasets/myntra"], standalone_mode=False)

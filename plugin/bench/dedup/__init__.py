"""`samestyle bench dedup`: duplicate detection scored against real duplicates, and its
cost as the catalogue grows.

- Re-listings: a sample of the collection's products is listed again the way sellers
  do it: the photo re-cropped, resized, re-compressed or watermarked; the title
  reordered, abbreviated or typo'd; or both. The re-listings are encoded by the same
  encoder as the collection (Triton, or in-process ONNX with --encoder onnx), mixed in
  with every stored product, and `samestyle dedup`'s clustering (samestyle.dedup: the
  same code) is scored as pairs against that truth: precision, recall and F1 per
  threshold. The re-listed products are drawn among those with a photo no other
  product shares. Recall is also given by kind (photo, title, both changed) and, for
  the photo-changed ones, by photo edit (crop, resize, jpeg, watermark); and the pairs
  of other colourways (two products of one Myntra `style_group`, which are not
  duplicates) that the clustering merges are counted as a false-merge rate. At the
  recommended threshold each missed re-listing is put under one reason (`misses`: a
  rule, a score under the threshold with its parts, or outmatched; misses.py). Each
  re-listing's photo signature (samestyle.photohash) is computed as ingest computes it
  (loaders.transform.inspect_photo); a stored product without one (a collection
  ingested before it) gets it here from its photo file, the same way, and the report
  says how many did.
- Myntra ships about 1,400 products whose photo is byte-identical to another's. They
  are reported on their own (how many of their pairs the clustering links) and their
  pairs count neither for nor against the re-listing score.
- Near-identical photos: a linked pair of two catalogue products (neither a re-listing)
  whose grey 60x80 photos, smoothed, correlate at least as closely as this run's own
  re-compressed copies do with their sources (`copy_score`, the zero-offset NCC; the
  limit is the NEAR_QUANTILE of the JPEG-only re-listings' scores, NEAR_NCC when there are
  fewer than NEAR_MIN_SAMPLES of them) is one photo saved twice: the catalogue's own
  unlabelled copy. Each threshold is scored twice: as above (unchanged), and with those
  pairs also counted neither way (`near_identical_apart`, with how many were linked). The
  limit and where it came from are in the report (`near_identical`). The linked catalogue
  pairs are also told apart by the catalogue's own facts (`catalogue_links`: copies, the
  same title and colour, another colour, the rest; colour from the stored C.DEDUP_COLOUR_FIELD),
  with an upper bound on precision that sets the same-title-and-colour pairs apart too
  (`listing_text_apart`: some are one product listed twice, some two products under a
  generic title; targets are judged on the first two scorings). (A mean grey
  difference, the test before, is no copy test at 60x80: small products on white differ
  by a few grey levels on average whatever they are; docs/benchmarks/catalogue_copies_audit.py.)
- Time: the clustering (pairs + union-find) over the collection and, on synthetic unit
  vectors with planted near-copies, at --synthetic-sizes (e.g. 42k and 1M), with the
  growth exponent between sizes (1 = linear, 2 = quadratic) and the planted copies'
  recall.
Figures are printed, never asserted; `--quick` is the smoke run the tests use.

The stages live in this package, each name re-exported here (`bench.dedup.X` as before
the split): relist.py (the re-listings), scoring.py (the pair scoring), copies.py (the
catalogue's own copies), misses.py (why the missed re-listings were missed), timing.py
(the synthetic timing), plotting.py (--plot); the command is in this file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import time
from pathlib import Path

import click
import numpy as np

from ... import contract as C
from ... import dedup as D
from ... import photoreg as PR
from .. import collection_option, photo_base, photo_dir_option, run_options, save_report
from ...encoders.base import ProductInput
from ...encoders.onnx import OnnxEncoder
from ...loaders.transform import inspect_photo
from ...model.preprocess import PreprocessError
from ...output import emit
from ...config import ROOT
from ... import serve
from ...store import Store, search as store_reads
from .copies import (NEAR_MIN_SAMPLES, NEAR_NCC, NEAR_QUANTILE, NEAR_SIZE, NEAR_SMOOTH, _listing_text,
                     _scored_catalogue_pairs, catalogue_link_kinds, copy_score, false_links_sheet, grey_difference,
                     grey_thumb, linked_catalogue_pairs, near_identical_linked, near_limit)
from .misses import REASONS, why_missed
from .plotting import plot
from .relist import KINDS, PHOTO_EDITS, make_relists, relist_photo, relist_title
from .scoring import _apart, _pairs_within, _prf, _r, by_kind, by_photo_edit, score, style_false_merges
from .timing import (N_SYN_CATEGORIES, _say, parse_sizes, synthetic, synthetic_catalogue, synthetic_timing,
                     timed_dedup)

__all__ = [  # the stages' names, re-exported: `bench.dedup.X` as before the split (see each module)
    "KINDS", "PHOTO_EDITS", "make_relists", "relist_photo", "relist_title",
    "_apart", "_pairs_within", "_prf", "_r", "by_kind", "by_photo_edit", "score", "style_false_merges",
    "NEAR_MIN_SAMPLES", "NEAR_NCC", "NEAR_QUANTILE", "NEAR_SIZE", "NEAR_SMOOTH", "_listing_text",
    "_scored_catalogue_pairs", "catalogue_link_kinds", "copy_score", "false_links_sheet", "grey_difference",
    "grey_thumb", "linked_catalogue_pairs", "near_identical_linked", "near_limit",
    "N_SYN_CATEGORIES", "_say", "parse_sizes", "synthetic", "synthetic_catalogue", "synthetic_timing", "timed_dedup",
    "plot", "REASONS", "why_missed",
    "DEFAULT_PLOT", "THRESHOLDS", "STYLE_LABEL", "ROOT", "command", "_human",
]

DEFAULT_PLOT = ROOT / "docs" / "benchmarks" / "dedup.png"
THRESHOLDS = "0.85,0.88,0.9,0.91,0.92,0.93,0.94,0.95,0.96,0.97,0.98"
STYLE_LABEL = "style_group"  # Myntra's "same style, other colourway": must not merge


@click.command("dedup")
@click.option("--relists", type=click.IntRange(0, 100_000), default=2000, show_default=True,
              help="Products listed again (a third photo changes, a third title changes, a third both); "
                   "0: only the synthetic timing (no collection needed).")
@click.option("--thresholds", default=THRESHOLDS, show_default=True, help="Thresholds to score.")
@click.option("--field", "vector_field", type=click.Choice(list(C.DEDUP_METHODS)), default=C.DEDUP_PHOTO_TITLE,
              show_default=True, help="dedup's method: photo+title, or one vector field (as `dedup --field`).")
@click.option("--synthetic-sizes", default="42k,1M", show_default=True,
              help="Synthetic catalogue sizes to time dedup at ('' to skip).")
@click.option("--encoder", "encoder_kind", type=click.Choice(["triton", "onnx"]), default="triton", show_default=True)
@click.option("--registration/--no-registration", default=True, show_default=True,
              help="Give photo+title the photos for its crop registration, as `dedup` does with ingest's "
                   "thumbnails (--no-registration: the stored signature alone, as for a collection without them).")
@photo_dir_option
@collection_option
@run_options("Smoke run (30 re-listings, synthetic 2k and 20k); figures meaningless.", DEFAULT_PLOT)
def command(settings, relists, thresholds, vector_field, synthetic_sizes, encoder_kind, registration, photo_dir,
            collection, seed, quick, do_plot, plot_file, out_path, as_json):
    """Pair precision / recall / F1 of `samestyle dedup` against re-listed products,
    byte-identical photos apart, and its run time as the catalogue grows."""
    consts = C.preprocess_constants()
    if quick:
        relists, synthetic_sizes = min(relists, 30), "2k,20k"
    ts = sorted({float(t) for t in thresholds.split(",") if t.strip()} | {D.DEFAULT_THRESHOLD})
    if relists == 0:
        report = {"benchmark": "dedup", "quick": quick, "threshold": D.DEFAULT_THRESHOLD, "exact_max": D.EXACT_MAX,
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version()},
                  "field": vector_field,
                  "synthetic": synthetic_timing(parse_sizes(synthetic_sizes), 256, D.DEFAULT_THRESHOLD, seed,
                                                vector_field)}
        save_report(report, out_path)
        emit(report, as_json, lambda r: [click.echo(json.dumps(s)) for s in r["synthetic"]])
        return
    name = collection or settings.collection
    base_dir = photo_base(photo_dir)
    rng = random.Random(seed)
    _say(f"bench dedup: reading {name}...")
    with Store.open(settings) as store:
        described = store.describe(name)
        style_stored = described.get("enable_dynamic_field", True) or any(
            f.get("name") == STYLE_LABEL for f in described.get("fields", []))
        cat = D.load(store, name, method=vector_field, label_field=STYLE_LABEL if style_stored else None)
        model = store_reads.model_version(described)
        meta = store.fetch(name, cat.ids, ["title", "image_uri"])
    if not cat.ids:
        raise click.ClickException(f"collection [{name}] is empty")

    def path_of(pid: str) -> Path | None:
        uri = meta.get(pid, {}).get("image_uri") or ""
        if not uri or ":" in uri.split("/")[0]:
            return None
        p = Path(uri) if Path(uri).is_absolute() else base_dir / uri
        return p if p.is_file() else None

    _say("  photo hashes (byte-identical groups)...")
    digest = {}
    stored_hash = cat.extra.get(C.PHOTO_HASH)
    computed = 0
    for n, pid in enumerate(cat.ids):
        p = path_of(pid)
        if p is not None:
            data = p.read_bytes()
            digest[pid] = hashlib.sha1(data).hexdigest()
            if stored_hash is not None and not stored_hash[n]:
                stored_hash[n] = inspect_photo(data, consts)[1] or None
                computed += 1
    counts: dict[str, int] = {}
    for h in digest.values():
        counts[h] = counts.get(h, 0) + 1
    shared = {h: g for g, h in enumerate(h for h, c in counts.items() if c > 1)}
    unique = [pid for pid in cat.ids if pid in digest and counts[digest[pid]] == 1]
    pos = {pid: i for i, pid in enumerate(cat.ids)}
    style, cat.labels = cat.labels or [None] * len(cat.ids), None
    sources = [{**meta[pid], C.PRIMARY_KEY: pid, C.CATEGORY_FIELD: cat.groups[pos[pid]]}
               for pid in rng.sample(unique, min(relists, len(unique)))]
    _say(f"  re-listing {len(sources)} products...")
    rel = make_relists(sources, lambda s: path_of(s[C.PRIMARY_KEY]).read_bytes(), rng)
    if encoder_kind == "onnx":
        from ...export import ensure_onnx

        encoder = OnnxEncoder(ensure_onnx(settings.model_dir))
    else:
        encoder = serve.encoder_for(settings)
    try:
        if encoder.model_version != model:
            raise click.ClickException(f"collection [{name}] holds model [{model}], the encoder serves "
                                       f"[{encoder.model_version}]")
        t = time.perf_counter()
        enc = encoder.encode([ProductInput(r["id"], image=r["photo"], text=r["title"]) for r in rel])
        encode_s = time.perf_counter() - t
    finally:
        encoder.close()
    ok = [i for i, e in enumerate(enc.errors) if e is None]
    view_of = {f: v for v, f in C.VECTOR_FIELDS.items()}
    mixed = D.Catalogue(cat.ids + [rel[i]["id"] for i in ok],
                        {f: np.concatenate([x, enc.view(view_of[f])[ok]]).astype(np.float32)
                         for f, x in cat.vectors.items()},
                        list(cat.groups) + [rel[i]["category"] for i in ok], None,
                        {f: v + ([rel[i]["title"] for i in ok] if f == "title" else
                                 [inspect_photo(rel[i]["photo"], consts)[1] or None for i in ok]
                                 if f == C.PHOTO_HASH else
                                 [v[pos[rel[i]["source"]]] for i in ok]  # the seller fills in the same colour
                                 if f == C.DEDUP_COLOUR_FIELD else [None] * len(ok))
                         for f, v in cat.extra.items()})
    truth = [(pos[rel[i]["source"]], len(cat.ids) + n) for n, i in enumerate(ok)]
    kinds = [rel[i]["kind"] for i in ok]
    same_photo = np.array([shared.get(digest.get(pid, ""), -1) for pid in cat.ids] + [-1] * len(ok))
    greys: dict[int, np.ndarray | None] = {}

    def grey_of(row: int) -> np.ndarray | None:  # catalogue rows from their files, re-listings from their bytes
        if row not in greys:
            if row < len(cat.ids):
                p = path_of(cat.ids[row])
                data = None if p is None else p.read_bytes()
            else:
                data = rel[ok[row - len(cat.ids)]]["photo"]
            try:
                greys[row] = None if data is None else grey_thumb(data, consts)
            except PreprocessError:
                greys[row] = None
        return greys[row]

    def photos(rows: np.ndarray) -> np.ndarray:  # dedup's registration input, from the photo files
        out = np.zeros((len(rows), NEAR_SIZE[1], NEAR_SIZE[0]), np.uint8)
        for n, r in enumerate(rows.tolist()):
            g = grey_of(r)
            if g is not None:
                out[n] = g
        return out

    _say(f"  dedup over {len(mixed.ids):,} rows...")
    sec, pairs, _ = timed_dedup(mixed, vector_field, ts[0], greys=photos if registration else None)
    sweep, kind_recall, edit_recall, style_merges = [], {}, {}, {}
    edits = [rel[i]["how"] for i in ok]
    near_at = near_limit(truth, kinds, edits, grey_of)
    titles = [meta.get(pid, {}).get("title") for pid in cat.ids]
    colours = mixed.extra.get(C.DEDUP_COLOUR_FIELD) or [None] * len(mixed.ids)

    for th in ts:
        p = pairs.above(th)
        cids = D.cluster_ids(len(mixed.ids), p)
        link_kinds = catalogue_link_kinds(cids, len(cat.ids), same_photo, grey_of, near_at["min_ncc"],
                                          titles, colours)
        sweep.append({**score(cids, truth, same_photo, th, len(p), link_kinds["copies"],
                              link_kinds["same_listing_text"]), "catalogue_links": link_kinds})
        kind_recall[th] = by_kind(cids, truth, kinds)
        edit_recall[th] = by_photo_edit(cids, truth, kinds, edits)
        style_merges[th] = style_false_merges(cids, style + [None] * len(ok), same_photo)
    best = max(sweep, key=lambda s: s["f1"] or 0)
    at_default = next(s for s in sweep if s["threshold"] == D.DEFAULT_THRESHOLD)
    _say("  why the misses at the recommended threshold...")
    misses = why_missed(mixed, truth, D.cluster_ids(len(mixed.ids), pairs.above(D.DEFAULT_THRESHOLD)),
                        D.DEFAULT_THRESHOLD, kinds, greys=photos if registration else None)
    report = {"benchmark": "dedup", "collection": name, "model_version": model, "field": vector_field,
              "products": len(cat.ids), "quick": quick, "encoder": encoder_kind,
              "registration": {"on": registration, "min_title_overlap": C.DEDUP_REG_MIN_TITLE,
                               "min_cosine": C.DEDUP_REG_MIN_COSINE, "bands": [list(b) for b in PR.BANDS],
                               "floor": list(C.DEDUP_REG_FLOOR), "top": list(C.DEDUP_REG_TOP),
                               "iterations": PR.ITERATIONS},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "recommended_threshold": D.DEFAULT_THRESHOLD,
              "relisting": {"relists": len(ok), "encode_errors": len(rel) - len(ok),
                            "kinds": {k: kinds.count(k) for k in KINDS}, "encode_seconds": round(encode_s, 2),
                            "byte_identical_groups": len(shared),
                            "byte_identical_products": sum(c for c in counts.values() if c > 1),
                            "near_identical": near_at,
                            "photo_hashes": {"stored": None if stored_hash is None else
                                             sum(1 for h in stored_hash if h) - computed,
                                             "computed_from_photo_files": computed},
                            "recall_by_photo_edit": {str(k): v for k, v in edit_recall.items()},
                            "style_group_false_merges": {str(k): v for k, v in style_merges.items()},
                            "dedup_seconds": round(sec, 2), "sweep": sweep,
                            "recall_by_kind": {str(k): v for k, v in kind_recall.items()},
                            "at_recommended": at_default, "best": best, "misses": misses,
                            "examples": [{k: r[k] for k in ("source", "kind", "how", "title")} for r in rel[:6]]},
              "synthetic": synthetic_timing(parse_sizes(synthetic_sizes), next(iter(cat.vectors.values())).shape[1],
                                            D.DEFAULT_THRESHOLD, seed, vector_field) if synthetic_sizes.strip() else []}
    if do_plot:
        plot(report, plot_file)
        report["plot"] = str(plot_file)
        sheet = plot_file.with_name(plot_file.stem + "-false-links.png")
        at = pairs.above(D.DEFAULT_THRESHOLD)
        at_cids = D.cluster_ids(len(mixed.ids), at)
        drawn = false_links_sheet(at_cids, len(cat.ids), same_photo, grey_of, sheet, seed=seed,
                                  limit=near_at["min_ncc"])
        report["false_links_plot"] = {"file": str(sheet), "pairs": drawn, "threshold": D.DEFAULT_THRESHOLD}
        copies = plot_file.with_name(plot_file.stem + "-copies-apart.png")
        drawn = false_links_sheet(at_cids, len(cat.ids), same_photo, grey_of, copies, seed=seed,
                                  limit=near_at["min_ncc"], apart=True)
        report["copies_apart_plot"] = {"file": str(copies), "pairs": drawn, "threshold": D.DEFAULT_THRESHOLD}
    save_report(report, out_path)
    emit(report, as_json, _human)


def _human(r: dict) -> None:
    rel = r["relisting"]
    click.echo(f"{r['products']:,} products in {r['collection']} (model {r['model_version']}), {rel['relists']} "
               f"re-listings mixed in; dedup {rel['dedup_seconds']} s")
    click.echo(f"{'threshold':>9} {'pairs':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'byte-identical linked':>22}"
               f" | near-identical apart: {'linked':>6} {'precision':>9} {'F1':>6}"
               f" | same title+colour apart (bound): {'linked':>6} {'F1':>6}")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for s in rel["sweep"]:
        mark = " <- dedup default" if s["threshold"] == r["recommended_threshold"] else ""
        na, lb = s["near_identical_apart"], s.get("listing_text_apart", {})
        click.echo(f"{s['threshold']:>9} {s['predicted_pairs']:>9} {fmt(s['precision']):>9} {fmt(s['recall']):>7} "
                   f"{fmt(s['f1']):>6} {s['byte_identical_linked']:>10}/{s['byte_identical_pairs']:<11}"
                   f" | {'':>21} {na['near_identical_linked']:>6} {fmt(na['precision']):>9} {fmt(na['f1']):>6}"
                   f" | {'':>32} {lb.get('same_listing_text_linked', '-'):>6} {fmt(lb.get('f1')):>6}{mark}")
    m = rel.get("misses")
    if m and m["missed"]:
        click.echo(f"missed at {m['threshold']}: {m['missed']} of {m['of']} re-listings: "
                   + ", ".join(f"{k} {m[k]}" for k in REASONS)
                   + (f" (below: {m['below_parts']['gated_out']} kept from registration by its gate, "
                      f"{m['below_parts'].get('over_without_gate', '-')} of them over without it)"
                      if "below_parts" in m else ""))
    for s in r["synthetic"]:
        click.echo(f"synthetic {s['rows']:>9,} rows: {s['seconds']} s, planted copies found {s['planted_recall']}"
                   + (f", growth exponent {s['growth_exponent']}" if "growth_exponent" in s else ""))

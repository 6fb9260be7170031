"""Positive pairs for training, mined from user click logs as in the paper: a query
product and a clicked product are a same-style pair when they share a leaf category
and the click passes relevance thresholds (click count, dwell time, and a floor on
the pretrained backbones' similarity). Labelled groups (e.g. Myntra's style_group)
give pairs too. Also: a generator of a noisy synthetic click log from labelled
groups, so the miner's rules can be tested against known truth.

Pure functions over plain data; reading files is in `read_click_log`. At the end, the
jobs behind `samestyle pairs` (`mine_catalogue`, `write_synthetic_log`), which read the
catalogue and write their files, for the CLI and any other caller.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from . import dataset
from .errors import InputError
from .model import features

CLICK_COLUMNS = ("query_id", "clicked_id", "clicks", "dwell")


@dataclass(frozen=True)
class MinerConfig:
    min_clicks: int = 2
    min_dwell: float = 5.0  # seconds; only applied when the log has dwell times
    sim_floor: float | None = 0.3  # backbone cosine; None disables the rule


@dataclass(frozen=True)
class Click:
    line: int
    query_id: str
    clicked_id: str
    clicks: int
    dwell: float | None


@dataclass
class MineReport:
    read: int = 0
    kept: int = 0
    removed: dict[str, int] = field(default_factory=lambda: {
        "unknown_id": 0, "self": 0, "duplicate": 0, "category": 0, "clicks": 0, "dwell": 0, "similarity": 0})

    def to_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "removed": dict(self.removed)}


def read_click_log(path: str | Path) -> Iterator[Click]:
    """CSV or JSONL with query_id, clicked_id, clicks and optional dwell (seconds)."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        def rows():
            with p.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield n, json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise InputError(f"click log line {n}: not JSON ({exc.msg})", record=str(n), field="line") from None
    else:
        def rows():
            with p.open(newline="", encoding="utf-8") as f:
                for n, r in enumerate(csv.DictReader(f), 2):
                    yield n, r
    for n, r in rows():
        try:
            q, c = str(r["query_id"]).strip(), str(r["clicked_id"]).strip()
            clicks = int(float(r.get("clicks") or 1))
            dwell_raw = r.get("dwell")
            dwell = None if dwell_raw in (None, "") else float(dwell_raw)
        except KeyError as exc:
            raise InputError(f"click log line {n}: missing column {exc}", record=str(n), field=str(exc),
                             fix=f"the log needs columns {CLICK_COLUMNS[:3]} (+ optional dwell)") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"click log line {n}: bad number ({exc})", record=str(n), field="clicks/dwell") from None
        yield Click(n, q, c, clicks, dwell)


def mine(clicks: Iterable[Click], category: dict[str, str], cfg: MinerConfig = MinerConfig(),
         similarity: Callable[[list[str], list[str]], list[float]] | None = None) -> tuple[list[tuple[str, str]], MineReport]:
    """Apply the rules in order; each pair is counted under the first rule that
    removes it. Repeated rows of one (unordered) pair are merged (clicks summed,
    dwell averaged weighted by clicks) and the repeats counted as `duplicate`."""
    rep = MineReport()
    merged: dict[tuple[str, str], list[float]] = {}
    has_dwell: dict[tuple[str, str], bool] = {}
    for c in clicks:
        rep.read += 1
        if c.query_id not in category or c.clicked_id not in category:
            rep.removed["unknown_id"] += 1
            continue
        if c.query_id == c.clicked_id:
            rep.removed["self"] += 1
            continue
        key = tuple(sorted((c.query_id, c.clicked_id)))
        if key in merged:
            rep.removed["duplicate"] += 1
            m = merged[key]
        else:
            m = merged[key] = [0, 0.0]
        m[0] += c.clicks
        if c.dwell is not None:
            m[1] += c.dwell * c.clicks
            has_dwell[key] = True
    survivors = []
    for key, (n, dwell_sum) in merged.items():
        a, b = key
        if category[a] != category[b]:
            rep.removed["category"] += 1
        elif n < cfg.min_clicks:
            rep.removed["clicks"] += 1
        elif has_dwell.get(key) and dwell_sum / max(n, 1) < cfg.min_dwell:
            rep.removed["dwell"] += 1
        else:
            survivors.append(key)
    if cfg.sim_floor is not None and similarity is not None and survivors:
        sims = similarity([a for a, _ in survivors], [b for _, b in survivors])
        kept = [k for k, s in zip(survivors, sims) if s >= cfg.sim_floor]
        rep.removed["similarity"] += len(survivors) - len(kept)
        survivors = kept
    rep.kept = len(survivors)
    return survivors, rep


def group_pairs(ids: list[str], labels: Iterable[int], max_per_group: int = 45) -> list[tuple[str, str]]:
    """Unordered pairs within each labelled group (label -1 = none)."""
    groups: dict[int, list[str]] = {}
    for i, g in zip(ids, labels):
        if int(g) >= 0:
            groups.setdefault(int(g), []).append(i)
    out = []
    for members in groups.values():
        out.extend(list(combinations(sorted(members), 2))[:max_per_group])
    return out


def synthetic_click_log(ids: list[str], labels: list[int], category: dict[str, str], seed: int = 0,
                        noise: float = 1.0) -> tuple[list[dict], set[tuple[str, str]]]:
    """A noisy click log from labelled groups: every true pair clicked often with long
    dwell, plus noise of each kind the miner must drop (cross-category clicks,
    one-off clicks, bounces with short dwell, self clicks, repeated rows, unknown
    ids). Returns (rows, true pairs)."""
    rng = random.Random(seed)
    truth = set(group_pairs(ids, labels))
    rows: list[dict] = []

    def row(q, c, clicks, dwell):
        rows.append({"query_id": q, "clicked_id": c, "clicks": clicks, "dwell": round(dwell, 1)})

    for a, b in sorted(truth):
        q, c = (a, b) if rng.random() < 0.5 else (b, a)
        row(q, c, rng.randint(3, 12), rng.uniform(15, 90))
        if rng.random() < 0.3:  # the same pair logged again (another day)
            row(c, q, rng.randint(1, 4), rng.uniform(15, 90))
    n_noise = int(len(truth) * noise)
    by_cat: dict[str, list[str]] = {}
    for i in ids:
        by_cat.setdefault(category[i], []).append(i)
    cats = [c for c in by_cat if len(by_cat[c]) > 1]
    for _ in range(n_noise):
        kind = rng.choice(("cross", "oneoff", "bounce", "self", "unknown"))
        a = rng.choice(ids)
        if kind == "cross":
            others = [i for i in rng.sample(ids, min(20, len(ids))) if category[i] != category[a]]
            if others:
                row(a, others[0], rng.randint(3, 12), rng.uniform(15, 90))
        elif kind in ("oneoff", "bounce") and cats:
            members = by_cat[rng.choice(cats)]
            x, y = rng.sample(members, 2)
            if tuple(sorted((x, y))) in truth:
                continue
            if kind == "oneoff":
                row(x, y, 1, rng.uniform(15, 90))
            else:
                row(x, y, rng.randint(2, 5), rng.uniform(0.5, 3))
        elif kind == "self":
            row(a, a, rng.randint(1, 9), rng.uniform(5, 60))
        else:
            row(a, f"missing-{rng.randint(0, 10**6)}", 5, 30.0)
    rng.shuffle(rows)
    return rows, truth


# --- jobs (what `samestyle pairs mine|synth` run; the CLI parses and prints) ----------------
def _read_catalogue(catalogue: Path, columns: Mapping[str, str], label_col: str | None):
    return dataset.read(catalogue, label_col=label_col, **columns)


def _backbone_similarity(data, cache_dir: Path, progress: bool) -> Callable:
    """Cosine of the pretrained backbones (photo + title, concatenated) between products."""
    feats = features.for_catalogue(data, cache_dir, progress=progress)
    base = features.backbone_vectors(feats)
    joint = np.concatenate([base["image"], base["text"]], axis=1)
    joint /= np.maximum(np.linalg.norm(joint, axis=1, keepdims=True), 1e-12)
    index = {pid: i for i, pid in enumerate(data.ids)}

    def similarity(a, b):
        ia = np.array([index[x] for x in a])
        ib = np.array([index[x] for x in b])
        return (joint[ia] * joint[ib]).sum(1).tolist()

    return similarity


def mine_catalogue(catalogue: Path, click_log: Path, out: Path, *, columns: Mapping[str, str] | None = None,
                   label_col: str | None = None, min_clicks: int = 2, min_dwell: float = 5.0,
                   sim_floor: float | None = 0.3, cache_dir: Path, progress: bool = False) -> dict:
    """Mine `click_log` against `catalogue` (same leaf category, relevance thresholds, a
    backbone-similarity floor unless `sim_floor` is None or negative), add the pairs of
    `label_col`'s groups, and write them to `out` as CSV rows (a, b, clicks|label).
    `columns` maps id_col/title_col/image_col/category_col to the catalogue's names.
    Returns the report (what each rule removed, pairs written)."""
    data = _read_catalogue(catalogue, columns or {}, label_col)
    category = dict(zip(data.ids, data.categories))
    floor = sim_floor if sim_floor is not None and sim_floor >= 0 else None
    similarity = _backbone_similarity(data, cache_dir, progress) if floor is not None else None
    cfg = MinerConfig(min_clicks=min_clicks, min_dwell=min_dwell, sim_floor=floor)
    pairs, report = mine(read_click_log(click_log), category, cfg, similarity)
    labelled = group_pairs(data.ids, data.labels) if label_col else []
    seen = set(pairs)
    extra = [p for p in labelled if p not in seen]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        for a, b in pairs:
            w.writerow([a, b, "clicks"])
        for a, b in extra:
            w.writerow([a, b, "label"])
    return {**report.to_dict(), "label_pairs": len(extra), "written": len(pairs) + len(extra), "out": str(out)}


def write_synthetic_log(catalogue: Path, out: Path, *, columns: Mapping[str, str] | None = None,
                        label_col: str = "style_group", noise: float = 1.0, seed: int = 0) -> dict:
    """A noisy synthetic click log from `catalogue`'s labelled groups, written to `out`
    (.jsonl, else CSV). Returns rows written and true pairs."""
    data = _read_catalogue(catalogue, columns or {}, label_col)
    rows, truth = synthetic_click_log(data.ids, data.labels.tolist(), dict(zip(data.ids, data.categories)), seed,
                                      noise)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".jsonl", ".ndjson"):
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["query_id", "clicked_id", "clicks", "dwell"])
            w.writeheader()
            w.writerows(rows)
    return {"rows": len(rows), "true_pairs": len(truth), "out": str(out)}

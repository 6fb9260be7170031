"""A labelled catalogue in memory, for training and evaluation (not ingestion,
which streams): ids, titles, photo paths, leaf category and a same-style label.

The deterministic group split keeps evaluation honest: every product of a held-out
style group is left out of training (its own photo-title pair too), and evaluation
queries come only from held-out groups.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from samestyle.loaders.sources import Source

NO_LABEL = {"", "-1", "none", "nan"}


@dataclass
class Labelled:
    path: Path
    ids: list[str]
    titles: list[str]
    photos: list[Path | None]
    categories: list[str]
    labels: np.ndarray  # int [N]; -1 = no group
    colours: list[str] | None = None  # the colour attribute (e.g. baseColour), for modifier queries

    def __len__(self) -> int:
        return len(self.ids)


def _rows(path: Path):
    """Parsed records of the catalogue, through the same reader as ingestion
    (samestyle.loaders.sources); records that cannot be parsed at all are skipped."""
    for rec in Source(path):
        if rec.fields is not None:
            yield rec.fields


def read(path: str | Path, *, id_col="id", title_col="title", image_col="image", category_col="articleType",
         label_col: str | None = None, colour_col: str | None = None, limit: int | None = None) -> Labelled:
    p = Path(path)
    if not p.exists():
        raise InputError(f"catalogue [{p}] does not exist", field="path")
    ids, titles, photos, cats, raw, colours = [], [], [], [], [], []
    for n, row in enumerate(_rows(p)):
        if limit is not None and n >= limit:
            break
        if id_col not in row:
            raise InputError(f"catalogue [{p}] has no column [{id_col}]", field=id_col,
                             fix=f"pass --id-col; columns are {sorted(row)}")
        if label_col and label_col not in row:
            raise InputError(f"catalogue [{p}] has no label column [{label_col}]", field=label_col,
                             fix=f"pass --label-col; columns are {sorted(row)}")
        ids.append(str(row[id_col]))
        titles.append(str(row.get(title_col) or ""))
        img = row.get(image_col)
        photos.append((p.parent / img) if img and not str(img).startswith(("http:", "https:", "data:")) else None)
        cats.append(str(row.get(category_col) or ""))
        raw.append(str(row.get(label_col, "")) if label_col else "")
        if colour_col:
            if colour_col not in row:
                raise InputError(f"catalogue [{p}] has no colour column [{colour_col}]", field=colour_col,
                                 fix=f"pass --colour-col; columns are {sorted(row)}")
            colours.append(" ".join(str(row.get(colour_col) or "").split()))
    codes: dict[str, int] = {}
    labels = np.array([-1 if r.strip().lower() in NO_LABEL else codes.setdefault(r, len(codes)) for r in raw], dtype=np.int64)
    return Labelled(p, ids, titles, photos, cats, labels, colours if colour_col else None)


def heldout_groups(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask [N]: products whose group is held out for evaluation, chosen by a
    hash of the group code so the split is the same on every machine."""
    def held(g: int) -> bool:
        h = hashlib.sha256(f"{seed}:{g}".encode()).digest()
        return int.from_bytes(h[:4], "big") / 2**32 < fraction

    groups = {int(g): held(int(g)) for g in np.unique(labels) if g >= 0}
    return np.array([g >= 0 and groups[int(g)] for g in labels], dtype=bool)


def parse_rules(texts, option: str = "exclude") -> list[tuple[str, str]]:
    """COL=VALUE option values -> [(col, value)], with an error naming the bad one."""
    rules = []
    for e in texts:
        col, sep, val = e.partition("=")
        if not sep or not col:
            raise InputError(f"--{option} [{e}] is not COL=VALUE", field=option,
                             fix=f"e.g. --{option} masterCategory=Footwear")
        rules.append((col, val))
    return rules


def matching(path: str | Path, rules: list[tuple[str, str]], n: int) -> np.ndarray:
    """Boolean mask [n]: catalogue rows (in file order, first n) whose column equals
    the value of any (column, value) rule."""
    p = Path(path)
    out = np.zeros(n, dtype=bool)
    for i, row in enumerate(_rows(p)):
        if i >= n:
            break
        for col, val in rules:
            if col not in row:
                raise InputError(f"catalogue [{p}] has no column [{col}]", field=col,
                                 fix=f"columns are {sorted(row)}")
            if str(row.get(col) or "") == val:
                out[i] = True
    return out

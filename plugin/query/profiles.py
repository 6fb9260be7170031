"""Per-category weight profiles for weighted hybrid searches, kept as data
(plugin/query/profiles.json by default; SAMESTYLE_SEARCH_PROFILES points elsewhere)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .. import contract as C
from ..errors import ConfigError

DEFAULT_PROFILES = Path(__file__).resolve().parent / "profiles.json"
_FIELDS = set(C.VECTOR_FIELDS.values())


def _check(name: str, weights, source: str) -> dict[str, float]:
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(f"{source}: profile [{name}] must map vector fields to weights",
                          fix='e.g. {"image_vec": 0.4, "text_vec": 0.2, "fused_vec": 0.4}')
    out = {}
    for k, v in weights.items():
        f = C.VECTOR_FIELDS.get(k, k)
        if f not in _FIELDS:
            raise ConfigError(f"{source}: profile [{name}] names unknown field [{k}]",
                              fix=f"use {', '.join(sorted(_FIELDS))}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{source}: profile [{name}] weight of [{k}] is [{v}], not a number >= 0")
        out[f] = float(v)
    return out


@dataclass(frozen=True)
class Profiles:
    default: dict[str, float] = field(default_factory=lambda: {f: 1.0 for f in C.VECTOR_FIELDS.values()})
    categories: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = "<built-in>"

    def for_category(self, category: str | None) -> tuple[str, dict[str, float]]:
        """(profile name, field -> weight): the category's own profile, else the default."""
        if category is not None and category in self.categories:
            return category, self.categories[category]
        return "default", self.default

    @staticmethod
    def from_dict(obj: Mapping, source: str = "<dict>") -> "Profiles":
        if not isinstance(obj, Mapping):
            raise ConfigError(f"{source}: expected a JSON object with `default` and `categories`")
        default = _check("default", obj.get("default", {f: 1.0 for f in _FIELDS}), source)
        cats = obj.get("categories", {})
        if not isinstance(cats, Mapping):
            raise ConfigError(f"{source}: `categories` must map category -> weights")
        return Profiles(default, {str(c): _check(str(c), w, source) for c, w in cats.items()}, source)

    @staticmethod
    def load(path: str | Path | None = None) -> "Profiles":
        p = Path(path) if path else DEFAULT_PROFILES
        try:
            obj = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"search profiles file [{p}] not found",
                              fix="set SAMESTYLE_SEARCH_PROFILES to an existing JSON file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"search profiles file [{p}] is not valid JSON ({exc})") from None
        return Profiles.from_dict(obj, str(p))

"""Typed scalar filters, rendered into Milvus boolean expressions by our own code.

Milvus Lite has no filter templating (`{x}` placeholders fail), so every user value
is escaped here: a value is always rendered as one string/number/bool literal, and
a quote, a backslash, the word `or` or any unicode inside it stays part of that
literal. Field names are never escaped; they are checked against the collection
schema instead, so a name cannot smuggle in an operator either.

Three ways in, one representation out (a list of `Filter`, ANDed together):
- `parse_cli(["brand=Puma", "price<=999"], schema)` for the CLI's `--filter k=v`;
- `from_json({"brand": ["Puma", "Nike"], "price": {"lte": 999}}, schema)` for HTTP;
- the dataclasses themselves, for Python callers.
`to_expr(filters, schema)` validates and renders. All of it is pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import InputError
from ..store.expr import ids_expr, quote  # re-exported: the literals live with the store

KINDS = ("str", "int", "float", "bool")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_MILVUS_TYPES = {
    "VARCHAR": "str", "STRING": "str",
    "INT8": "int", "INT16": "int", "INT32": "int", "INT64": "int",
    "FLOAT": "float", "DOUBLE": "float",
    "BOOL": "bool",
}
MAX_IN_VALUES = 1_000


@dataclass(frozen=True)
class FilterSchema:
    """Which scalar fields may be filtered on, and their kind (str/int/float/bool).
    With `dynamic`, names outside the schema are allowed too (they live in the
    collection's dynamic field) as long as they are plain identifiers; their kind is
    taken from the value."""

    fields: Mapping[str, str | None]  # None: any of str/int/float/bool, as given
    dynamic: bool = False

    def kind_of(self, name: str, record: str | None = None) -> str | None:
        if not isinstance(name, str) or not _IDENT.match(name):
            raise InputError(f"filter field [{name}] is not a valid field name", record=record, field=str(name),
                             fix="use letters, digits and _ only")
        if name in self.fields:
            return self.fields[name]
        if self.dynamic:
            return None
        raise InputError(f"unknown filter field [{name}]", record=record, field=name,
                         fix=f"filter on one of: {', '.join(sorted(self.fields))}")

    @staticmethod
    def from_description(desc: Mapping) -> "FilterSchema":
        """From `MilvusClient.describe_collection(...)`: every scalar field with a
        known type; vector and JSON fields are left out (they cannot be compared)."""
        fields: dict[str, str] = {}
        for f in desc.get("fields", []):
            t = f.get("type")
            tname = getattr(t, "name", str(t)).upper()
            if tname in _MILVUS_TYPES:
                fields[f["name"]] = _MILVUS_TYPES[tname]
        return FilterSchema(fields, dynamic=bool(desc.get("enable_dynamic_field")))


# --- the filters ---------------------------------------------------------------------
@dataclass(frozen=True)
class Eq:
    field: str
    value: Any


@dataclass(frozen=True)
class Ne:
    field: str
    value: Any


@dataclass(frozen=True)
class In:
    field: str
    values: tuple
    negate: bool = False


@dataclass(frozen=True)
class Range:
    field: str
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None


@dataclass(frozen=True)
class Prefix:
    """Strings starting with `prefix` (rendered as `like`, with % and _ escaped)."""

    field: str
    prefix: str


Filter = Eq | Ne | In | Range | Prefix


# --- literals ----------------------------------------------------------------------
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _coerce(value: Any, kind: str | None, field_name: str, record: str | None) -> Any:
    """A Python value of `kind`; strings from the CLI are parsed. Kind None (a dynamic
    field) keeps str/int/float/bool as given."""

    def bad(expected: str):
        return InputError(f"filter [{field_name}]: expected type [{expected}], got [{type(value).__name__}] {value!r}",
                          record=record, field=field_name)

    if kind is None:
        if isinstance(value, (str, bool, int, float)):
            kind = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else \
                "float" if isinstance(value, float) else "str"
        else:
            raise bad("str, int, float or bool")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise bad("str")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad("bool")
    if kind == "int":
        if isinstance(value, bool):
            raise bad("int")
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,19}", value.strip()):
            value = int(value)
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:  # Milvus would fail the whole call (a 502, not a 400)
                shown = str(value) if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit integer"
                raise InputError(f"filter [{field_name}]: {shown} is outside the 64-bit integer range",
                                 record=record, field=field_name)
            return value
        raise bad("int")
    if kind == "float":
        if isinstance(value, bool):
            raise bad("float")
        if isinstance(value, (int, float)):
            try:
                v = float(value)
            except OverflowError:
                raise bad("finite float") from None
        elif isinstance(value, str):
            try:
                v = float(value)
            except (ValueError, OverflowError):
                raise bad("float") from None
        else:
            raise bad("float")
        if not math.isfinite(v):
            raise bad("finite float")
        return v
    raise ValueError(f"unknown kind [{kind}]")


def literal(value: Any, field_name: str | None = None) -> str:
    """Render an already-typed value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return quote(value, field_name)


def _like_prefix(prefix: str) -> str:
    # `like` treats % and _ as wildcards; escape them (and the escape char) first,
    # then quote the result as an ordinary literal.
    esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return esc + "%"


# --- rendering -----------------------------------------------------------------------
def render(f: Filter, schema: FilterSchema, record: str | None = None) -> str:
    """One filter -> one parenthesised expression, after validating name and type."""
    name = f.field
    kind = schema.kind_of(name, record)
    if isinstance(f, (Eq, Ne)):
        op = "==" if isinstance(f, Eq) else "!="
        return f"({name} {op} {literal(_coerce(f.value, kind, name, record), name)})"
    if isinstance(f, In):
        values = list(f.values)
        if not values:
            raise InputError(f"filter [{name}]: empty list of values", record=record, field=name)
        if len(values) > MAX_IN_VALUES:
            raise InputError(f"filter [{name}]: {len(values)} values, over the limit of {MAX_IN_VALUES}",
                             record=record, field=name)
        items = ", ".join(literal(_coerce(v, kind, name, record), name) for v in values)
        return f"({name} {'not in' if f.negate else 'in'} [{items}])"
    if isinstance(f, Range):
        parts = []
        for op, v in ((">", f.gt), (">=", f.gte), ("<", f.lt), ("<=", f.lte)):
            if v is not None:
                if kind in ("str", "bool"):
                    raise InputError(f"filter [{name}]: range on a {kind} field", record=record, field=name,
                                     fix="use = or a list of values")
                parts.append(f"{name} {op} {literal(_coerce(v, kind or 'float', name, record), name)}")
        if not parts:
            raise InputError(f"filter [{name}]: range without bounds", record=record, field=name,
                             fix="give one of gt, gte, lt, lte")
        return "(" + " and ".join(parts) + ")"
    if isinstance(f, Prefix):
        if kind not in ("str", None):
            raise InputError(f"filter [{name}]: prefix on a {kind} field", record=record, field=name)
        return f"({name} like {quote(_like_prefix(_coerce(f.prefix, 'str', name, record)), name)})"
    raise TypeError(f"not a filter: {f!r}")


def to_expr(filters: Iterable[Filter], schema: FilterSchema, *, extra: Iterable[str] = (),
            record: str | None = None) -> str:
    """AND of all filters ('' when none). `extra` are expressions built by this module
    (e.g. `exclude_ids`), never user text."""
    parts = [render(f, schema, record) for f in filters]
    parts.extend(e for e in extra if e)
    return " and ".join(parts)


def exclude_ids(ids: Iterable[str], pk: str = "id") -> str:
    ids = list(ids)
    if not ids:
        return ""
    if len(ids) == 1:
        return f"({pk} != {quote(ids[0], pk)})"
    return f"({pk} not in [{', '.join(quote(i, pk) for i in ids)}])"


# --- parsing ------------------------------------------------------------------------
_CLI = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|>=|<=|=|>|<|\^=)(.*)$", re.S)
_RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def parse_cli(items: Iterable[str], schema: FilterSchema) -> list[Filter]:
    """`k=v` (repeat a key for any of several values), `k!=v`, `k>v`, `k>=v`, `k<v`,
    `k<=v`, `k^=prefix`. The value is everything after the operator, verbatim."""
    eq: dict[str, list] = {}
    ne: dict[str, list] = {}
    ranges: dict[str, dict] = {}
    out: list[Filter] = []
    for item in items:
        m = _CLI.match(item)
        if not m:
            raise InputError(f"filter {item!r} is not of the form KEY=VALUE", field="filter",
                             fix="e.g. --filter brand=Puma --filter price<=999")
        name, op, value = m.group(1), m.group(2), m.group(3)
        schema.kind_of(name, record=item)
        if op == "=":
            eq.setdefault(name, []).append(value)
        elif op == "!=":
            ne.setdefault(name, []).append(value)
        elif op == "^=":
            out.append(Prefix(name, value))
        else:
            ranges.setdefault(name, {})[_RANGE_OPS[op]] = value
    for name, vals in eq.items():
        out.append(Eq(name, vals[0]) if len(vals) == 1 else In(name, tuple(vals)))
    for name, vals in ne.items():
        out.append(Ne(name, vals[0]) if len(vals) == 1 else In(name, tuple(vals), negate=True))
    for name, bounds in ranges.items():
        out.append(Range(name, **bounds))
    # Render once now so a bad value is reported at parse time, naming the item.
    for f in out:
        render(f, schema)
    return out


_JSON_OPS = {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "prefix"}


def from_json(obj: Mapping | None, schema: FilterSchema) -> list[Filter]:
    """{"field": value} (equality), {"field": [v1, v2]} (any of), or
    {"field": {"gte": 1, "lt": 5, "ne": x, "in": [...], "not_in": [...], "prefix": "ab"}}."""
    if obj is None:
        return []
    if not isinstance(obj, Mapping):
        raise InputError(f"filters must be an object of field -> value, got [{type(obj).__name__}]",
                         field="filters")
    out: list[Filter] = []
    for name, spec in obj.items():
        schema.kind_of(name)
        if isinstance(spec, Mapping):
            unknown = set(spec) - _JSON_OPS
            if unknown:
                raise InputError(f"filter [{name}]: unknown operator(s) {sorted(unknown)}", field=name,
                                 fix=f"use {', '.join(sorted(_JSON_OPS))}")
            if "eq" in spec:
                out.append(Eq(name, spec["eq"]))
            if "ne" in spec:
                out.append(Ne(name, spec["ne"]))
            for key, neg in (("in", False), ("not_in", True)):
                if key in spec:
                    if not isinstance(spec[key], list):
                        raise InputError(f"filter [{name}]: [{key}] needs a list", field=name)
                    out.append(In(name, tuple(spec[key]), negate=neg))
            if "prefix" in spec:
                out.append(Prefix(name, spec["prefix"]))
            bounds = {k: spec[k] for k in ("gt", "gte", "lt", "lte") if k in spec}
            if bounds:
                out.append(Range(name, **bounds))
        elif isinstance(spec, list):
            out.append(In(name, tuple(spec)))
        else:
            out.append(Eq(name, spec))
    for f in out:
        render(f, schema)
    return out


def category_of(filters: Iterable[Filter], category_field: str = "category") -> str | None:
    """The single category a filter list pins down, if any (chooses a weight profile)."""
    for f in filters:
        if isinstance(f, Eq) and f.field == category_field and isinstance(f.value, str):
            return f.value
        if isinstance(f, In) and f.field == category_field and not f.negate and len(f.values) == 1:
            return str(f.values[0])
    return None

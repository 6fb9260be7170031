"""Catalogue record -> checked product (or a rejection naming field and reason) ->
Milvus row. Pure: photos are fetched by the caller (samestyle.loaders.photos) and handed in.

Rules, in the order they are checked:
- id: required; a string (JSON integers are accepted and written as text), no
  control characters, at most `id` max_length UTF-8 bytes;
- every text value must be valid UTF-8 and fit its field (bytes, milvus/collection.json);
- a product needs a photo or a title; a photo that is named must be readable, at most
  MAX_PHOTO_BYTES and MAX_PHOTO_PIXELS (a product is never silently loaded without it);
- attributes: columns named like a declared attribute field (brand, gender, colour, or
  an alias listed in collection.json) fill it; every other attribute column goes to the
  dynamic field under its own name (made a valid identifier). CSV values that look
  like numbers are stored as numbers, so `price < 1000` filters work.
The content hash covers title, photo bytes, image reference, category, attributes and
model version: equal hash = nothing to re-encode.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from samestyle import contract as C
from samestyle import photohash as PH
from samestyle.encoders.base import EncodedBatch, ProductInput
from samestyle.errors import ConfigError
from samestyle.model import preprocess as pp
from samestyle.store.spec import CollectionSpec

from .sources import RawRecord

HASH_VERSION = 1
DYNAMIC_MAX_BYTES = 16_384  # all dynamic attributes of one product, as JSON
_NUMBER = re.compile(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]+)?")
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class ColumnMap:
    """Which catalogue columns hold what. `attrs` None = every other column is an
    attribute; else (column, field) pairs (field None = automatic)."""

    id: str = "id"
    title: str = "title"
    image: str = "image"
    category: str = "articleType"
    attrs: tuple[tuple[str, str | None], ...] | None = None
    # Roles ("id", "title", "image", "category") whose column the user named: such a
    # column must exist. A default that is absent is allowed (and said), never guessed.
    explicit: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, id_col="id", title_col="title", image_col="image", category_col="articleType",
                     attr_cols: Sequence[str] = (), explicit: Sequence[str] = ()) -> "ColumnMap":
        attrs = None
        if attr_cols:
            pairs = []
            for item in attr_cols:
                col, sep, fld = item.partition("=")
                if not col.strip() or (sep and not fld.strip()):
                    raise ConfigError(f"--attr-col [{item}] is not COLUMN or COLUMN=FIELD",
                                      fix="e.g. --attr-col brand --attr-col 'Base Colour=colour'")
                pairs.append((col.strip(), fld.strip() or None))
            attrs = tuple(pairs)
        return cls(id_col, title_col, image_col, category_col, attrs, frozenset(explicit))

    def key(self) -> str:
        return json.dumps([self.id, self.title, self.image, self.category, self.attrs])


@dataclass
class Rejected:
    """A record that goes to the dead-letter file instead of Milvus."""

    line: int
    id: str | None
    field: str
    kind: str
    reason: str

    def to_dict(self) -> dict:
        return {"line": self.line, "id": self.id, "field": self.field, "kind": self.kind, "reason": self.reason}


@dataclass
class Parsed:
    line: int
    id: str
    title: str
    image_ref: str | bytes | None
    category: str
    declared: dict[str, Any]
    extra: dict[str, Any]


@dataclass
class Product:
    line: int
    id: str
    title: str
    image_uri: str
    photo: bytes | None
    category: str
    declared: dict[str, Any]
    extra: dict[str, Any]
    content_hash: str = ""
    photo_hash: str = ""  # samestyle.photohash signature of the decoded photo (hex); "" without a photo

    @property
    def input(self) -> ProductInput:
        return ProductInput(self.id, self.photo, self.title or None)


class _Bad(Exception):
    def __init__(self, field: str, kind: str, reason: str):
        super().__init__(reason)
        self.field, self.kind, self.reason = field, kind, reason


def _text(value: Any, field: str, max_bytes: int | None) -> str:
    """A clean str or _Bad: bytes must be UTF-8; surrogates left by the sources mark
    bytes that were not UTF-8 (or unpaired \\u escapes in JSON)."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Bad(field, "invalid_utf8", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Bad(field, "bad_type", f"expected text, got {type(value).__name__}")
    s = str(value)
    for i, ch in enumerate(s):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            what = f"byte 0x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else f"unpaired surrogate U+{ord(ch):04X}"
            raise _Bad(field, "invalid_utf8", f"not valid UTF-8 ({what} at character {i})")
    s = s.strip()
    if max_bytes is not None:
        n = len(s.encode("utf-8"))
        if n > max_bytes:
            raise _Bad(field, "oversize_field", f"{n} bytes, over the limit of {max_bytes}")
    return s


def _infer(value: str) -> Any:
    """CSV text -> int/float when it is plainly a number (no leading zeros, so codes
    like '007' stay text)."""
    m = _NUMBER.fullmatch(value)
    if not m:
        return value
    return float(value) if m.group(2) else int(value)


def attribute_name(column: str, reserved: set[str]) -> str:
    """A dynamic-field key for a column: letters, digits and _ only, not starting with
    a digit, never one of the schema's own fields."""
    name = _NOT_IDENT.sub("_", column.strip()) or "attr"
    if name[0].isdigit():
        name = "_" + name
    if name in reserved or name == "$meta":
        name = "attr_" + name
    return name


def declared_columns(spec: CollectionSpec) -> dict[str, str]:
    """Lower-cased catalogue column -> the declared attribute field it fills: each
    field's own name and its `columns` in milvus/collection.json (baseColour -> colour)."""
    out: dict[str, str] = {}
    for f in spec.attribute_fields:
        for name in (f.name, *f.columns):
            out.setdefault(name.lower(), f.name)
    return out


def stored_name(column: str, spec: CollectionSpec, columns: ColumnMap | None = None) -> str:
    """The name an ingest with the automatic mapping (no --attr-col) stores a catalogue
    column under: the id, title, photo and category columns of `columns` (defaults:
    ColumnMap()) their fields, an attribute column the declared field it names, any
    other its dynamic-field key. The one naming source for readers of stored rows."""
    cols = columns or ColumnMap()
    for role, col in (("id", cols.id), ("title", cols.title), ("image", cols.image), ("category", cols.category)):
        if column == col:
            return spec.by_role(role).name
    return declared_columns(spec).get(column.lower()) or attribute_name(column, set(spec.names))


class Transformer:
    """Checks records against the collection definition for one model version."""

    def __init__(self, spec: CollectionSpec, columns: ColumnMap, model_version: str,
                 consts: Mapping | None = None, source_columns: Sequence[str] | None = None):
        self.spec = spec
        self.cols = columns
        self.model_version = model_version
        self.consts = dict(consts or C.preprocess_constants())
        self.f_id = spec.by_role("id")
        self.f_title = spec.by_role("title")
        self.f_image = spec.by_role("image")
        self.f_category = spec.by_role("category")
        self.reserved = set(spec.names)
        self._alias = declared_columns(spec)
        self.notes: list[str] = []  # what the column check found worth saying (not errors)
        self._plan: dict[str, tuple[str, bool]] = {}  # column -> (target, declared?)
        self._taken: set[str] = set()
        if columns.attrs is not None:
            for col, target in columns.attrs:
                self._plan[col] = self._target(col, target)
        if source_columns is not None:
            self.check_columns(source_columns)

    # -- column plan --------------------------------------------------------------------
    def _target(self, column: str, wanted: str | None) -> tuple[str, bool]:
        if wanted:
            if wanted in (f.name for f in self.spec.attribute_fields):
                if wanted in self._taken:
                    raise ConfigError(f"two attribute columns map to the field [{wanted}]",
                                      fix="map each declared attribute field from one column")
                self._taken.add(wanted)
                return wanted, True
            if wanted in self.reserved or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", wanted):
                raise ConfigError(f"--attr-col {column}={wanted}: [{wanted}] is not a usable attribute name",
                                  fix="use letters, digits and _, and not a built-in field name "
                                      f"({', '.join(sorted(self.reserved))})")
            return wanted, False
        declared = self._alias.get(column.lower())
        if declared and declared not in self._taken:
            self._taken.add(declared)
            return declared, True
        return attribute_name(column, self.reserved), False

    def check_columns(self, available: Sequence[str], sampled: int | None = None) -> None:
        """Fail fast, before reading a record, when the mapping names columns the
        catalogue does not have (CSV header, Parquet schema; for JSONL the keys of the
        first `sampled` records). A column the user named must exist; of the defaults,
        the id must, and the title or the photo. What is left unmapped is said in
        `self.notes` (e.g. no category column: every category is empty)."""
        have = list(dict.fromkeys(available))
        where = (f"the keys of its first {sampled} records are {have}" if sampled is not None
                 else f"its columns are {have}")
        c = self.cols
        options = {"id": ("--id-col", c.id), "title": ("--title-col", c.title), "image": ("--image-col", c.image),
                   "category": ("--category-col", c.category)}
        for role, (option, col) in options.items():
            if (role in c.explicit or role == "id") and col not in have:
                raise ConfigError(f"the catalogue has no {role} column [{col}] ({option}); {where}{_closest(col, have)}",
                                  fix=f"pass {option} with one of the catalogue's columns "
                                      "(column names are case-sensitive)")
        if c.title not in have and c.image not in have:
            raise ConfigError(f"the catalogue has neither the title column [{c.title}] nor the photo "
                              f"column [{c.image}]; {where}", fix="pass --title-col and/or --image-col")
        if c.attrs is not None:
            missing = [col for col, _ in c.attrs if col not in have]
            if missing:
                hints = "".join(_closest(m, have) for m in missing)
                raise ConfigError(f"--attr-col names columns the catalogue lacks: {missing}; {where}{hints}",
                                  fix="check the spelling (column names are case-sensitive)")
        for role, (option, col) in options.items():
            if col not in have:
                what = {"title": "products get no title (photo only)", "image": "products get no photo (title only)",
                        "category": "every product's category is empty"}[role]
                self.notes.append(f"no {role} column [{col}] in the catalogue: {what}; name it with {option}")

    def _attr_columns(self, record: Mapping[str, Any]) -> list[str]:
        if self.cols.attrs is not None:
            return [c for c, _ in self.cols.attrs]
        core = {self.cols.id, self.cols.title, self.cols.image, self.cols.category}
        return [c for c in record if c not in core]

    # -- steps --------------------------------------------------------------------------
    def parse(self, raw: RawRecord) -> Parsed | Rejected:
        """Everything that needs no photo: id, texts, attributes."""
        if raw.fields is None:
            fld, reason = raw.error or ("record", "unreadable record")
            return Rejected(raw.line, None, fld, "bad_record", reason)
        rec = raw.fields
        c = self.cols
        pid: str | None = None
        try:
            value = rec.get(c.id)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise _Bad(c.id, "missing_id", f"the id column [{c.id}] is empty")
            if isinstance(value, (float, bool)):
                raise _Bad(c.id, "bad_type", f"id must be text or an integer, got {value!r}")
            pid = _text(value, c.id, None)
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in pid):
                raise _Bad(c.id, "bad_id", "id contains control characters")
            n = len(pid.encode("utf-8"))
            if n > (self.f_id.max_length or C.MAX_ID_CHARS):
                raise _Bad(c.id, "oversize_field", f"id is {n} bytes, over the limit of {self.f_id.max_length}")
            title = ""
            title_raw = rec.get(c.title)
            if title_raw not in (None, "", b""):
                try:
                    title = pp.clean_title(_text(title_raw, c.title, None), self.consts)
                except pp.PreprocessError as exc:
                    raise _Bad(c.title, "oversize_field", exc.reason) from None
                title = _text(title, c.title, self.f_title.max_length)
            image = rec.get(c.image)
            if isinstance(image, str):
                image = _text(image, c.image, None) or None
            elif isinstance(image, (bytes, bytearray)):
                image = bytes(image) or None
            elif image is not None:
                raise _Bad(c.image, "bad_type", f"expected a path, URI or bytes, got {type(image).__name__}")
            if image is None and not title:
                raise _Bad(f"{c.title},{c.image}", "no_photo_no_title", "the product has neither a photo nor a title")
            if isinstance(image, str) and not image.lower().startswith("data:"):
                n = len(image.encode("utf-8"))
                if n > (self.f_image.max_length or 0):
                    raise _Bad(c.image, "oversize_field",
                               f"photo reference is {n} bytes, over the limit of {self.f_image.max_length}")
            cat = rec.get(c.category)
            category = "" if cat is None else _text(cat, c.category, self.f_category.max_length)
            declared, extra = self._attributes(rec)
        except _Bad as bad:
            return Rejected(raw.line, pid, bad.field, bad.kind, bad.reason)
        return Parsed(raw.line, pid, title, image, category, declared, extra)

    def _attributes(self, rec: Mapping[str, Any]) -> tuple[dict, dict]:
        declared: dict[str, Any] = {f.name: None for f in self.spec.attribute_fields}
        extra: dict[str, Any] = {}
        for col in self._attr_columns(rec):
            if col not in self._plan:
                self._plan[col] = self._target(col, None)
            target, is_declared = self._plan[col]
            value = rec.get(col)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if is_declared:
                declared[target] = _text(value, col, self.spec.field(target).max_length)
            elif isinstance(value, str):
                extra[target] = _infer(_text(value, col, None))
            elif isinstance(value, (bytes, bytearray)):
                extra[target] = _text(value, col, None)
            elif isinstance(value, float) and not np.isfinite(value):
                continue
            else:
                extra[target] = value
        if extra:
            try:
                n = len(json.dumps(extra, ensure_ascii=False, default=str).encode("utf-8"))
            except UnicodeEncodeError as exc:  # a lone surrogate deep inside a JSON value
                raise _Bad(",".join(self._attr_columns(rec)), "invalid_utf8",
                           f"an attribute value is not valid UTF-8 ({exc.reason})") from None
            if n > DYNAMIC_MAX_BYTES:
                raise _Bad(",".join(self._attr_columns(rec)), "oversize_field", f"extra attributes are {n} bytes as JSON, over the "
                                                           f"limit of {DYNAMIC_MAX_BYTES}")
        return declared, extra

    def finish(self, p: Parsed, photo: bytes | None, image_uri: str = "") -> Product | Rejected:
        """Attach the photo (already loaded; None when the product has none), check
        that it opens within the limits, and hash the product."""
        photo_hash = ""
        if photo is not None:
            bad, photo_hash = inspect_photo(photo, self.consts)
            if bad:
                return Rejected(p.line, p.id, self.cols.image, *bad)
        prod = Product(p.line, p.id, p.title, image_uri, photo, p.category, p.declared, p.extra, photo_hash=photo_hash)
        prod.content_hash = content_hash(prod, self.model_version)
        return prod

    def reject_photo(self, p: Parsed, kind: str, reason: str) -> Rejected:
        return Rejected(p.line, p.id, self.cols.image, kind, reason)

    def row(self, prod: Product, enc: EncodedBatch, i: int) -> dict:
        """The Milvus row of a product from row i of its encoded batch."""
        s = self.spec
        out: dict[str, Any] = dict(prod.extra)
        out.update({
            self.f_id.name: prod.id, self.f_title.name: prod.title, self.f_image.name: prod.image_uri,
            self.f_category.name: prod.category, s.by_role("content_hash").name: prod.content_hash,
            s.by_role("model_version").name: self.model_version,
            s.by_role("has_image").name: prod.photo is not None, s.by_role("has_text").name: bool(prod.title),
        })
        out.update(prod.declared)
        if prod.photo_hash and s.enable_dynamic_field:
            out[C.PHOTO_HASH] = prod.photo_hash  # for dedup; a catalogue column of that name loses to it
        for view, name in s.vector_fields.items():
            out[name] = np.ascontiguousarray(enc.view(view)[i], dtype=np.float32)
        return out


def _closest(name: str, have: Sequence[str]) -> str:
    """"; did you mean [x]?" for the nearest column name, or ""."""
    by_lower = {h.lower(): h for h in have}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean [{by_lower[match[0]]}]?" if match else ""


def check_photo(data: bytes, consts: Mapping) -> tuple[str, str] | None:
    """(kind, reason) when the photo is over the limits, does not decode in full, or
    its header claims more pixels than its bytes can hold (preprocess.open_photo: the
    same checks the encoder makes, so a bad photo is dead-lettered here, not stored)."""
    return inspect_photo(data, consts)[0]


def inspect_photo(data: bytes, consts: Mapping) -> tuple[tuple[str, str] | None, str]:
    """check_photo's verdict and, for a photo that decodes, its perceptual signature
    (samestyle.photohash.photo_hash, hex) from the same decode; "" when it is bad."""
    if len(data) > consts["max_photo_bytes"]:
        return ("oversize_photo", f"photo is {len(data)} bytes, over the limit of {consts['max_photo_bytes']}"), ""
    try:
        img = pp.open_photo(data, consts)
    except pp.PreprocessError as exc:
        kind = "oversize_photo" if "over the limit" in exc.reason else "unreadable_photo"
        return (kind, exc.reason), ""
    try:
        return None, PH.photo_hash(img)
    finally:
        img.close()


def content_hash(p: Product, model_version: str) -> str:
    doc = {
        "v": HASH_VERSION, "model": model_version, "title": p.title, "image_uri": p.image_uri,
        "photo": hashlib.sha256(p.photo).hexdigest() if p.photo is not None else None,
        "category": p.category, "declared": p.declared, "extra": p.extra,
    }
    blob = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()

"""Milvus expression literals: the escaping every user value goes through (pure).

Lives with the store because both the store (fetch by id, scans) and the query layer
(`samestyle.query.filters`, which re-exports these) render expressions; the store
must not import the query layer.

Milvus Lite has no filter templating (`{x}` placeholders fail), so a value is always
rendered as one string literal here: a quote, a backslash, the word `or` or any
unicode inside it stays part of that literal.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import InputError

# The Milvus expression grammar knows \n \r \t \\ \" but not \xNN for other control
# characters, so those cannot be represented faithfully and are refused.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str, field_name: str | None = None) -> str:
    """A Milvus string literal whose content is exactly `value`."""
    if not isinstance(value, str):
        raise InputError(f"expected type [str], got [{type(value).__name__}] {value!r}", field=field_name)
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InputError(f"filter value {value!r} contains the control character U+{ord(ch):04X}",
                             field=field_name, fix="remove control characters from filter values")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def ids_expr(ids: Iterable[str], pk: str = "id") -> str:
    """`(pk in ["a", "b"])` with every id escaped."""
    return f"({pk} in [{', '.join(quote(i, pk) for i in ids)}])"

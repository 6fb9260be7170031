"""The pymilvus calls of the query layer: search / hybrid_search, fetch by id, scan.

The only place `samestyle.query` talks to Milvus. Every call maps pymilvus errors onto
the project's exceptions, so the CLI and the HTTP API can report them in one line.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

from .. import contract as C
from ..errors import SamestyleError
from ..query.filters import ids_expr
from .collections import CollectionNotFound
from .collections import _wrap as _wrap_store

log = logging.getLogger(__name__)

PK = C.PRIMARY_KEY
VECTOR_FIELDS = tuple(C.VECTOR_FIELDS.values())


def _wrap(exc: Exception, what: str, collection: str) -> SamestyleError:
    # One mapping of pymilvus errors for the whole store.
    return _wrap_store(exc, what, collection)


def describe(client, collection: str) -> dict:
    try:
        return client.describe_collection(collection)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises several types
        raise _wrap(exc, "describe_collection", collection) from None


def model_version(desc: dict) -> str | None:
    """The model whose vectors fill the collection (a property set at creation)."""
    from .spec import PROP_MODEL_VERSION

    return (desc.get("properties") or {}).get(PROP_MODEL_VERSION)


def ensure_loaded(client, collection: str) -> None:
    """Reopened collections start released; search needs them loaded."""
    try:
        if not client.has_collection(collection):
            raise CollectionNotFound(f"collection [{collection}] does not exist", collection=collection,
                                     fix="ingest a catalogue first (`samestyle ingest`), or pass --collection")
        state = client.get_load_state(collection).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            log.info("loading collection %s", collection)
            client.load_collection(collection)
    except SamestyleError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _wrap(exc, "load", collection) from None


def composite_field(desc: dict) -> str | None:
    """The collection's composite field, None when it has none (spec.CompositeSpec)."""
    from .spec import composite_field as _composite

    return _composite(desc)


def scalar_fields(desc: dict) -> list[str]:
    """Scalar fields worth returning with a hit (everything but vectors)."""
    out = []
    for f in desc.get("fields", []):
        tname = getattr(f.get("type"), "name", str(f.get("type"))).upper()
        if "VECTOR" not in tname:
            out.append(f["name"])
    return out


def dynamic_keys(client, collection: str, known: Sequence[str], sample: int = 200) -> dict[str, str | None]:
    """Attribute names held in the dynamic field, from a sample of rows, with the kind
    of their values (str/int/float/bool; None when mixed). Lets filters on them be
    checked like schema fields instead of silently matching nothing."""
    try:
        rows = client.query(collection, filter="", output_fields=["*"], limit=sample)
    except Exception as exc:  # noqa: BLE001
        raise _wrap(exc, "query", collection) from None
    skip = set(known) | set(VECTOR_FIELDS)
    kinds: dict[str, set] = {}
    for r in rows:
        for k, v in r.items():
            if k in skip or v is None:
                continue
            kind = ("bool" if isinstance(v, bool) else "int" if isinstance(v, int) else
                    "float" if isinstance(v, float) else "str" if isinstance(v, str) else "other")
            kinds.setdefault(k, set()).add(kind)
    out: dict[str, str | None] = {}
    for k, ks in kinds.items():
        if ks == {"int", "float"}:
            ks = {"float"}
        out[k] = ks.pop() if len(ks) == 1 and "other" not in ks else None
    return out


def fetch(client, collection: str, ids: Sequence[str], output_fields: Sequence[str] | None = None,
          timeout: float | None = None) -> dict[str, dict]:
    """id -> row for the ids that exist."""
    if not ids:
        return {}
    try:
        rows = client.query(collection, filter=ids_expr(ids, PK), output_fields=list(output_fields or ["*"]),
                            timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        raise _wrap(exc, "query", collection) from None
    return {str(r[PK]): dict(r) for r in rows}


def _flatten(hit: dict) -> dict:
    entity = dict(hit.get("entity") or {})
    pk = hit.get("id", entity.get(PK))
    score = hit.get("distance", hit.get("score"))
    entity.pop(PK, None)
    return {"id": str(pk), "score": float(score), "entity": entity}


def run(client, collection: str, plan, *, offset: int = 0, group_by: str | None = None,
        output_fields: Sequence[str] | None = None, timeout: float | None = None,
        group_size: int | None = None) -> list[dict]:
    """Execute a `samestyle.query.requests.SearchPlan`: a plain search for one field, a
    hybrid search for several. Returns hits as {id, score, entity} in rank order,
    `plan.limit - offset` of them at most."""
    k = plan.limit - offset
    kw: dict = {}
    if group_by:
        kw["group_by_field"] = group_by
        if group_size:
            kw["group_size"] = group_size
    out = list(output_fields or [])
    try:
        if plan.anns_field:
            res = client.search(collection, data=[plan.single_vector], anns_field=plan.anns_field,
                                filter=plan.expr or "", limit=k, offset=offset, output_fields=out,
                                search_params=plan.search_params, timeout=timeout, **kw)
        else:
            res = client.hybrid_search(collection, plan.requests, plan.ranker, limit=k, offset=offset,
                                       output_fields=out, timeout=timeout, **kw)
    except Exception as exc:  # noqa: BLE001
        raise _wrap(exc, "search", collection) from None
    hits = [_flatten(h) for h in (res[0] if res else [])]
    log.debug("search %s fields=%s offset=%d -> %d hits", collection, plan.fields, offset, len(hits))
    return hits


def run_batch(client, collection: str, bplan, *, output_fields: Sequence[str] | None = None,
              timeout: float | None = None) -> list[list[dict]]:
    """Execute a `samestyle.query.requests.BatchPlan` in one call: one hit list per plan,
    in plan order, `limit` hits each at most."""
    p = bplan.head
    out = list(output_fields or [])
    try:
        if p.anns_field:
            f = p.anns_field
            res = client.search(collection, data=bplan.data[f], anns_field=f, filter=p.expr or "", limit=p.limit,
                                output_fields=out, search_params=p.search_params, timeout=timeout)
        else:
            res = client.hybrid_search(collection, bplan.requests, p.ranker, limit=p.limit, output_fields=out,
                                       timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        raise _wrap(exc, "search", collection) from None
    hits = [[_flatten(h) for h in q] for q in res]
    if len(hits) != len(bplan.plans):
        raise _wrap(RuntimeError(f"{len(hits)} result lists for {len(bplan.plans)} queries"), "search", collection)
    log.debug("batch search %s fields=%s nq=%d", collection, p.fields, len(hits))
    return hits


SCAN_CAP = 16_384  # Milvus caps offset + limit of one query here
_HEX = "0123456789abcdef"


def scan(client, collection: str, output_fields: Sequence[str], *, expr: str = "",
         batch_size: int = 1000) -> Iterator[list[dict]]:
    """All rows matching `expr`, in batches (for dedup and benchmarks).

    Milvus returns a limited query's rows in no particular order, so paging by
    `id > last` skips rows, offsets stop at 16,384, and Milvus Lite lacks
    query_iterator. Instead the rows are split into buckets by the prefix of their
    `content_hash` (hex, so the alphabet is known), each fetched whole; a bucket
    that hits the cap is split further. Rows without a hash come last."""
    ensure_loaded(client, collection)  # a reopened collection starts released
    fields = list(dict.fromkeys([PK, *output_fields]))
    extra = f" and ({expr})" if expr else ""

    def query(flt: str) -> list[dict]:
        try:
            return [dict(r) for r in client.query(collection, filter=flt, output_fields=fields, limit=SCAN_CAP)]
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc, "query", collection) from None

    def batches(rows: list[dict]) -> Iterator[list[dict]]:
        rows.sort(key=lambda r: r[PK])
        for i in range(0, len(rows), batch_size):
            yield rows[i : i + batch_size]

    def bucket(prefix: str) -> Iterator[list[dict]]:
        rows = query(f'(content_hash like "{prefix}%"){extra}')
        if len(rows) >= SCAN_CAP and len(prefix) < 8:
            for c in _HEX:
                yield from bucket(prefix + c)
            return
        yield from batches(rows)

    for c in _HEX:
        yield from bucket(c)
    yield from batches(query(f'(content_hash == ""){extra}'))


def count(client, collection: str) -> int:
    try:
        res = client.query(collection, filter="", output_fields=["count(*)"])
    except Exception as exc:  # noqa: BLE001
        raise _wrap(exc, "count", collection) from None
    return int(res[0]["count(*)"]) if res else 0

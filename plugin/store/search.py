"""The reads of `Store`: describe, load, fetch by id, count, search / hybrid_search,
scan. A mixin, so the Store stays the one owner of pymilvus calls while this file
keeps the query side apart from collection management (samestyle.store.collections).

Every call goes through `Store._call`, which maps pymilvus errors onto the project's
exceptions, so the CLI and the HTTP API can report them in one line.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, Sequence

from .. import contract as C
from ..errors import SchemaMismatch
from . import spec as S
from .client import not_found
from .expr import ids_expr
from .requests import hybrid_args

log = logging.getLogger(__name__)

PK = C.PRIMARY_KEY
VECTOR_FIELDS = tuple(C.VECTOR_FIELDS.values())
# Milvus caps the length of one expression; fetching hashes for a batch stays well under it.
FETCH_CHUNK = 512
SCAN_CAP = 16_384  # Milvus caps offset + limit of one query here
_HEX = "0123456789abcdef"


def model_version(desc: dict) -> str | None:
    """The model whose vectors fill the collection (a property set at creation)."""
    return (desc.get("properties") or {}).get(S.PROP_MODEL_VERSION)


def colour_dims(desc: dict) -> int:
    """How many of the last dimensions of the stored vectors carry colour apart (a
    property set at creation, spec.PROP_COLOUR_DIMS); 0 when absent: the collection's
    model keeps no colour apart, or the collection predates the property."""
    props = desc.get("properties") or {}
    raw = props.get(S.PROP_COLOUR_DIMS)
    if raw is None:
        return 0
    dim = str(props.get(S.PROP_EMBED_DIM, ""))
    top = int(dim) - 1 if dim.isdigit() else None
    value = int(raw) if str(raw).isdigit() else -1
    if value < 0 or (top is not None and value > top):
        name = desc.get("collection_name", "?")
        raise SchemaMismatch(f"collection [{name}] has property {S.PROP_COLOUR_DIMS} [{raw}], want an integer in "
                             f"0..{top if top is not None else 'embed_dim - 1'}", collection=name,
                             fix="reindex the catalogue (`samestyle reindex`) into a collection created by samestyle")
    return value


def composite_field(desc: dict) -> str | None:
    """The collection's composite field, None when it has none (spec.CompositeSpec)."""
    return S.composite_field(desc)


def scalar_fields(desc: dict) -> list[str]:
    """Scalar fields worth returning with a hit (everything but vectors)."""
    out = []
    for f in desc.get("fields", []):
        tname = getattr(f.get("type"), "name", str(f.get("type"))).upper()
        if "VECTOR" not in tname:
            out.append(f["name"])
    return out


def _flatten(hit: dict) -> dict:
    entity = dict(hit.get("entity") or {})
    pk = hit.get("id", entity.get(PK))
    score = hit.get("distance", hit.get("score"))
    entity.pop(PK, None)
    return {"id": str(pk), "score": float(score), "entity": entity}


class Reads:
    """Mixed into `Store` (which supplies `client`, `spec` and `_call`)."""

    def describe(self, name: str) -> dict:
        return self._call("describe_collection", name, self.client.describe_collection, name)

    def ensure_loaded(self, name: str) -> None:
        """Reopened collections start released; search needs them loaded."""
        if not self._call("has_collection", name, self.client.has_collection, name):
            raise not_found(name)
        state = self._call("get_load_state", name, self.client.get_load_state, name).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            log.info("loading collection %s", name)
            self._call("load_collection", name, self.client.load_collection, name)

    def count(self, name: str) -> int:
        """Exact row count (count(*)); loads the collection first."""
        self.ensure_loaded(name)
        res = self._call("count", name, self.client.query, name, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def fetch(self, name: str, ids: Iterable[str], fields: Sequence[str] | None = None, *,
              timeout: float | None = None) -> dict[str, dict]:
        """id -> row for the ids that exist (missing ids are absent). `fields` defaults to
        the scalar fields of milvus/collection.json; ["*"] is every field, vectors too.
        Ids are escaped by samestyle.store.expr (pymilvus' own `get` does not escape quotes)."""
        ids = list(dict.fromkeys(ids))
        out_fields = list(fields) if fields is not None else self.spec.scalar_output_fields
        pk = self.spec.by_role("id").name
        if pk not in out_fields and "*" not in out_fields:
            out_fields = [pk, *out_fields]
        out: dict[str, dict] = {}
        for i in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[i : i + FETCH_CHUNK]
            rows = self._call("query", name, self.client.query, name, filter=ids_expr(chunk, pk),
                              output_fields=out_fields, timeout=timeout)
            out.update({str(r[pk]): dict(r) for r in rows})
        return out

    def dynamic_keys(self, name: str, known: Sequence[str], sample: int = 200) -> dict[str, str | None]:
        """Attribute names held in the dynamic field, from a sample of rows, with the kind
        of their values (str/int/float/bool; None when mixed). Lets filters on them be
        checked like schema fields instead of silently matching nothing."""
        rows = self._call("query", name, self.client.query, name, filter="", output_fields=["*"], limit=sample)
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

    def search(self, name: str, plan, *, offset: int = 0, group_by: str | None = None,
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
        if plan.anns_field:
            res = self._call("search", name, self.client.search, name, data=[plan.single_vector],
                             anns_field=plan.anns_field, filter=plan.expr or "", limit=k, offset=offset,
                             output_fields=out, search_params=plan.search_params, timeout=timeout, **kw)
        else:
            res = self._call("search", name, self.client.hybrid_search, name, *hybrid_args(plan), limit=k,
                             offset=offset, output_fields=out, timeout=timeout, **kw)
        hits = [_flatten(h) for h in (res[0] if res else [])]
        log.debug("search %s fields=%s offset=%d -> %d hits", name, plan.fields, offset, len(hits))
        return hits

    def search_batch(self, name: str, bplan, *, output_fields: Sequence[str] | None = None,
                     timeout: float | None = None) -> list[list[dict]]:
        """Execute a `samestyle.query.requests.BatchPlan` in one call: one hit list per plan,
        in plan order, `limit` hits each at most."""
        p = bplan.head
        out = list(output_fields or [])
        if p.anns_field:
            f = p.anns_field
            res = self._call("search", name, self.client.search, name, data=bplan.data[f], anns_field=f,
                             filter=p.expr or "", limit=p.limit, output_fields=out, search_params=p.search_params,
                             timeout=timeout)
        else:
            res = self._call("search", name, self.client.hybrid_search, name, *hybrid_args(bplan),
                             limit=p.limit, output_fields=out, timeout=timeout)
        hits = [[_flatten(h) for h in q] for q in res]
        if len(hits) != len(bplan.plans):
            raise self._wrap(RuntimeError(f"{len(hits)} result lists for {len(bplan.plans)} queries"), "search",
                             name)
        log.debug("batch search %s fields=%s nq=%d", name, p.fields, len(hits))
        return hits

    def scan(self, name: str, output_fields: Sequence[str], *, expr: str = "",
             batch_size: int = 1000) -> Iterator[list[dict]]:
        """All rows matching `expr`, in batches (for dedup and benchmarks).

        Milvus returns a limited query's rows in no particular order, so paging by
        `id > last` skips rows, offsets stop at 16,384, and Milvus Lite lacks
        query_iterator. Instead the rows are split into buckets by the prefix of their
        `content_hash` (hex, so the alphabet is known), each fetched whole; a bucket
        that hits the cap is split further. Rows without a hash come last."""
        self.ensure_loaded(name)  # a reopened collection starts released
        fields = list(dict.fromkeys([PK, *output_fields]))
        extra = f" and ({expr})" if expr else ""

        def query(flt: str) -> list[dict]:
            return [dict(r) for r in self._call("query", name, self.client.query, name, filter=flt,
                                                output_fields=fields, limit=SCAN_CAP)]

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

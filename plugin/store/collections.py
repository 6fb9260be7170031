"""Collection management: the one module that creates, checks, fills and switches
Milvus collections (searching is samestyle.store.search).

Layout: physical collections `products_v<N>` (one per model version; the vectors of
two models never share a collection) behind the alias `products` that readers use.
Each collection carries properties naming the model version and dimension that fill
it, and a state: `building` until an ingest or reindex into it has finished, then
`complete`. The alias only ever points at a complete collection.

Works the same embedded (Milvus Lite file under the data directory), against a
Milvus Lite server, or against Milvus standalone/cluster with a token.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..config import Settings
from ..errors import SchemaMismatch, ServerUnavailable, StoreError
from . import spec as S
from .client import GRPC_OPTIONS, CollectionNotFound, client, connect, not_loaded, wrap
from .expr import ids_expr
from .retry import NOT_IDEMPOTENT, POLICY, PROBE, RetryPolicy, retrying
from .search import FETCH_CHUNK, Reads

__all__ = ["GRPC_OPTIONS", "FETCH_CHUNK", "CollectionInfo", "CollectionNotFound", "Store", "client", "connect"]

log = logging.getLogger(__name__)
RELOADABLE = ("search", "query", "count", "delete")  # calls that need a loaded collection
RECONNECT_TIMEOUT_S = 3.0


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)


@dataclass
class CollectionInfo:
    name: str
    version: int | None
    aliases: list[str]
    count: int | None
    model_version: str | None
    embed_dim: int | None
    state: str | None

    def to_dict(self) -> dict:
        return asdict(self)


class Store(Reads):
    """The one owner of pymilvus calls, over one MilvusClient: collection management
    here, reads and searches in `Reads` (samestyle.store.search). `alias` is the name
    readers use (SAMESTYLE_COLLECTION, default `products`)."""

    _wrap = staticmethod(wrap)

    def __init__(self, client, *, alias: str = "products", profile: str = "lite",
                 spec: S.CollectionSpec | None = None, profiles: Mapping[str, S.IndexProfile] | None = None):
        self.client = client
        self.alias = alias
        self.spec = spec or S.load_collection_spec()
        self.profile = S.index_profile(profile, profiles)
        self._composite: dict[str, str | None] = {}
        self._reconnect = None  # set by Store.open for a server URI
        self._reconnect_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, alias: str | None = None) -> "Store":
        store = cls(connect(settings), alias=alias or settings.collection, profile=settings.resolved_profile)
        uri = settings.resolved_milvus_uri
        if not uri.endswith(".db"):  # a server: its connection can be made again after it restarts
            store._reconnect = lambda: client(uri, settings.milvus_token or "", timeout=RECONNECT_TIMEOUT_S)
        return store

    def for_alias(self, alias: str | None) -> "Store":
        """This store for another alias (collection): the same connection, spec and index
        profile; `self` when the alias is its own. The other one does not reconnect by
        itself (this one does, and the next `for_alias` shares its new connection)."""
        if not alias or alias == self.alias:
            return self
        other = copy.copy(self)  # shares the client, the composite-field cache and the lock
        other.alias, other._reconnect = alias, None
        return other

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing twice or after a server loss is harmless
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, what: str, name: str | None, fn, *args, policy: RetryPolicy = POLICY, **kw):
        """`fn(*args, **kw)` (a method of the client), its failure mapped by `wrap` and
        retried by the store's one policy (samestyle.store.retry: retriable errors only,
        idempotent calls only, within the call's `timeout`). Each attempt runs on the
        current client, so a call whose client another thread replaced (reconnect
        closed it: "closed channel") is made again on the new one. `policy`: PROBE for a
        readiness check, which reports the server as it is instead of waiting for it."""
        method = getattr(fn, "__name__", "")
        bound = getattr(fn, "__self__", None) is not None and hasattr(self.client, method)
        used: list = [None]

        def attempt(left: float | None):
            current = self.client
            used[0] = current
            call = getattr(current, method) if bound else fn
            return call(*args, **(dict(kw, timeout=left) if left is not None and "timeout" in kw else kw))

        def recover(exc: Exception, err) -> bool:
            if not_loaded(exc):
                if not (name and what in RELOADABLE):
                    return False
                # A restarted Milvus (Lite server) comes back with every collection
                # released: load it again and retry, instead of failing every search
                # until someone reloads it by hand. A call that finds it being loaded
                # by another one waits the same way: the server serialises loads, so
                # this one returns when that load is done. Still not loaded when the
                # attempts are spent: wrap made it 503 server_unavailable, never 502.
                log.warning("collection %s is not loaded (%s): loading it", name, _message(exc)[:200])
                self.client.load_collection(name)
                return True
            if not isinstance(err, ServerUnavailable):
                return False
            if bound and used[0] is not self.client:
                return True  # another thread reconnected while this call ran: again, on the new client
            # pymilvus does not recover a channel whose server went away and came back:
            # the call is made again on a new connection.
            return self._reconnected()

        return retrying(attempt, lambda exc: wrap(exc, what, name), timeout=kw.get("timeout"),
                        idempotent=what not in NOT_IDEMPOTENT, recover=recover, policy=policy)

    def _reconnected(self) -> bool:
        """A new client after the server was unreachable (one attempt, bounded by
        RECONNECT_TIMEOUT_S). Requests failing while another thread is trying do not
        wait for it: they fail as they were going to."""
        if self._reconnect is None or not self._reconnect_lock.acquire(blocking=False):
            return False
        try:
            fresh = self._reconnect()
            fresh.list_collections(timeout=RECONNECT_TIMEOUT_S)  # pymilvus may connect lazily
            old, self.client = self.client, fresh
        except Exception as exc:  # noqa: BLE001 - still down
            log.info("Milvus still unreachable: %s", str(exc)[:200])
            return False
        finally:
            self._reconnect_lock.release()
        log.warning("reconnected to Milvus")
        try:
            old.close()
        except Exception:  # noqa: BLE001
            pass
        return True

    # -- introspection ------------------------------------------------------------------
    def alias_target(self, alias: str | None = None) -> str | None:
        """The collection an alias points at, None when the alias does not exist."""
        alias = alias or self.alias
        # Listing first: describe_alias on a missing alias makes pymilvus log an ERROR.
        if alias not in self._call("list_aliases", None, self.client.list_aliases).get("aliases", []):
            return None
        return self._call("describe_alias", alias, self.client.describe_alias, alias)["collection_name"]

    def collections(self) -> list[str]:
        return sorted(self._call("list_collections", None, self.client.list_collections))

    def versions(self, alias: str | None = None) -> list[tuple[int, str]]:
        """(N, name) of every `<alias>_v<N>`, oldest first."""
        alias = alias or self.alias
        out = [(S.parse_version(alias, n), n) for n in self.collections()]
        return sorted((v, n) for v, n in out if v is not None)

    def properties(self, name: str) -> dict:
        return dict(self.describe(name).get("properties") or {})

    def exists(self, name: str) -> bool:
        return bool(self._call("has_collection", name, self.client.has_collection, name))

    def ping(self, *, timeout: float | None = None) -> None:
        """Raise (ServerUnavailable when down) unless the server answers within `timeout`.
        A probe: retried only after a reconnect, never waiting for the server (PROBE)."""
        self._call("list_collections", None, self.client.list_collections, timeout=timeout, policy=PROBE)

    def load_state(self, name: str) -> str:
        """The collection's load state as Milvus names it: Loaded, Loading, NotLoad, NotExist."""
        state = self._call("get_load_state", name, self.client.get_load_state, name).get("state")
        return getattr(state, "name", str(state))

    def _quick_count(self, name: str) -> int:
        """Exact (count(*)) when the collection is loaded; else the server's row
        statistics, so listing never loads every old version into memory."""
        state = self._call("get_load_state", name, self.client.get_load_state, name).get("state")
        if getattr(state, "name", str(state)) == "Loaded":
            return self.count(name)
        return int(self._call("get_collection_stats", name, self.client.get_collection_stats, name)["row_count"])

    def info(self, name: str) -> CollectionInfo:
        props = self.properties(name)
        aliases = self._call("list_aliases", name, self.client.list_aliases, name).get("aliases", [])
        dim = props.get(S.PROP_EMBED_DIM)
        split = S.split_physical(name)
        return CollectionInfo(name=name, version=split[1] if split else None, aliases=sorted(aliases),
                              count=self._quick_count(name), model_version=props.get(S.PROP_MODEL_VERSION),
                              embed_dim=int(dim) if dim else None, state=props.get(S.PROP_STATE))

    def list(self) -> list[CollectionInfo]:
        return [self.info(n) for n in self.collections()]

    # -- lifecycle ----------------------------------------------------------------------
    def create_version(self, manifest: Mapping, version: int | None = None, alias: str | None = None) -> str:
        """Create `<alias>_v<N>` (N = newest + 1 by default) for this model, state `building`."""
        alias = alias or self.alias
        if version is None:
            existing = self.versions(alias)
            version = (existing[-1][0] + 1) if existing else 1
        name = S.physical_name(alias, version)
        self.create(name, manifest)
        return name

    def create(self, name: str, manifest: Mapping) -> None:
        self._composite.pop(name, None)
        schema = S.build_schema(self.spec, manifest, self.profile)
        index = S.build_index_params(self.spec, self.profile)
        log.info("creating collection %s (model %s, %s-d, profile %s)", name, manifest["model_version"],
                 manifest["embed_dim"], self.profile.name)
        self.create_layout(name, schema, properties=S.collection_properties(self.spec, manifest, profile=self.profile))
        # sync=False: the collection is empty, there is nothing to wait for, and the
        # wait itself calls AllocTimestamp, which Milvus Lite does not implement.
        self.build_index(name, index, sync=False)
        self.load(name)

    def create_layout(self, name: str, schema, *, properties: Mapping | None = None,
                      profile: S.IndexProfile | None = None) -> None:
        """An empty collection of `schema`, with the profile's create options (partitions,
        shards, consistency level); no index. `create` builds samestyle's product
        collections on it; `samestyle bench scale` its bare layouts."""
        kw: dict[str, Any] = S.create_options(self.spec, profile or self.profile)
        if properties:
            kw["properties"] = dict(properties)
        self._composite.pop(name, None)
        self._call("create_collection", name, self.client.create_collection, name, schema=schema, **kw)

    def build_index(self, name: str, index_params, *, sync: bool = True) -> None:
        self._call("create_index", name, self.client.create_index, name, index_params, sync=sync)

    def load(self, name: str, *, timeout: float | None = None) -> None:
        kw = {"timeout": timeout} if timeout is not None else {}
        self._call("load_collection", name, self.client.load_collection, name, **kw)

    def insert(self, name: str, rows: Sequence[dict]) -> int:
        """Plain insert of complete rows (no composite field filled: see `upsert`)."""
        res = self._call("insert", name, self.client.insert, name, list(rows))
        return int(res.get("insert_count", len(rows))) if isinstance(res, Mapping) else len(rows)

    def flush(self, name: str) -> None:
        self._call("flush", name, self.client.flush, name)

    def check(self, name: str, manifest: Mapping) -> None:
        """Raise SchemaMismatch unless `name` was built by samestyle for this model:
        same model version, same vector dimension, every field of milvus/collection.json."""
        desc = self.describe(name)
        props = dict(desc.get("properties") or {})
        want_v, want_d = str(manifest["model_version"]), int(manifest["embed_dim"])
        fix = (f"run `samestyle reindex CATALOGUE --model <dir of {want_v}>` to build the next "
               f"{self.alias}_v<N> with this model and switch the alias when it is complete, or point "
               f"SAMESTYLE_MODEL at the model that filled [{name}]")
        have_v = props.get(S.PROP_MODEL_VERSION)
        if have_v is None:
            raise SchemaMismatch(f"collection [{name}] was not created by samestyle (no {S.PROP_MODEL_VERSION} "
                                 f"property)", collection=name,
                                 fix="use another --collection / SAMESTYLE_COLLECTION, or drop it")
        fields = {f["name"]: f for f in desc.get("fields", [])}
        dims = {n: int((fields[n].get("params") or {}).get("dim", 0)) for n in self.spec.vector_fields.values()
                if n in fields}
        bad_dims = {n: d for n, d in dims.items() if d != want_d}
        if bad_dims:
            have_d = "/".join(str(d) for d in sorted(set(bad_dims.values())))
            raise SchemaMismatch(f"collection [{name}] stores {have_d}-d vectors ({', '.join(sorted(bad_dims))}), "
                                 f"the model {want_v} makes {want_d}-d vectors",
                                 collection=name, fix=fix, have_dim=sorted(set(bad_dims.values())), want_dim=want_d)
        if have_v != want_v:
            raise SchemaMismatch(f"collection [{name}] holds vectors of model {have_v}, the encoder is model "
                                 f"{want_v}; vectors of two models cannot be compared", collection=name, fix=fix,
                                 have_model=have_v, want_model=want_v)
        missing = [n for n in self.spec.names if n not in fields]
        if missing:
            raise SchemaMismatch(f"collection [{name}] lacks fields {missing} of milvus/collection.json "
                                 f"(it was built from an older definition)", collection=name,
                                 fix=f"run `samestyle reindex CATALOGUE` to rebuild it as the next {self.alias}_v<N>")

    def resume_candidate(self, manifest: Mapping, alias: str | None = None) -> str | None:
        """The newest `building` version for this model that no alias points at: where
        an interrupted first ingest or reindex left off."""
        alias = alias or self.alias
        target = self.alias_target(alias)
        for _, name in reversed(self.versions(alias)):
            if name == target:
                return None  # never resume behind the live collection
            props = self.properties(name)
            if props.get(S.PROP_STATE) == "building" and props.get(S.PROP_MODEL_VERSION) == manifest["model_version"]:
                return name
        return None

    def resolve_target(self, manifest: Mapping, name: str | None = None) -> tuple[str, bool]:
        """Where an ingest writes: (collection, alias_pending).

        NAME (default: the alias) that is an alias -> its collection; an existing
        collection -> itself; a missing `<x>_v<N>` -> created; any other missing name
        is an alias-to-be: its interrupted `building` version is resumed, else the
        next version is created, and alias_pending says to point the alias at it once
        the ingest completes."""
        name = name or self.alias
        target = self.alias_target(name)
        if target:
            self.check(target, manifest)
            return target, False
        if self.exists(name):
            self.check(name, manifest)
            return name, False
        if S.split_physical(name):
            self.create(name, manifest)
            return name, False
        resumed = self.resume_candidate(manifest, alias=name)
        if resumed:
            self.check(resumed, manifest)
            return resumed, True
        return self.create_version(manifest, alias=name), True

    def set_state(self, name: str, state: str) -> None:
        self._call("alter_collection_properties", name, self.client.alter_collection_properties, name,
                   {S.PROP_STATE: state})

    def switch_alias(self, name: str, alias: str | None = None) -> str | None:
        """Point the alias at `name` (atomic on the server); returns the previous target."""
        alias = alias or self.alias
        before = self.alias_target(alias)
        if before == name:
            return before
        if before is None:
            self._call("create_alias", name, self.client.create_alias, name, alias)
        else:
            self._call("alter_alias", name, self.client.alter_alias, name, alias)
        log.info("alias %s: %s -> %s", alias, before, name)
        return before

    def drop(self, name: str) -> None:
        aliases = self._call("list_aliases", name, self.client.list_aliases, name).get("aliases", [])
        if aliases:
            raise StoreError(f"collection [{name}] is behind the alias {aliases}; refusing to drop it",
                             collection=name, fix="switch the alias away first (`samestyle reindex`)")
        self._call("drop_collection", name, self.client.drop_collection, name)
        self._composite.pop(name, None)

    # -- data ---------------------------------------------------------------------------
    def composite_field(self, name: str) -> str | None:
        """The collection's composite field (see spec.CompositeSpec), from its own
        description: a collection made under another profile is filled as it was built."""
        if name not in self._composite:
            self._composite[name] = S.composite_field(self.describe(name))
        return self._composite[name]

    def upsert(self, name: str, rows: Sequence[dict]) -> int:
        if not rows:
            return 0
        comp = self.composite_field(name)
        if comp:
            fields = list(self.spec.vector_fields.values())
            filled = []
            for r in rows:
                try:
                    filled.append({**r, comp: S.composite_vector([r.get(f) for f in fields])})
                except ValueError:  # refused like Milvus refuses a bad row (the caller may retry row by row)
                    dims = [len(r[f]) if r.get(f) is not None else None for f in fields]
                    raise StoreError(f"row [{r.get(self.spec.by_role('id').name)}] has vectors of lengths {dims}; "
                                     f"the collection [{name}] stores one dimension for all three",
                                     collection=name) from None
            rows = filled
        res = self._call("upsert", name, self.client.upsert, name, list(rows))
        return int(res.get("upsert_count", len(rows))) if isinstance(res, Mapping) else len(rows)

    def hashes(self, name: str, ids: Iterable[str]) -> dict[str, str]:
        """content_hash of the stored products among `ids`."""
        h = self.spec.by_role("content_hash").name
        return {k: v.get(h) for k, v in self.fetch(name, ids, [h]).items()}

    def delete(self, name: str, ids: Iterable[str]) -> list[str]:
        """Delete the products among `ids` that exist; returns those, in the order given
        (ids escaped by samestyle.store.expr). Flushed, so a count right after sees it."""
        ids = [str(i) for i in dict.fromkeys(ids)]
        self.ensure_loaded(name)
        present = set(self.fetch(name, ids, [self.spec.by_role("id").name]))
        gone = [i for i in ids if i in present]
        pk = self.spec.by_role("id").name
        for i in range(0, len(gone), FETCH_CHUNK):
            self._call("delete", name, self.client.delete, name, filter=ids_expr(gone[i : i + FETCH_CHUNK], pk))
        if gone:
            self.flush(name)
        return gone

    def ids(self, name: str) -> set[str]:
        """Every product id in the collection (for `ingest --sync`)."""
        pk = self.spec.by_role("id").name
        return {str(r[pk]) for batch in self.scan(name, [pk]) for r in batch}

    def flush_and_load(self, name: str) -> None:
        """Seal what was written so searches are fast (~20 ms instead of ~0.5 s on
        Milvus Lite), then make sure the collection is loaded for search."""
        self.flush(name)
        self.ensure_loaded(name)

"""The two jobs behind `samestyle ingest` and `samestyle reindex`: pick the target
collection, run the pipeline with its checkpoint and dead-letter file, seal the
collection (flush + load) and, when complete, point the alias at it.

- ingest: into the collection behind the alias (checked against the model: a model
  or dimension change is a SchemaMismatch that says to reindex). With no alias yet,
  a `building` `<alias>_v<N>` is created, and the alias is created once it completes.
- reindex: into a new `<alias>_v<N+1>` with the new model; the alias moves only when
  the run is complete, under the failure threshold, and the new collection holds
  every product the run accepted. Readers never see a half-built collection.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from samestyle.encoders.base import Encoder
from samestyle.encoders.lazy import LazyEncoder
from samestyle.encoders.onnx import OnnxEncoder
from samestyle.errors import ConfigError
from samestyle import contract as C
from samestyle import serve
from samestyle.serve.stack import reap_stale, read_manifest
from samestyle.store import spec as S
from samestyle.store.collections import Store
from samestyle.thumbs import Thumbnails

from .checkpoint import Checkpoint
from .photos import PhotoLoader, PhotoOptions
from .pipeline import IngestOptions, IngestReport, run_pipeline
from .sources import Source
from .transform import ColumnMap, Transformer

log = logging.getLogger(__name__)
DEFAULT_MAX_FAILURES = "5%"


@dataclass(frozen=True)
class Threshold:
    """`--max-failures`: a count (`25`) or a fraction (`5%`, `0.05`) of records read."""

    value: float
    fraction: bool

    @classmethod
    def parse(cls, text: str | float | int) -> "Threshold":
        s = str(text).strip()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", s)
        try:
            if m:
                v = float(m.group(1)) / 100
                if v > 1:
                    raise ValueError
                return cls(v, True)
            v = float(s)
        except ValueError:
            raise ConfigError(f"--max-failures [{text}] is not a count, a fraction or a percentage",
                              fix="e.g. --max-failures 25, --max-failures 0.05 or --max-failures 5%") from None
        if v < 0:
            raise ConfigError(f"--max-failures [{text}] is negative", fix="use --max-failures 0 to fail on any bad record")
        if v < 1 and "." in s:
            return cls(v, True)
        if v != int(v):
            raise ConfigError(f"--max-failures [{text}]: a count must be whole", fix="e.g. --max-failures 25 or --max-failures 2.5%")
        return cls(v, False)

    def exceeded(self, failed: int, read: int) -> bool:
        if self.fraction:
            return read > 0 and failed / read > self.value
        return failed > self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.fraction else f"{int(self.value)}"


def manifest_of(encoder: Encoder) -> dict:
    """What the store checks a collection against."""
    out = {"model_version": encoder.model_version, "embed_dim": int(encoder.dim)}
    colour_dims = int(getattr(encoder, "colour_dims", 0))
    if colour_dims:  # recorded with the collection, so searches know which dimensions are colour
        out["fusion"] = {"colour_dims": colour_dims}
    return out


@contextlib.contextmanager
def open_encoder(settings, kind: str = "triton", model_dir: str | Path | None = None) -> Iterator[Encoder]:
    """`onnx`: in-process ONNX Runtime (no server). `triton`: samestyle.serve's client,
    which starts a local Triton when SAMESTYLE_TRITON_URL is unset."""
    settings = settings.with_(model_dir=Path(model_dir) if model_dir else None)
    reap_stale(settings)  # a killed predecessor's Triton, stubs and /dev/shm regions
    if kind == "onnx":
        from samestyle.export import ensure_onnx

        enc = OnnxEncoder(ensure_onnx(settings.model_dir))
        try:
            yield enc
        finally:
            enc.close()
        return
    if kind != "triton":
        raise ConfigError(f"unknown encoder [{kind}]", fix="use --encoder triton or --encoder onnx")
    if settings.triton_url:
        with serve.encoder_for(settings) as enc:
            yield enc
        return
    # A local Triton would have to start: only once something needs encoding (a re-run
    # over an unchanged catalogue starts none).
    manifest = read_manifest(settings.model_dir)
    with LazyEncoder(lambda: serve.encoder_for(settings), manifest["model_version"], manifest["embed_dim"],
                     colour_dims=C.colour_dims(manifest)) as enc:
        yield enc


def _consts(encoder: Encoder) -> dict | None:
    return getattr(encoder, "consts", None)


def _run(catalogue: Path, target: str, *, store: Store, encoder: Encoder, columns: ColumnMap, data_dir: Path,
         fmt: str | None, dead_letter: Path | None, options: IngestOptions, photo_options: PhotoOptions,
         progress, csv_options: dict | None = None) -> IngestReport:
    csv_options = csv_options or {}
    source = Source(catalogue, fmt, delimiter=csv_options.get("delimiter"), encoding=csv_options.get("encoding"))
    transformer = Transformer(store.spec, columns, encoder.model_version, _consts(encoder), source.columns)
    if source.columns is None:  # JSONL: check the mapping against the first records' keys
        keys, n = source.sample_keys()
        if n:
            transformer.check_columns(keys, sampled=n)
    for note in transformer.notes:
        log.warning("%s", note)
    dl = dead_letter or data_dir / "dead-letter" / f"{source.path.stem}.{target}.jsonl"
    ck = Checkpoint.open(data_dir / "checkpoints", source.path, collection=target,
                         model_version=encoder.model_version, columns=columns.key(), limit=options.limit)
    photos = PhotoLoader(source.base_dir, photo_options)
    try:
        if ck.resumed:
            log.info("resuming %s into %s from line %d", source.path, target, ck.next_line)
        if progress is not None:
            progress.start(source, ck)
        report = run_pipeline(source, transformer, photos, encoder, store, target, ck, dl, options,
                              progress.update if progress is not None else None, thumbs=Thumbnails(data_dir))
        store.flush_and_load(target)
        ck.clear()
        report.notes = list(transformer.notes)
        return report
    finally:
        photos.close()
        ck.release()


def parse_share(text: str | float | int, option: str = "--sync-max-share") -> float:
    """`10%`, `0.1` -> 0.1 (a share of the stored products)."""
    s = str(text).strip()
    try:
        v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 1:
        raise ConfigError(f"{option} [{text}] is not a share between 0 and 1 (or 0% and 100%)",
                          fix=f"e.g. {option} 10% or {option} 0.1")
    return v


def plan_sync(catalogue: str | Path, store: Store, target: str, columns: ColumnMap, *, fmt: str | None = None,
              csv_options: dict | None = None, max_share: float = 0.1, force: bool = False) -> dict:
    """What `ingest --sync` would remove from `target`: the stored products whose id no
    record of the catalogue has. Reads ids only (no photo, no encoder). Refused (a
    ConfigError, nothing changed) when the share to remove passes `max_share`, or when
    records without a readable id could be products it would wrongly remove, unless
    `force`."""
    csv_options = csv_options or {}
    source = Source(catalogue, fmt, delimiter=csv_options.get("delimiter"), encoding=csv_options.get("encoding"))
    if source.columns is not None and columns.id not in source.columns:
        Transformer(store.spec, columns, "-", source_columns=source.columns)  # raises, naming the columns
    listed: set[str] = set()
    unreadable: list[int] = []
    for rec in source:
        value = rec.fields.get(columns.id) if rec.fields is not None else None
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if value is None or isinstance(value, (bool, float)) or not str(value).strip():
            unreadable.append(rec.line)
            continue
        listed.add(str(value).strip())
    stored = store.ids(target) if store.exists(target) else set()
    remove = sorted(stored - listed)
    share = len(remove) / len(stored) if stored else 0.0
    plan = {"stored": len(stored), "in_catalogue": len(listed), "remove": remove, "remove_count": len(remove),
            "share": round(share, 4), "max_share": max_share, "unreadable_lines": unreadable[:100],
            "unreadable": len(unreadable), "refused": None}
    if unreadable and remove:
        plan["refused"] = (f"{len(unreadable)} records have no readable id (first on line {unreadable[0]}); "
                           f"a product they hold could be among the {len(remove)} to remove")
    elif share > max_share:
        plan["refused"] = (f"{len(remove)} of {len(stored)} stored products ({share:.1%}) are not in the catalogue, "
                           f"over --sync-max-share {max_share:.0%}")
    if plan["refused"] and force:
        plan["forced"], plan["refused"] = plan["refused"], None
    return plan


def ingest_catalogue(catalogue: str | Path, *, store: Store, encoder: Encoder, columns: ColumnMap,
                     data_dir: str | Path, collection: str | None = None, fmt: str | None = None,
                     dead_letter: str | Path | None = None, options: IngestOptions | None = None,
                     photo_options: PhotoOptions | None = None, max_failures: str = DEFAULT_MAX_FAILURES,
                     progress=None, csv_options: dict | None = None, sync: bool = False,
                     sync_max_share: float = 0.1, force: bool = False, dry_run: bool = False) -> dict:
    """Ingest a catalogue; returns the report as a dict (see IngestReport) plus
    `threshold`, `threshold_exceeded`, `alias` and `count` (rows in the collection).

    `sync`: the catalogue is the whole truth; stored products it does not list are
    removed after a run under the failure threshold. The plan (`plan_sync`) is made
    before anything is written, and a refused plan writes nothing. `dry_run` returns
    the plan alone: nothing ingested, nothing removed."""
    threshold = Threshold.parse(max_failures)
    name = collection or store.alias
    if dry_run and not sync:
        raise ConfigError("--dry-run shows what --sync would remove", fix="pass --sync --dry-run")
    plan = None
    if sync:
        if options is not None and options.limit is not None:
            raise ConfigError("--sync removes what the catalogue does not list, so it needs the whole catalogue",
                              fix="drop --limit")
        existing = store.alias_target(name) or (name if store.exists(name) else None)
        plan = plan_sync(catalogue, store, existing or name, columns, fmt=fmt, csv_options=csv_options,
                         max_share=sync_max_share, force=force)
        if dry_run:
            return {"dry_run": True, "catalogue": str(catalogue), "collection": existing, "sync": plan}
        if plan["refused"]:
            raise ConfigError(f"ingest --sync refused, nothing written: {plan['refused']}",
                              fix="check the catalogue is the whole one (see --sync --dry-run), then pass --force "
                                  "or raise --sync-max-share")
    target, alias_pending = store.resolve_target(manifest_of(encoder), name)
    report = _run(Path(catalogue), target, store=store, encoder=encoder, columns=columns, data_dir=Path(data_dir),
                  fmt=fmt, dead_letter=Path(dead_letter) if dead_letter else None,
                  options=options or IngestOptions(), photo_options=photo_options or PhotoOptions(),
                  progress=progress, csv_options=csv_options)
    if store.properties(target).get(S.PROP_STATE) != "complete":
        store.set_state(target, "complete")
    alias = None
    if alias_pending:
        store.switch_alias(target, alias=name)
        alias = name
    else:
        alias = next(iter(store.info(target).aliases), None)
    out = report.to_dict()
    exceeded = threshold.exceeded(report.failed, report.read)
    if plan is not None:
        if exceeded:
            plan.update(removed=[], not_removed_because=f"{report.failed} failures of {report.read} records, "
                                                        f"over {threshold}")
        else:
            plan["removed"] = store.delete(target, plan["remove"]) if plan["remove"] else []
        out["sync"] = plan
    out.update(threshold=str(threshold), threshold_exceeded=exceeded, alias=alias, count=store.count(target))
    return out


def reindex_catalogue(catalogue: str | Path, *, store: Store, encoder: Encoder, columns: ColumnMap,
                      data_dir: str | Path, fmt: str | None = None, dead_letter: str | Path | None = None,
                      options: IngestOptions | None = None, photo_options: PhotoOptions | None = None,
                      max_failures: str = DEFAULT_MAX_FAILURES, force: bool = False,
                      before_switch: Callable[[str], None] | None = None, progress=None,
                      csv_options: dict | None = None) -> dict:
    """Re-embed a catalogue with `encoder`'s model into the next `<alias>_v<N>` and
    switch the alias when it is complete. An interrupted reindex resumes into the
    same new collection. `before_switch(name)` runs just before the switch (tests use
    it to observe that readers still see the old collection)."""
    threshold = Threshold.parse(max_failures)
    manifest = manifest_of(encoder)
    previous = store.alias_target()
    if previous and not force:
        have = store.properties(previous).get(S.PROP_MODEL_VERSION)
        if have == manifest["model_version"]:
            raise ConfigError(f"[{store.alias}] -> [{previous}] already holds model {have}; nothing to reindex",
                              fix="pass --model with the new model, or --force to rebuild with the same one")
    target = store.resume_candidate(manifest) or store.create_version(manifest)
    store.check(target, manifest)
    report = _run(Path(catalogue), target, store=store, encoder=encoder, columns=columns, data_dir=Path(data_dir),
                  fmt=fmt, dead_letter=Path(dead_letter) if dead_letter else None,
                  options=options or IngestOptions(), photo_options=photo_options or PhotoOptions(),
                  progress=progress, csv_options=csv_options)
    count = store.count(target)
    expected = report.loaded + report.unchanged
    exceeded = threshold.exceeded(report.failed, report.read)
    out = report.to_dict()
    out.update(threshold=str(threshold), threshold_exceeded=exceeded, count=count, previous=previous,
               alias=store.alias, switched=False)
    if exceeded:
        out["not_switched_because"] = f"{report.failed} failures of {report.read} records, over {threshold}"
    elif count != expected:
        out["not_switched_because"] = f"[{target}] holds {count} rows, the run accepted {expected} products"
    else:
        store.set_state(target, "complete")
        if before_switch is not None:
            before_switch(target)
        store.switch_alias(target)
        out["switched"] = True
    return out

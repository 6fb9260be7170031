"""`samestyle ingest CATALOGUE`: load a catalogue into Milvus (image, text and fused
vectors), idempotent and resumable."""

from __future__ import annotations

import click

from ._ingest import Progress, build_jobs_args, ingest_options, render_report, render_sync_plan
from .common import emit
from samestyle.errors import ConfigError


@click.command("ingest")
@ingest_options
@click.option("--collection", default=None, help="Alias (or products_v<N>) to load into [default: SAMESTYLE_COLLECTION].")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model checkpoint directory [default: SAMESTYLE_MODEL or the shipped model].")
@click.option("--sync", is_flag=True, help="The catalogue is the whole catalogue: after the run, remove stored "
                                            "products it does not list (see --dry-run, --sync-max-share).")
@click.option("--dry-run", is_flag=True, help="With --sync: list what would be removed; write nothing.")
@click.option("--sync-max-share", default="10%", show_default=True, envvar="SAMESTYLE_SYNC_MAX_SHARE",
              help="--sync refuses (writing nothing) to remove more than this share of the stored products.")
@click.option("--force", is_flag=True, help="With --sync: remove past --sync-max-share, or although some records "
                                            "have no readable id.")
@click.option("--allow-blanking", is_flag=True, envvar="SAMESTYLE_ALLOW_BLANKING",
              help="Let a record with an empty title or photo clear the title or photo (and its vectors) of the "
                   "stored product with its id [default: such a record is dead-lettered, kind would_blank].")
@click.pass_obj
def command(settings, catalogue, fmt, id_col, title_col, image_col, category_col, attr_cols, encoder_kind,
            batch_size, encode_workers, limit, dead_letter, max_failures, photo_concurrency, photo_timeout,
            photo_retries, progress, as_json, collection, model_dir, sync, dry_run, sync_max_share, force,
            allow_blanking):
    """Load CATALOGUE (CSV, JSONL or Parquet) into the product collection.

    \b
    - Upsert by id; a product whose title, photo, attributes and model are unchanged
      since the last run is skipped without encoding (content hash).
    - Killed at any point, the next run with the same arguments picks up where it
      stopped and ends with the collection a clean run would have made.
    - Bad records (missing id, unreadable or oversize photo, neither photo nor title,
      invalid UTF-8, oversize fields, a repeated id: the first record wins) go to the
      dead-letter JSONL with line, id, field and reason; all good records load.
    - A record whose title or photo is empty while the stored product with its id has
      one is dead-lettered (would_blank): the stored title, photo and vectors stay as
      they are. --allow-blanking lets such records clear them.
    - Exit code 1 only when rejected records pass --max-failures.
    - --sync: products stored but absent from CATALOGUE are removed after the run
      (--dry-run first to see them); refused, writing nothing, above
      --sync-max-share or when some records have no readable id, unless --force.

    Photos: a path relative to the catalogue (it must stay inside the catalogue's
    folder or a --photo-root), a data: URI or an http(s) URL (loopback, private and
    link-local hosts refused unless --allow-private-hosts / --allow-network).
    A product without a photo stores a zero image_vec and has_image=false (queries
    filter on has_image / has_text).
    """
    from samestyle.loaders.jobs import ingest_catalogue, open_encoder, parse_share
    from samestyle.store import Store

    args = build_jobs_args(settings, fmt=fmt, id_col=id_col, title_col=title_col, image_col=image_col,
                           category_col=category_col, attr_cols=attr_cols, batch_size=batch_size,
                           encode_workers=encode_workers, encoder_kind=encoder_kind, limit=limit,
                           photo_concurrency=photo_concurrency, photo_timeout=photo_timeout,
                           photo_retries=photo_retries)
    args["options"].allow_blanking = allow_blanking
    sync_args = dict(sync=sync, dry_run=dry_run, force=force, sync_max_share=parse_share(sync_max_share))
    if dry_run:
        if not sync:
            raise ConfigError("--dry-run shows what --sync would remove", fix="pass --sync --dry-run")
        with Store.open(settings) as store:  # no encoder: a dry run reads ids only
            plan = ingest_catalogue(catalogue, store=store, encoder=None, collection=collection,
                                    dead_letter=dead_letter, max_failures=max_failures, **args, **sync_args)
        emit(plan, as_json, render_sync_plan)
        return
    bar = Progress(progress, "ingest", limit)
    # The encoder first: starting a local Triton (a fork) before gRPC threads exist keeps gRPC quiet.
    with open_encoder(settings, encoder_kind, model_dir) as encoder, Store.open(settings) as store:
        try:
            report = ingest_catalogue(catalogue, store=store, encoder=encoder, collection=collection,
                                      dead_letter=dead_letter, max_failures=max_failures, progress=bar, **args,
                                      **sync_args)
        finally:
            bar.close()
    emit(report, as_json, lambda r: render_report(r, "ingested"))
    if report["threshold_exceeded"]:
        raise SystemExit(1)

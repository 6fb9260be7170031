"""`samestyle ingest CATALOGUE`: load a catalogue into Milvus (image, text and fused
vectors), idempotent and resumable."""

from __future__ import annotations

import click

from ._ingest import Progress, build_jobs_args, ingest_options, render_report
from .common import emit


@click.command("ingest")
@ingest_options
@click.option("--collection", default=None, help="Alias (or products_v<N>) to load into [default: SAMESTYLE_COLLECTION].")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model checkpoint directory [default: SAMESTYLE_MODEL or the shipped model].")
@click.pass_obj
def command(settings, catalogue, fmt, id_col, title_col, image_col, category_col, attr_cols, encoder_kind,
            batch_size, encode_workers, limit, dead_letter, max_failures, photo_concurrency, photo_timeout,
            photo_retries, progress, as_json, collection, model_dir):
    """Load CATALOGUE (CSV, JSONL or Parquet) into the product collection.

    \b
    - Upsert by id; a product whose title, photo, attributes and model are unchanged
      since the last run is skipped without encoding (content hash).
    - Killed at any point, the next run with the same arguments picks up where it
      stopped and ends with the collection a clean run would have made.
    - Bad records (missing id, unreadable or oversize photo, neither photo nor title,
      invalid UTF-8, oversize fields, a repeated id: the first record wins) go to the
      dead-letter JSONL with line, id, field and reason; all good records load.
    - Exit code 1 only when rejected records pass --max-failures.

    Photos: a path relative to the catalogue (it must stay inside the catalogue's
    folder or a --photo-root), a data: URI or an http(s) URL (loopback, private and
    link-local hosts refused unless --allow-private-hosts / --allow-network).
    A product without a photo stores a zero image_vec and has_image=false (queries
    filter on has_image / has_text).
    """
    from samestyle.loaders.jobs import ingest_catalogue, open_encoder
    from samestyle.store import Store

    args = build_jobs_args(settings, fmt=fmt, id_col=id_col, title_col=title_col, image_col=image_col,
                           category_col=category_col, attr_cols=attr_cols, batch_size=batch_size,
                           encode_workers=encode_workers, encoder_kind=encoder_kind, limit=limit,
                           photo_concurrency=photo_concurrency, photo_timeout=photo_timeout,
                           photo_retries=photo_retries)
    bar = Progress(progress, "ingest", limit)
    # The encoder first: starting a local Triton (a fork) before gRPC threads exist keeps gRPC quiet.
    with open_encoder(settings, encoder_kind, model_dir) as encoder, Store.open(settings) as store:
        try:
            report = ingest_catalogue(catalogue, store=store, encoder=encoder, collection=collection,
                                      dead_letter=dead_letter, max_failures=max_failures, progress=bar, **args)
        finally:
            bar.close()
    emit(report, as_json, lambda r: render_report(r, "ingested"))
    if report["threshold_exceeded"]:
        raise SystemExit(1)

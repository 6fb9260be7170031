"""`samestyle reindex CATALOGUE --model DIR`: zero-downtime model upgrade."""

from __future__ import annotations

import click

from ._ingest import Progress, build_jobs_args, ingest_options, render_report
from .common import emit


@click.command("reindex")
@ingest_options
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="The new model's checkpoint directory [default: SAMESTYLE_MODEL or the shipped model].")
@click.option("--force", is_flag=True, help="Rebuild even when the alias already holds this model.")
@click.pass_obj
def command(settings, catalogue, fmt, id_col, title_col, image_col, category_col, attr_cols, encoder_kind,
            batch_size, encode_workers, limit, dead_letter, max_failures, photo_concurrency, photo_timeout,
            photo_retries, progress, as_json, model_dir, force):
    """Re-embed CATALOGUE with a new model into the next products_v<N> and switch the
    alias `products` (SAMESTYLE_COLLECTION) to it once it is complete.

    \b
    Readers keep using the current collection until the switch, which is atomic on
    the server. The alias does not move when failures pass --max-failures or the new
    collection does not hold every accepted product; exit code 1 then. Interrupted,
    a re-run resumes into the same new collection. Old versions stay until dropped
    with `samestyle collections --drop products_v<N>`.
    """
    from samestyle.loaders.jobs import open_encoder, reindex_catalogue
    from samestyle.store import Store

    args = build_jobs_args(settings, fmt=fmt, id_col=id_col, title_col=title_col, image_col=image_col,
                           category_col=category_col, attr_cols=attr_cols, batch_size=batch_size,
                           encode_workers=encode_workers, encoder_kind=encoder_kind, limit=limit,
                           photo_concurrency=photo_concurrency, photo_timeout=photo_timeout,
                           photo_retries=photo_retries)
    bar = Progress(progress, "reindex", limit)
    # The encoder first: starting a local Triton (a fork) before gRPC threads exist keeps gRPC quiet.
    with open_encoder(settings, encoder_kind, model_dir) as encoder, Store.open(settings) as store:
        try:
            report = reindex_catalogue(catalogue, store=store, encoder=encoder, dead_letter=dead_letter,
                                       max_failures=max_failures, force=force, progress=bar, **args)
        finally:
            bar.close()
    emit(report, as_json, lambda r: render_report(r, "reindexed"))
    if not report["switched"]:
        raise SystemExit(1)

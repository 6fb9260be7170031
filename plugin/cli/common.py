"""Options and helpers shared by several verbs. The report output (`emit`, `--json`,
`progress_enabled`) is samestyle.output's, shared with the benchmarks."""

from __future__ import annotations

import click

from ..output import emit, json_option, progress_enabled

__all__ = ["catalogue_columns", "emit", "json_option", "progress_enabled"]


def catalogue_columns(f):
    """Column mapping options, the same for ingest, eval and dedup."""
    opts = [
        click.option("--id-col", default="id", show_default=True, envvar="SAMESTYLE_ID_COL", help="Product id column."),
        click.option("--title-col", default="title", show_default=True, envvar="SAMESTYLE_TITLE_COL", help="Title column."),
        click.option("--image-col", default="image", show_default=True, envvar="SAMESTYLE_IMAGE_COL",
                     help="Photo column: a path relative to the catalogue file, a data: URI or an http(s) URL."),
        click.option("--category-col", default="articleType", show_default=True, envvar="SAMESTYLE_CATEGORY_COL",
                     help="Leaf category column (Milvus partition key)."),
        click.option("--attr-col", "attr_cols", multiple=True, help="Extra attribute column to store (repeatable)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


"""Options and helpers shared by several verbs."""

from __future__ import annotations

import json
import sys

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


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


def emit(obj, as_json: bool, human=None) -> None:
    """JSON on stdout for machines, or a human rendering."""
    if as_json:
        click.echo(json.dumps(obj, indent=2, default=str))
    elif human is not None:
        human(obj)
    else:
        click.echo(json.dumps(obj, indent=2, default=str))


def progress_enabled() -> bool:
    return sys.stderr.isatty()

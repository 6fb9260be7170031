"""`samestyle collections`: versions, aliases, counts and models."""

from __future__ import annotations

import click

from .common import emit, json_option


@click.command("collections")
@click.option("--drop", "drop", multiple=True, metavar="NAME",
              help="Drop an old version (never one an alias points at). Repeatable.")
@json_option
@click.pass_obj
def command(settings, drop, as_json):
    """List the product collections: version, aliases, row count, model version,
    dimension and state (building / complete)."""
    from samestyle.store import Store

    with Store.open(settings) as store:
        for name in drop:
            store.drop(name)
        infos = [i.to_dict() for i in store.list()]
    out = {"uri": settings.resolved_milvus_uri, "alias": settings.collection,
           "alias_target": next((i["name"] for i in infos if settings.collection in i["aliases"]), None),
           "dropped": list(drop), "collections": infos}

    def human(o):
        for name in o["dropped"]:
            click.echo(f"dropped {name}")
        if not o["collections"]:
            click.echo(f"no collections at {o['uri']} (load one with `samestyle ingest CATALOGUE`)")
            return
        click.echo(f"{'collection':24s} {'aliases':14s} {'count':>9s}  {'dim':>4s}  {'state':9s} model")
        for c in o["collections"]:
            click.echo(f"{c['name']:24s} {','.join(c['aliases']) or '-':14s} {c['count']:>9d}  "
                       f"{c['embed_dim'] or '-':>4}  {c['state'] or '-':9s} {c['model_version'] or '-'}")

    emit(out, as_json, human)

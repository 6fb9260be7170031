"""`samestyle delete IDS... | --file FILE`: remove products from the collection by id."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import emit, json_option
from samestyle.errors import InputError


def _read_ids(path: Path) -> list[str]:
    """One id per line (`-` = stdin); blank lines skipped, surrounding spaces dropped."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip()]


@click.command("delete")
@click.argument("ids", nargs=-1)
@click.option("--file", "-f", "id_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              default=None, help="A file of ids, one per line ('-' reads stdin).")
@click.option("--collection", default=None, help="Alias (or products_v<N>) [default: SAMESTYLE_COLLECTION].")
@click.option("--dry-run", is_flag=True, help="Say which ids exist and would be deleted; delete nothing.")
@json_option
@click.pass_obj
def command(settings, ids, id_file, collection, dry_run, as_json):
    """Delete products by id: the ids given, or those listed in --file.

    \b
    Prints the ids deleted and those that were not there (not an error). To remove
    every product a full catalogue no longer lists, use `samestyle ingest CATALOGUE
    --sync` instead.
    """
    from samestyle import products as P
    from samestyle.store import Store

    wanted = list(ids)
    if id_file is not None:
        try:
            wanted += _read_ids(id_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the id file [{id_file}]: {exc}", field="--file",
                             fix="one id per line, UTF-8") from None
    if not wanted:
        raise InputError("no product ids given", field="ids",
                         fix="e.g. `samestyle delete 15970 39386` or `samestyle delete --file gone.txt`")
    with Store.open(settings, alias=collection) as store:
        if dry_run:
            name = P._target(store)
            store.ensure_loaded(name)
            present = set(store.fetch(name, wanted, [store.spec.by_role("id").name]))
            uniq = list(dict.fromkeys(wanted))
            out = {"collection": store.alias, "dry_run": True, "would_delete": [i for i in uniq if i in present],
                   "missing": [i for i in uniq if i not in present]}
        else:
            out = P.delete(wanted, store=store, settings=settings, collection=collection)

    def human(o):
        done = o.get("would_delete", o.get("deleted", []))
        verb = "would delete" if o.get("dry_run") else "deleted"
        click.echo(f"{verb} {len(done)} products from {o['collection']}"
                   + (f"; {len(o['missing'])} ids were not there" if o["missing"] else ""))
        for pid in o["missing"][:20]:
            click.echo(f"  not there: {pid}")

    emit(out, as_json, human)

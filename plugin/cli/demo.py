"""`samestyle demo`: the main job end to end on the embedded default. Generates a small
catalogue, starts a local Triton, ingests into embedded Milvus Lite, and shows each
kind of same-style search."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import click

from .. import serve
from .common import emit, json_option
from .search import _table
from samestyle.loaders.synthetic import generate


@click.command("demo")
@click.option("--products", "n_groups", default=40, show_default=True, help="Style groups to generate (3 products each on average).")
@click.option("--fresh", is_flag=True, help="Start from an empty demo directory.")
@json_option
@click.pass_obj
def command(settings, n_groups, fresh, as_json):
    """Generate a catalogue under $SAMESTYLE_DATA_DIR/demo, ingest it through Triton into
    Milvus Lite, and run a product, text, photo and photo+modifier search.

    Everything is started for you and stopped at the end; run it twice and the second
    ingest skips every unchanged product."""
    from samestyle.loaders.jobs import ingest_catalogue
    from samestyle.loaders.transform import ColumnMap

    from ..query.search import Searcher, SearchOptions
    from ..store.collections import Store
    root = Path(settings.data_dir) / "demo"
    if fresh and root.exists():
        shutil.rmtree(root)
    separate = _separate_data_dir(settings, root)
    if separate:
        settings = replace(settings, data_dir=root, milvus_uri=None)
    cat = generate(root / "catalogue", n_groups=n_groups)
    log = (lambda *a, **k: None) if as_json else click.echo
    log(f"catalogue: {cat.n_products} generated products in {len(cat.groups)} style groups -> {cat.csv_path}")
    out: dict = {"catalogue": str(cat.csv_path), "products": cat.n_products, "data_dir": str(settings.data_dir)}
    with serve.encoder_for(settings) as enc, Store.open(settings) as store:
        log(f"encoder: Triton at {enc.url} serving model {enc.model_version}")
        report = ingest_catalogue(cat.csv_path, store=store, encoder=enc, columns=ColumnMap(),
                                  data_dir=settings.data_dir)
        out["ingest"] = report
        log(f"ingest: loaded {report['loaded']}, unchanged {report['unchanged']}, failed {report['failed']}; "
            f"{report['count']} products in Milvus Lite ({settings.resolved_milvus_uri})")
        original, duplicate = cat.duplicates[0]
        photo = cat.root / f"images/{original}.jpg"
        if not photo.exists():
            photo = cat.root / f"images/{original}.png"
        searcher = Searcher.from_settings(settings, encoder=enc)
        opts = SearchOptions(k=5)
        try:
            searches = {
                f"product {original} (its re-listed duplicate is {duplicate})": searcher.by_product(original, opts),
                "text 'red striped t-shirt'": searcher.by_text("red striped t-shirt", "text", opts),
                "text 'red striped t-shirt' against photos (cross-modal)": searcher.by_text("red striped t-shirt", "image", opts),
                f"photo {photo.name}": searcher.by_photo(photo, opts),
                f"photo {photo.name} + 'but in black'": searcher.by_photo_text(photo, "but in black", opts),
            }
        finally:
            searcher.close()
    if not separate:
        (root / OWNER).write_text("the demo loaded the collection [products] of this data dir\n")
    out["searches"] = {name: res.to_dict() for name, res in searches.items()}
    out["next"] = _next_commands(settings, separate, original, photo)
    if as_json:
        emit(out, True)
        return
    for name, res in out["searches"].items():
        click.echo(f"\n== {name}")
        _table(res)
    click.echo("\nNext, on the same data:")
    for line in out["next"]:
        click.echo(f"  {line}")


OWNER = ".loaded-products"  # in <data dir>/demo: the demo made <data dir>'s products collection


def _separate_data_dir(settings, root: Path) -> bool:
    """The demo loads the data dir's own `products` collection (or the Milvus a running
    serve advertises), so the commands a user types next (`samestyle search --product
    ...`) find its products; unless that collection already holds something the demo did
    not make: then the demo keeps to <data dir>/demo, and says so."""
    if settings.collection != "products":
        return True
    if (root / OWNER).exists():
        return False
    if not settings.milvus_uri and not Path(settings.embedded_milvus_uri).exists():
        return False
    from ..store.collections import Store

    with Store.open(settings) as store:
        return bool(store.alias_target("products") or store.exists("products"))


def _next_commands(settings, separate: bool, pid: str, photo: Path) -> list[str]:
    env = f"SAMESTYLE_DATA_DIR={settings.data_dir} " if separate else ""
    return [
        f"{env}samestyle search --product {pid}",
        f'{env}samestyle search --text "red striped t-shirt" --filter gender=Men --columns brand,price',
        f'{env}samestyle search --image {photo} --modifier "but in black"',
        f"{env}samestyle search --product {pid} --group-by brand",
        f"{env}samestyle dedup --threshold 0.95",
        f"{env}samestyle serve   # keeps Triton and Milvus up: every command above answers in about a second; "
        "search page at http://127.0.0.1:8000",
    ]

"""`samestyle search`: same-style search by product id, phrase, photo, or photo plus
modifier words, over the Python API in samestyle.query.search."""

from __future__ import annotations

import click

from .. import contract as C
from ..errors import InputError
from .common import emit, json_option

SHORT = {"image_vec": "image", "text_vec": "text", "fused_vec": "fused"}


def _split(values: tuple[str, ...]) -> list[str]:
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def parse_weights(text: str | None) -> list[float] | dict[str, float] | None:
    """'0.7,0.3' (one per field, in --fields order) or 'image=0.7,text=0.3'."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--weights [{text}] is not a list of numbers", field="weights",
                         fix="e.g. --weights 0.7,0.3 or --weights image=0.7,text=0.3") from None


def _table(res: dict) -> None:
    hits = res["hits"]
    q = res["query"]
    what = ", ".join(f"{k}={v!r}" for k, v in q.items() if v not in (None, False))
    click.echo(f"{res['search_type']} search ({what}) on {', '.join(res['fields'])}"
               + (f", weights {', '.join(f'{SHORT[f]}={w:.2f}' for f, w in res['weights'].items())}"
                  f" ({res['ranker']}, profile {res['profile']})" if len(res["fields"]) > 1 else "")
               + f": {len(hits)} hits in {res['took_ms']:.0f} ms")
    if res["filter"]:
        click.echo(f"filter: {res['filter']}")
    if not hits:
        click.echo("no hits")
        return
    click.echo(f"{'#':>4}  {'id':<12} {'score':>6} {'sim':>6}  {'image':>6} {'text':>6} {'fused':>6}  "
               f"{'matched':<7} {'category':<14} {'brand':<12} title")
    for h in hits:
        e = h["entity"]
        sc = h["scores"]
        click.echo(f"{h['rank']:>4}  {h['id'][:12]:<12} {h['score']:6.3f} {h['similarity']:6.3f}  "
                   + " ".join(f"{sc.get(f, float('nan')):6.3f}" for f in SHORT)
                   + f"  {SHORT.get(h['matched'], h['matched']):<7} {str(e.get('category') or '')[:14]:<14} "
                   f"{str(e.get('brand') or '')[:12]:<12} {str(e.get('title') or '')[:60]}")


def _batch_table(res: dict) -> None:
    for r in res["results"].values():
        _table(r)
        click.echo()
    for pid, e in res["errors"].items():
        click.echo(f"product [{pid}]: {e['message']}", err=True)
    click.echo(f"{len(res['results'])} products searched, {len(res['errors'])} failed, {res['calls']} Milvus calls, "
               f"{res['took_ms']:.0f} ms")


@click.command("search")
@click.option("--product", "product_id", metavar="ID", help="Find the same style as this stored product.")
@click.option("--products", "products_file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Same-style search for every product id in FILE (one per line, - for stdin), batched into as "
                   "few Milvus calls as possible. Ids that fail are reported and never stop the others.")
@click.option("--text", metavar="T", help="Find products matching a phrase.")
@click.option("--image", "image", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="Find products that look like this photo.")
@click.option("--modifier", metavar="T", help='With --image: words that change it ("but white"), encoded with the '
                                              "photo as one fused query.")
@click.option("--target", type=click.Choice(list(("text", "image", "fused", "all"))), default="text",
              show_default=True, help="With --text: search titles, photos (cross-modal), fused vectors, or all.")
@click.option("--fields", "fields", multiple=True, metavar="F[,F]",
              help="Vector fields to search (image_vec, text_vec, fused_vec or image, text, fused); several make one "
                   "hybrid search. [default: fused for --product, text for --text, image for --image]")
@click.option("--weights", metavar="W[,W]", help="Weights of the fields: '0.7,0.3' in --fields order, or "
                                                 "'image=0.7,text=0.3'. [default: the category's profile]")
@click.option("--ranker", type=click.Choice(["weighted", "rrf"]), default="weighted", show_default=True,
              help="How a hybrid search merges its fields.")
@click.option("--filter", "filters", multiple=True, metavar="K=V",
              help="Scalar filter, repeatable: brand=Puma (repeat a key for any of several), brand!=X, price<=999, "
                   "price>10, brand^=Pu (prefix). Values are taken literally.")
@click.option("--group-by", metavar="FIELD", help="One hit per value of this field (e.g. brand).")
@click.option("--floor", type=float, metavar="X", help="Drop hits whose similarity is below X (cosine, -1..1).")
@click.option("-k", "k", type=click.IntRange(1, C.MAX_SEARCH_K), default=10, show_default=True,
              envvar="SAMESTYLE_SEARCH_K", help="Hits per page.")
@click.option("--offset", type=click.IntRange(0, C.MAX_SEARCH_OFFSET), default=0, show_default=True,
              help="Hits to skip (pagination).")
@click.option("--exclude", "exclude", multiple=True, metavar="ID", help="Never return this product (repeatable).")
@click.option("--keep-self", is_flag=True, help="With --product: keep the query product in the hits.")
@click.option("--collection", metavar="NAME", help="Collection or alias. [default: SAMESTYLE_COLLECTION or products]")
@json_option
@click.pass_obj
def command(settings, product_id, products_file, text, image, modifier, target, fields, weights, ranker, filters,
            group_by, floor, k, offset, exclude, keep_self, collection, as_json):
    """Same-style search: by product, phrase, photo, or photo + modifier.

    \b
    Examples:
      samestyle search --product 15970
      samestyle search --text "red striped polo" --target all --filter gender=Men
      samestyle search --image dress.jpg --modifier "but white" -k 20
      samestyle search --product 15970 --fields image,text --weights 0.7,0.3 --group-by brand
      samestyle search --products new_listings.txt --json > matches.json

    A product search needs only Milvus; text and photo searches also need the encoder
    (SAMESTYLE_TRITON_URL, or a local Triton started for the command).
    """
    from ..query.search import Searcher, SearchOptions

    given = [n for n, v in (("--product", product_id), ("--products", products_file), ("--text", text),
                            ("--image", image)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --product, --products, --text, --image")
    if modifier and not image:
        raise click.UsageError("--modifier goes with --image")
    opts = SearchOptions(k=k, offset=offset, fields=_split(fields) or None, weights=parse_weights(weights),
                         ranker=ranker, filters=list(filters), group_by=group_by, floor=floor,
                         exclude=list(exclude), exclude_self=not keep_self, target=target)
    searcher = Searcher.from_settings(settings, collection=collection)
    if products_file:
        ids = [line.strip() for line in products_file if line.strip()]
        try:
            searcher.check(opts)
            batch = searcher.by_products(ids, opts)
        finally:
            searcher.close()
        emit(batch.to_dict(), as_json, _batch_table)
        return
    encoder = None
    try:
        searcher.check(opts)  # a missing collection or a bad filter fails here, before an encoder starts
        if not product_id:
            from ..serve import encoder_for

            encoder = searcher.encoder = encoder_for(settings)
        if product_id:
            res = searcher.by_product(product_id, opts)
        elif text:
            res = searcher.by_text(text, target, opts)
        elif modifier:
            res = searcher.by_photo_text(image, modifier, opts)
        else:
            res = searcher.by_photo(image, opts)
    finally:
        searcher.close()
        if encoder is not None:
            encoder.close()
    emit(res.to_dict(), as_json, _table)

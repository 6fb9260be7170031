"""`samestyle search`: same-style search by product id, phrase, photo, or photo plus
modifier words, over the Python API in samestyle.query.search."""

from __future__ import annotations

import click

from .. import contract as C
from ..errors import InputError
from .. import serve
from ._remote import search_remote
from .common import emit, json_option

SHORT = {f: v for v, f in C.VECTOR_FIELDS.items()}  # image_vec -> image


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


# Entity keys that are the row's machinery, not the catalogue's attributes.
_INTERNAL = {"title", "image_uri", "category", "content_hash", "model_version", "has_image", "has_text", "id"}
DEFAULT_ATTR_COLUMNS = 3


def _columns(hits: list[dict], wanted: list[str] | None) -> list[str]:
    """The attribute columns of the table: `wanted` (--columns; "all" = every one), or
    the category and the first few attributes that some hit has a value for."""
    present: list[str] = []
    for h in hits:
        for key, value in h["entity"].items():
            if key not in _INTERNAL and key not in present and value not in (None, ""):
                present.append(key)
    if wanted:
        if wanted == ["all"]:
            return present
        stored = {key for h in hits for key in h["entity"]}
        return [c for c in (_stored_column(w, stored) for w in wanted) if c != "title"]
    return ["category", *present[:DEFAULT_ATTR_COLUMNS]]


def _stored_column(name: str, stored: set[str]) -> str:
    """A --columns name as the hits hold it: the name itself when stored, else the name
    ingest stores that catalogue column under (`baseColour` -> `colour`, through
    samestyle.loaders.transform.stored_name, the naming ingest uses). Neither: an
    InputError (exit 2) listing the stored attribute names, instead of an empty column."""
    if name in stored:
        return name
    from samestyle.loaders.transform import stored_name  # as the other commands import the loaders
    from samestyle.store.spec import load_collection_spec

    mapped = stored_name(name, load_collection_spec())
    if mapped in stored:
        return mapped
    names = sorted(k for k in stored if k not in _INTERNAL or k == "category")
    raise InputError(f"--columns [{name}] is not an attribute stored with these hits"
                     + (f" (ingest stores that catalogue column as [{mapped}])" if mapped != name else ""),
                     field="columns", fix=f"name stored attributes: {', '.join(names)} (or 'all')")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(res: dict, columns: list[str] | None = None) -> None:
    hits = res["hits"]
    cols = _columns(hits, columns) if hits else []  # a bad --columns fails before anything is printed
    q = res["query"]
    what = ", ".join(f"{k}={v!r}" for k, v in q.items() if v not in (None, False))
    click.echo(f"{res['search_type']} search ({what}) on {', '.join(res['fields'])}"
               + (f", weights {', '.join(f'{SHORT[f]}={w:.2f}' for f, w in res['weights'].items())}"
                  f" ({res['ranker']}, profile {res['profile']})" if len(res["fields"]) > 1 else "")
               + (f", colour {res['colour']:g}" if res.get("colour") is not None else "")
               + f": {len(hits)} hits in {res['took_ms']:.0f} ms")
    if res["filter"]:
        click.echo(f"filter: {res['filter']}")
    if not hits:
        click.echo("no hits")
        return
    # Ids are printed whole, so they can be pasted back (`--product ID`).
    wid = max(2, *(len(h["id"]) for h in hits))
    width = {c: min(24, max(len(c), *(len(_cell(h["entity"].get(c))) for h in hits))) for c in cols}
    click.echo(f"{'#':>4}  {'id':<{wid}} {'score':>6} {'sim':>6}  {'image':>6} {'text':>6} {'fused':>6}  "
               f"{'matched':<7} " + "".join(f"{c:<{width[c]}} " for c in cols) + "title")
    for h in hits:
        e = h["entity"]
        sc = h["scores"]
        click.echo(f"{h['rank']:>4}  {h['id']:<{wid}} {h['score']:6.3f} {h['similarity']:6.3f}  "
                   + " ".join(f"{sc.get(f, float('nan')):6.3f}" for f in SHORT)
                   + f"  {SHORT.get(h['matched'], h['matched']):<7} "
                   + "".join(f"{_cell(e.get(c))[:width[c]]:<{width[c]}} " for c in cols)
                   + f"{str(e.get('title') or '')[:60]}")


def _batch_table(res: dict, columns: list[str] | None = None, what: str = "product") -> None:
    for r in res["results"].values():
        _table(r, columns)
        click.echo()
    for pid, e in res["errors"].items():
        click.echo(f"{what} [{pid}]: {e['message']}", err=True)
    plural = "queries" if what == "query" else what + "s"
    click.echo(f"{len(res['results'])} {plural} searched, {len(res['errors'])} failed, {res['calls']} Milvus calls, "
               f"{res['took_ms']:.0f} ms")


@click.command("search")
@click.option("--product", "product_id", metavar="ID", help="Find the same style as this stored product.")
@click.option("--products", "products_file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Same-style search for every product id in FILE (one per line, - for stdin), batched into as "
                   "few Milvus calls as possible. Ids that fail are reported and never stop the others.")
@click.option("--texts", "texts_file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Search every phrase in FILE (one per line, - for stdin): encoded together, batched into as few "
                   "Milvus calls as possible; results keyed by line position among the non-empty lines (0, 1, ...).")
@click.option("--images", "images_file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Search every photo path listed in FILE (one per line), batched like --texts.")
@click.option("--text", metavar="T", help="Find products matching a phrase.")
@click.option("--image", "image", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="Find products that look like this photo.")
@click.option("--modifier", metavar="T", help='With --image: words that change it ("but white"), encoded with the '
                                              "photo as one fused query.")
@click.option("--target", type=click.Choice(C.TEXT_TARGETS), default="text",
              show_default=True, help="With --text: search titles, photos (cross-modal), fused vectors, or all.")
@click.option("--fields", "fields", multiple=True, metavar="F[,F]",
              help="Vector fields to search (image_vec, text_vec, fused_vec or image, text, fused); several make one "
                   "hybrid search. [default: fused for --product, text for --text, image for --image]")
@click.option("--weights", metavar="W[,W]", help="Weights of the fields: '0.7,0.3' in --fields order, or "
                                                 "'image=0.7,text=0.3'. [default: the category's profile]")
@click.option("--ranker", type=click.Choice(C.RANKERS), default="weighted", show_default=True,
              help="How a hybrid search merges its fields.")
@click.option("--filter", "filters", multiple=True, metavar="K=V",
              help="Scalar filter, repeatable: brand=Puma (repeat a key for any of several), brand!=X, price<=999, "
                   "price>10, brand^=Pu (prefix). Values are taken literally.")
@click.option("--group-by", metavar="FIELD", help="One hit per value of this field (e.g. brand).")
@click.option("--floor", type=float, metavar="X", help="Drop hits whose similarity is below X (cosine, -1..1).")
@click.option("--colour", type=click.FloatRange(0.0, 1.0), metavar="W",
              help="How much the query's colour counts (0..1): 0 = the same style in any colour, 1 = as the model "
                   "encodes it. No effect for a model that keeps no colour apart. [default: 1 for --image with "
                   "--modifier, else 0]")
@click.option("-k", "k", type=click.IntRange(1, C.MAX_SEARCH_K), default=10, show_default=True,
              envvar="SAMESTYLE_SEARCH_K", help="Hits per page.")
@click.option("--offset", type=click.IntRange(0, C.MAX_SEARCH_OFFSET), default=0, show_default=True,
              help="Hits to skip (pagination).")
@click.option("--exclude", "exclude", multiple=True, metavar="ID", help="Never return this product (repeatable).")
@click.option("--keep-self", is_flag=True, help="With --product: keep the query product in the hits.")
@click.option("--collection", metavar="NAME", help="Collection or alias. [default: SAMESTYLE_COLLECTION or products]")
@click.option("--columns", "columns", metavar="C[,C]",
              help="Attribute columns of the table (any stored attribute, e.g. brand,price, or the catalogue's "
                   "column name, e.g. baseColour for colour; 'all' for every one). "
                   "[default: category and the first attributes the hits have]")
@click.option("--encoder", type=click.Choice(["triton", "onnx"]), default="triton", show_default=True,
              help="Text and photo queries: Triton (a running `samestyle serve`, SAMESTYLE_TRITON_URL, or a local "
                   "Triton started for the command) or in-process ONNX Runtime (no server).")
@json_option
@click.pass_context
def command(ctx, product_id, products_file, texts_file, images_file, text, image, modifier, target, fields, weights, ranker, filters,
            group_by, floor, colour, k, offset, exclude, keep_self, collection, columns, encoder, as_json):
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
    settings = ctx.obj
    given = [n for n, v in (("--product", product_id), ("--products", products_file), ("--text", text),
                            ("--image", image), ("--texts", texts_file), ("--images", images_file)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --product, --products, --text, --image, --texts, --images")
    if modifier is not None and image is None:
        raise click.UsageError("--modifier goes with --image")
    for name, value in (("product", product_id), ("text", text), ("modifier", modifier)):
        if value is not None and not value.strip():
            raise InputError(f"--{name} is empty", field=name, fix=f"give --{name} a value")
    cols = _split((columns,)) if columns else None
    request = {
        "k": k, "offset": offset, "fields": _split(fields) or None, "weights": parse_weights(weights),
        "ranker": ranker, "filters": list(filters) or None, "group_by": group_by, "floor": floor,
        "colour": colour,
        "exclude": list(exclude), "exclude_self": not keep_self,
    }
    ids = None
    if products_file is not None:
        ids = [line.strip() for line in products_file if line.strip()]
        if not ids:
            raise InputError("--products names no product ids", field="products", fix="one product id per line")
    if texts_file is not None or images_file is not None:  # batches run here (one encoder batch)
        lines = [x.strip() for x in (texts_file or images_file) if x.strip()]
        if not lines:
            raise InputError(f"--{'texts' if texts_file else 'images'} file is empty", field="texts",
                             fix="one query per line")
        res = _search_here(settings, None, None, None, target, None, None, collection, request, encoder,
                           texts=lines if texts_file else None, images=None if texts_file else lines)
        emit(res, as_json, lambda r: _batch_table(r, cols, "query"))
        return
    stack = ctx.meta.get("samestyle.stack") or {}
    if stack.get("http_url") and encoder == "triton":
        res = search_remote(stack, settings, product_id=product_id, ids=ids, text=text, target=target,
                            image=image, modifier=modifier, collection=collection, options=request)
        if res is not None:
            emit(res, as_json, (lambda r: _batch_table(r, cols)) if ids is not None else (lambda r: _table(r, cols)))
            return
    res = _search_here(settings, product_id, ids, text, target, image, modifier, collection, request, encoder)
    emit(res, as_json, (lambda r: _batch_table(r, cols)) if ids is not None else (lambda r: _table(r, cols)))


def _search_here(settings, product_id, ids, text, target, image, modifier, collection, request, encoder_kind,
                 texts=None, images=None):
    """The search in this process: Milvus through pymilvus, the encoder from Triton or
    in-process ONNX Runtime."""
    from ..query.search import Searcher, SearchOptions

    opts = SearchOptions(**{k: v for k, v in request.items() if v is not None}, target=target)
    searcher = Searcher.from_settings(settings, collection=collection)
    enc = None
    try:
        searcher.check(opts)  # a missing collection or a bad filter fails here, before an encoder starts
        if ids is not None:
            return searcher.by_products(ids, opts).to_dict()
        if texts is not None or images is not None:
            enc = searcher.encoder = open_encoder(settings, encoder_kind)
            batch = searcher.by_texts(texts, target, opts) if texts is not None else searcher.by_photos(images, opts)
            return batch.to_dict()
        if product_id is None:
            enc = searcher.encoder = open_encoder(settings, encoder_kind)
        if product_id is not None:
            res = searcher.by_product(product_id, opts)
        elif text is not None:
            res = searcher.by_text(text, target, opts)
        elif modifier is not None:
            res = searcher.by_photo_text(image, modifier, opts)
        else:
            res = searcher.by_photo(image, opts)
        return res.to_dict()
    finally:
        searcher.close()
        if enc is not None:
            enc.close()


def open_encoder(settings, kind: str = "triton"):
    """An encoder for a CLI command: in-process ONNX Runtime, or Triton (the configured
    or advertised one; else a local one, started now, with a note on stderr)."""
    if kind == "onnx":
        from ..encoders.onnx import OnnxEncoder
        from ..serve.stack import onnx_bundle

        return OnnxEncoder(onnx_bundle(settings.model_dir))
    return serve.encoder_for(settings)

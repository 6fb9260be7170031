"""Options and rendering shared by `ingest` and `reindex` (not a verb: the leading
underscore keeps it out of the command list)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click
from click.core import ParameterSource

from ..bars import progress_bar
from .common import catalogue_columns, json_option, progress_enabled
from samestyle.loaders.photos import PhotoOptions


def ingest_options(f):
    """CATALOGUE, column mapping, encoder, batching, photo fetching, failure policy."""
    opts = [
        click.argument("catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default=None,
                     help="Catalogue format (default: from the file name)."),
        catalogue_columns,
        click.option("--encoder", "encoder_kind", type=click.Choice(["triton", "onnx"]), default="triton",
                     show_default=True, envvar="SAMESTYLE_ENCODER",
                     help="triton: Triton (SAMESTYLE_TRITON_URL, or a local one started for the run); "
                          "onnx: in-process ONNX Runtime, no server."),
        click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True,
                     envvar="SAMESTYLE_BATCH_SIZE", help="Products per encode call and per upsert."),
        click.option("--encode-workers", type=click.IntRange(1, 16), default=None, envvar="SAMESTYLE_ENCODE_WORKERS",
                     help="Batches encoding at once [default: 2 with Triton, 1 with onnx]."),
        click.option("--limit", type=click.IntRange(1), default=None,
                     help="Read only the first N records (a trial run on a big catalogue)."),
        click.option("--dead-letter", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="JSONL of rejected records (line, id, field, kind, reason) "
                          "[default: DATA_DIR/dead-letter/<catalogue>.<collection>.jsonl]."),
        click.option("--max-failures", default="5%", show_default=True, envvar="SAMESTYLE_MAX_FAILURES",
                     help="Exit non-zero past this many rejected records: a count (25) or a share (5%, 0.05)."),
        click.option("--photo-concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
                     envvar="SAMESTYLE_PHOTO_CONCURRENCY", help="Photos fetched in parallel."),
        click.option("--photo-timeout", type=click.FloatRange(0.1), default=10.0, show_default=True,
                     envvar="SAMESTYLE_PHOTO_TIMEOUT", help="Seconds per photo download attempt."),
        click.option("--photo-retries", type=click.IntRange(0, 10), default=2, show_default=True,
                     envvar="SAMESTYLE_PHOTO_RETRIES", help="Retries of a photo download (timeouts, 429, 5xx)."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr [default: when stderr is a terminal]."),
        *photo_policy_options,
        *csv_options,
        json_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _photo_policy(name: str, group: str = "photo_policy"):
    """Callback of the photo-confinement (and CSV dialect) options: they land in
    ctx.meta (not in every verb's signature) and build_jobs_args reads them there."""
    def store(ctx, param, value):
        ctx.meta.setdefault(group, {})[name] = value
        return value
    return store


photo_policy_options = [
    click.option("--photo-root", multiple=True, type=click.Path(file_okay=False, path_type=Path),
                 expose_value=False, callback=_photo_policy("roots"),
                 help="A folder local photo paths may point into, besides the catalogue's own (repeatable)."),
    click.option("--allow-file-uri", is_flag=True, default=False, envvar="SAMESTYLE_ALLOW_FILE_URI",
                 expose_value=False, callback=_photo_policy("allow_file_uri"),
                 help="Accept file:// photo references (still confined to the photo roots)."),
    click.option("--allow-private-hosts", is_flag=True, default=False, envvar="SAMESTYLE_ALLOW_PRIVATE_HOSTS",
                 expose_value=False, callback=_photo_policy("allow_private_hosts"),
                 help="Fetch photo URLs on loopback, private and link-local addresses (refused by default)."),
    click.option("--allow-network", multiple=True, expose_value=False, callback=_photo_policy("allow_networks"),
                 help="A network (CIDR, e.g. 10.1.2.0/24) photo URLs may point into although it is private "
                      "(repeatable)."),
]


csv_options = [
    click.option("--delimiter", default=None, expose_value=False, callback=_photo_policy("delimiter", "csv_options"),
                 help="CSV field delimiter, e.g. ';' or tab [default: the one of , ; tab | the header uses most; "
                      "tab for .tsv]."),
    click.option("--encoding", default=None, envvar="SAMESTYLE_ENCODING", expose_value=False,
                 callback=_photo_policy("encoding", "csv_options"),
                 help="Text encoding of a CSV catalogue, e.g. cp1252 [default: UTF-8, its BOM dropped; UTF-16 "
                      "when the file starts with a UTF-16 BOM]."),
]


class Progress:
    """tqdm bar with products/s and running counts; lives here, not in the pipeline."""

    def __init__(self, enabled: bool | None, desc: str, limit: int | None):
        self.enabled = progress_enabled() if enabled is None else enabled
        self.desc = desc
        self.limit = limit
        self.bar = None

    def start(self, source, checkpoint) -> None:
        if not self.enabled:
            return
        total = source.estimate_total()
        if self.limit is not None:
            total = min(total, self.limit) if total is not None else self.limit
        self.bar = progress_bar(total=total, unit="product", desc=self.desc, dynamic_ncols=True, smoothing=0.1,
                                initial=int(checkpoint.counts.get("read", 0)))

    def update(self, report, n: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loaded=report.loaded, unchanged=report.unchanged, failed=report.failed, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def build_jobs_args(settings, *, fmt, id_col, title_col, image_col, category_col, attr_cols, batch_size,
                    encode_workers, encoder_kind, limit, photo_concurrency, photo_timeout, photo_retries):
    from samestyle.loaders.pipeline import IngestOptions
    from samestyle.loaders.transform import ColumnMap

    ctx = click.get_current_context(silent=True)
    explicit = []
    if ctx is not None:  # a column the user named (option or env var) must exist; a default may be absent
        for role in ("id", "title", "image", "category"):
            if ctx.get_parameter_source(f"{role}_col") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
                explicit.append(role)
    columns = ColumnMap.from_options(id_col, title_col, image_col, category_col, attr_cols, explicit=explicit)
    options = IngestOptions(batch_size=batch_size, limit=limit,
                            encode_workers=encode_workers or (2 if encoder_kind == "triton" else 1))
    policy = dict(ctx.meta.get("photo_policy", {})) if ctx is not None else {}
    csv_opts = {k: v for k, v in (ctx.meta.get("csv_options", {}) if ctx is not None else {}).items() if v}
    try:
        for net in policy.get("allow_networks", ()):
            ipaddress.ip_network(net, strict=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-network") from None
    photos = PhotoOptions(timeout=photo_timeout, retries=photo_retries, concurrency=photo_concurrency,
                          roots=tuple(str(r) for r in policy.get("roots", ())),
                          allow_file_uri=bool(policy.get("allow_file_uri")),
                          allow_private_hosts=bool(policy.get("allow_private_hosts")),
                          allow_networks=tuple(policy.get("allow_networks", ())))
    return dict(columns=columns, data_dir=settings.data_dir, fmt=fmt, options=options, photo_options=photos,
                csv_options=csv_opts)


def render_report(r: dict, verb: str) -> None:
    """The human summary: counts, rate, reasons, where the dead letters are."""
    click.echo(f"{verb} {r['catalogue']} -> {r['collection']} (model {r['model_version']})")
    if r.get("resumed_from_line"):
        click.echo(f"  resumed from line {r['resumed_from_line']}: counts include the earlier runs, the rate is "
                   f"this run's ({r.get('read_this_run', r['read'])} records)")
    click.echo(f"  read {r['read']}: loaded {r['loaded']}, unchanged and skipped {r['unchanged']}, "
               f"failed {r['failed']}  ({r['products_per_s']} products/s over {r['seconds']:.1f} s)")
    for kind, n in (r.get("reasons") or {}).items():
        click.echo(f"    {n:6d}  {kind}")
    if r["failed"]:
        click.echo(f"  rejected records: {r['dead_letter']}")
    for note in r.get("notes") or ():
        click.secho(f"  note: {note}", fg="yellow")
    click.echo(f"  collection now holds {r['count']} products")
    if "switched" in r:
        if r["switched"]:
            click.echo(f"  alias {r['alias']}: {r.get('previous')} -> {r['collection']}")
        else:
            click.secho(f"  alias {r['alias']} left on {r.get('previous')}: {r.get('not_switched_because')}", fg="yellow")
    elif r.get("alias"):
        click.echo(f"  readers use the alias [{r['alias']}]")
    if r.get("sync"):
        sync = r["sync"]
        if sync.get("not_removed_because"):
            click.secho(f"  sync: {sync['remove_count']} products not in the catalogue were kept: "
                        f"{sync['not_removed_because']}", fg="yellow")
        else:
            click.echo(f"  sync: removed {len(sync.get('removed', []))} products not in the catalogue"
                       + (f" (forced: {sync['forced']})" if sync.get("forced") else ""))
    if r["threshold_exceeded"]:
        click.secho(f"  failures are over the threshold ({r['threshold']}): exit code 1", fg="red", err=True)


def render_sync_plan(r: dict, show: int = 20) -> None:
    """`ingest --sync --dry-run`: what would be removed, and whether the real run would be refused."""
    p = r["sync"]
    click.echo(f"sync {r['catalogue']} -> {r['collection'] or '(no collection yet)'} (dry run: nothing written)")
    click.echo(f"  stored {p['stored']}, listed in the catalogue {p['in_catalogue']}: would remove "
               f"{p['remove_count']} ({p['share']:.1%}, limit {p['max_share']:.0%})")
    for pid in p["remove"][:show]:
        click.echo(f"    {pid}")
    if p["remove_count"] > show:
        click.echo(f"    ... and {p['remove_count'] - show} more (--json lists them all)")
    if p["unreadable"]:
        click.echo(f"  {p['unreadable']} records have no readable id (lines {p['unreadable_lines'][:10]})")
    if p["refused"]:
        click.secho(f"  the run would be refused: {p['refused']} (--force to go ahead)", fg="yellow")
    elif p.get("forced"):
        click.secho(f"  --force: {p['forced']}", fg="yellow")

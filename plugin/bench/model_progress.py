"""`samestyle bench model-progress`: issue 17's target figures across model runs, read
from committed `samestyle eval --json` reports, as one table (JSON) and one picture.

No measuring happens here: every figure comes from a report a documented command wrote.
A report that lacks a direction (older runs had no modifier line) shows a gap, not a zero."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from ..output import emit, json_option
from . import out_option, save_report

KeyPath = tuple[str, ...]
# (label, where in the eval report — the first path a report has —, issue 17's target).
# Directions as served; title->own photo at full query colour, as docs/model.md tabulates
# it (a model without a colour part has no `with_colour`: its served line is the same).
METRICS: tuple[tuple[str, tuple[KeyPath, ...], float], ...] = (
    ("i→i R@1", (("directions", "i2i", "r@1"),), 0.45),
    ("t→i R@10", (("directions", "t2i", "r@10"),), 0.40),
    ("i→t R@10", (("directions", "i2t", "r@10"),), 0.40),
    ("title→own photo R@10", (("with_colour", "title->own photo", "r@10"), ("own_pair", "title->own photo", "r@10")),
     0.35),
    ("photo + colour word hit@10", (("modifier", "photo + colour word -> image_vec", "hit@10"),
                                    ("modifier", "photo + colour word", "hit@10")), 0.60),
    ("m→m R@1", (("directions", "m2m", "r@1"),), 0.93),
    ("t→t R@1", (("directions", "t2t", "r@1"),), 0.93),
)


def _get(report: dict, paths: tuple[KeyPath, ...]) -> float | None:
    for path in paths:
        node = report
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            return float(node)
    return None


def label_of(path: Path) -> str:
    """`model-eval-v15-title.json` -> `v15-title`."""
    return path.stem.removeprefix("model-eval-")


def progress(reports: dict[str, dict]) -> dict:
    """{run label: report} -> each metric's value per run (None where a report lacks
    it), its target, and whether the last run meets it. Pure."""
    rows = []
    for name, path, target in METRICS:
        values = {run: _get(r, path) for run, r in reports.items()}
        last = list(values.values())[-1] if values else None
        rows.append({"metric": name, "target": target, "values": values,
                     "last_meets_target": None if last is None else bool(last >= target)})
    return {"benchmark": "model-progress", "runs": list(reports),
            "model_versions": {run: r.get("model_version") for run, r in reports.items()}, "metrics": rows}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["metrics"]
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(rows) / cols), cols, figsize=(3.2 * cols, 5.6), squeeze=False)
    runs = report["runs"]
    xs = range(len(runs))
    for ax, row in zip(axes.flat, rows):
        ys = [row["values"][r] if row["values"][r] is not None else float("nan") for r in runs]
        ax.plot(xs, ys, marker="o")
        ax.axhline(row["target"], color="tab:red", ls="--", lw=1, label=f"target {row['target']:.2f}")
        ax.set_title(row["metric"], fontsize=9)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(runs, rotation=60, ha="right", fontsize=7)
        seen = [y for y in ys if not math.isnan(y)] + [row["target"]]
        pad = max(0.02, (max(seen) - min(seen)) * 0.15)
        ax.set_ylim(max(0.0, min(seen) - pad), min(1.0, max(seen) + pad))
        if seen[:-1]:
            last = max(i for i, y in enumerate(ys) if not math.isnan(y))
            ax.annotate(f"{ys[last]:.3f}", (last, ys[last]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle("issue 17 targets by model run (held-out style groups, 42k gallery; gaps: not measured)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _render(r: dict) -> None:
    click.echo(f"{'metric':28s} {'target':>6s} " + " ".join(f"{run[:16]:>16s}" for run in r["runs"]))
    for row in r["metrics"]:
        vals = " ".join(f"{'—' if v is None else f'{v:.3f}':>16s}" for v in row["values"].values())
        click.echo(f"{row['metric']:28s} {row['target']:6.2f} {vals}")


@click.command("model-progress")
@click.argument("reports", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--names", help="Comma-separated run names, one per report [default: from the file names, "
                               "model-eval-v15-title.json -> v15-title].")
@click.option("--plot-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw one panel per target metric, the runs in the order given.")
@out_option
@json_option
def command(reports, names, plot_file, out_path, as_json):
    """Issue 17's target figures across `samestyle eval --json` reports, in the order
    given (oldest first); reads nothing but those files.

    \b
    samestyle bench model-progress docs/benchmarks/model-eval-v{4,7-colour,11-colour-split}.json \\
        docs/benchmarks/model-eval-v14-tuned-tower.json --names run4,run7,run11,run14 \\
        --plot-file docs/model-progress.png
    """
    labels = [label_of(p) for p in reports]
    if names:
        labels = [n.strip() for n in names.split(",")]
        if len(labels) != len(reports) or len(set(labels)) != len(labels):
            raise click.BadParameter(f"{len(labels)} distinct names for {len(reports)} reports", param_hint="--names")
    loaded = {}
    for p, label in zip(reports, labels):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{p}: not a JSON report ({exc})", param_hint="REPORTS") from exc
        if not isinstance(r, dict) or "directions" not in r:
            raise click.BadParameter(f"{p}: no 'directions' key; is it a `samestyle eval --json` report?",
                                     param_hint="REPORTS")
        loaded[label] = r
    report = progress(loaded)
    if plot_file:
        plot(report, plot_file)
        report["plot"] = str(plot_file)
    save_report(report, out_path)
    emit(report, as_json, _render)

"""`samestyle bench dedup --plot`: the figure of a report, the threshold sweep (precision,
recall, F1 and the byte-identical photos linked, the recommended threshold marked)
beside the synthetic timing against catalogue size on log axes, with linear and
quadratic growth drawn for comparison."""

from __future__ import annotations

from pathlib import Path


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sw = report["relisting"]["sweep"]
    ts = [s["threshold"] for s in sw]
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        axes[0].plot(ts, [s[key] for s in sw], marker="o", label=label)
    axes[0].plot(ts, [s["byte_identical_recall"] for s in sw], ls="--", label="byte-identical photos linked")
    axes[0].axvline(report["recommended_threshold"], color="grey", lw=0.8)
    axes[0].set_xlabel(f"threshold ({report['field']})")
    axes[0].set_title(f"{report['relisting']['relists']} re-listings among {report['products']:,} products", fontsize=9)
    axes[0].legend(fontsize=8)
    syn = report.get("synthetic") or []
    if syn:
        ns = [s["rows"] for s in syn]
        axes[1].loglog(ns, [s["seconds"] for s in syn], marker="o", label="dedup (pairs + clusters)")
        axes[1].loglog(ns, [syn[0]["seconds"] * (n / ns[0]) ** 2 for n in ns], ls=":", label="quadratic")
        axes[1].loglog(ns, [syn[0]["seconds"] * (n / ns[0]) for n in ns], ls="--", label="linear")
        axes[1].set_xlabel("rows (synthetic, 48 categories)")
        axes[1].set_ylabel("seconds")
        axes[1].legend(fontsize=8)
        axes[1].set_title("dedup time against catalogue size", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

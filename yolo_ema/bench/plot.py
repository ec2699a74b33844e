"""plot.png: left, AP by size bucket per model (bars: mean over seeds, whiskers: min–max, dots: seeds); right, each
arm's difference from the baseline with its 95% interval over training seeds and validation images
(:func:`yolo_ema.bench.stats.seed_image_interval`)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from yolo_ema.data import fsio

GROUPS = (("AP", "all"), ("AP_very_tiny", "very_tiny\n<8²"), ("AP_tiny", "tiny\n8²–16²"))
GROUPS += (("AP_small", "small\n16²–32²"), ("AP_medium", "medium\n≥32²"))
FOREST = (("AP50", "AP50"), ("AP", "AP"), *((f"AP_{b}", b) for b in ("very_tiny", "tiny", "small", "medium")))
COLOURS = ("#7f8c8d", "#d35400", "#2874a6", "#229954", "#8e44ad", "#b7950b", "#cb4335", "#17a589")


def write(report: dict, path: str | Path) -> Path:
    """Draw the chart of a built report (see :func:`yolo_ema.bench.report.build`) to ``path`` (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metrics, labels = report["metrics"], report["models"]
    arms = ((report.get("bootstrap") or {}).get("arms")) or {}
    fig, (ax, fx) = plt.subplots(1, 2, figsize=(12, 4.4), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    groups = [(k, name) for k, name in GROUPS if k in metrics]
    width = 0.8 / max(1, len(labels))
    for j, label in enumerate(labels):
        xs, means, lo, hi = [], [], [], []
        for i, (k, _) in enumerate(groups):
            s = metrics[k]["models"].get(label) or {"n": 0}
            x = i + (j - (len(labels) - 1) / 2) * width
            xs.append(x)
            if s["n"] == 0:
                means.append(math.nan)
                lo.append(0)
                hi.append(0)
                continue
            means.append(100 * s["mean"])
            lo.append(100 * (s["mean"] - s["min"]))
            hi.append(100 * (s["max"] - s["mean"]))
            ax.scatter([x] * s["n"], [100 * v for v in s["values"]], s=8, color="black", zorder=3)
        ax.bar(xs, means, width, yerr=[lo, hi], capsize=3, color=COLOURS[j % len(COLOURS)], label=label, zorder=2)
    ax.set_xticks(range(len(groups)), [name for _, name in groups])
    ax.set_ylabel("COCO AP (×100)")
    n = max((s["n"] for k, _ in groups for s in metrics[k]["models"].values()), default=0)
    ax.set_title(f"AP by object size (px² area), {n} seed(s); whiskers: min–max", fontsize=10)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(fontsize=8)

    rows = [(k, name) for k, name in FOREST if any(k in r["pooled"] for r in arms.values())]
    for j, (arm, res) in enumerate(arms.items()):
        for i, (k, _) in enumerate(rows):
            iv = res["pooled"].get(k) or {}
            if iv.get("lo") is None:
                continue
            y = i + (j - (len(arms) - 1) / 2) * 0.25
            c = COLOURS[(j + 1) % len(COLOURS)]
            fx.plot([100 * iv["lo"], 100 * iv["hi"]], [y, y], color=c, lw=2, label=arm if i == 0 else None)
            fx.plot([100 * iv["diff"]], [y], "o", color=c, ms=4)
    fx.axvline(0, color="black", lw=0.8)
    fx.set_yticks(range(len(rows)), [name for _, name in rows])
    fx.invert_yaxis()
    covers = next((iv.get("covers") for r in arms.values() for iv in r["pooled"].values() if iv.get("covers")), "")
    one = covers.startswith("validation images only")
    fx.set_xlabel("arm − baseline, AP points (95% interval, " + ("images only)" if one else "seeds and images)"))
    fx.set_title("Difference from the baseline" + ("" if one else ", mean over seeds"), fontsize=10)
    fx.grid(axis="x", alpha=0.3)
    if arms:
        fx.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def save_png(fig, path: str | Path) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    fsio.write_bytes(path, buf.getvalue())
    return Path(path)

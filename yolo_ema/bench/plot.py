"""plot.png: AP by size bucket (and overall), baseline vs EMA; bars = mean, whiskers = min-max over seeds."""

from __future__ import annotations

import math
from pathlib import Path

from yolo_ema.bench import atomic

GROUPS = (("AP", "all"), ("AP_very_tiny", "very_tiny\n<8²"), ("AP_tiny", "tiny\n8²–16²"))
GROUPS += (("AP_small", "small\n16²–32²"), ("AP_medium", "medium\n≥32²"))
COLOURS = {"baseline": "#7f8c8d", "ema": "#d35400"}


def write(report: dict, path: str | Path) -> Path:
    """Draw the AP-by-size chart of a built report (see :func:`yolo_ema.bench.report.build`) to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metrics, lab = report["metrics"], report["labels"]
    groups = [(k, name) for k, name in GROUPS if k in metrics]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    width = 0.38
    for j, role in enumerate(("baseline", "ema")):
        xs, means, lo, hi = [], [], [], []
        for i, (k, _) in enumerate(groups):
            s = metrics[k][role]
            x = i + (j - 0.5) * width
            xs.append(x)
            if s["n"] == 0:
                means.append(math.nan)
                lo.append(0)
                hi.append(0)
                continue
            means.append(100 * s["mean"])
            lo.append(100 * (s["mean"] - s["min"]))
            hi.append(100 * (s["max"] - s["mean"]))
            ax.scatter([x] * s["n"], [100 * v for v in s["values"]], s=10, color="black", zorder=3)
        ax.bar(xs, means, width, yerr=[lo, hi], capsize=4, color=COLOURS[role], label=lab[role], zorder=2)
    ax.set_xticks(range(len(groups)), [name for _, name in groups])
    ax.set_ylabel("AP (×100)")
    n = max((metrics[k]["baseline"]["n"] for k, _ in groups), default=0)
    ax.set_title(f"AP by object size (px² area): {lab['baseline']} vs {lab['ema']}, {n} seed(s), whiskers = min–max")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend()
    fig.tight_layout()
    try:
        return atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)

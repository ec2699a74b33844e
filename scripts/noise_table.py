"""How noisy is a benchmark preset? Seed-to-seed spread, the verdict's detectable effect, an A/A check and a
disjoint-seed replication, from the cached scores of finished `yolo-ema benchmark` runs (no training here).

    python scripts/noise_table.py runs/benchmark [more OUT folders] [--model yolov8n] [--metric AP50]

For each OUT folder and each arm found in it (``<model>-<arm>-seed<k>`` run folders beside ``<model>-seed<k>``):
the baseline's seed-to-seed standard deviation of the metric, the standard deviation of the paired difference, and
the verdict interval, minimum detectable effect and seeds needed for one point at every seed count that the folder
has (:func:`yolo_ema.bench.stats.seed_image_interval`). With six or more baseline seeds it also scores the baseline's
second half of seeds against its first half (an A/A comparison: training noise only) and gives each arm's verdict
on the two disjoint halves of the seeds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

import numpy as np

from yolo_ema.bench import bootstrap


def load(out: Path, model: str) -> dict:
    """{label: {seed: Scores}} from ``OUT/runs/<label>-seed<k>/bootstrap-*.json`` (the first cache file of a run)."""
    found: dict = {}
    for f in sorted(Path(out).glob("runs/*-seed*/bootstrap-*.json")):
        m = re.fullmatch(r"(.+)-seed(\d+)", f.parent.name)
        if not m or "pretrain" in m[1] or not m[1].startswith(model):
            continue
        scores = json.loads(f.read_text(encoding="utf-8"))["scores"]
        found.setdefault(m[1], {}).setdefault(int(m[2]), bootstrap.Scores.from_dict(scores))
    return found


def interval(base: dict, arm: dict, seeds_b: list, seeds_a: list, metric: str) -> dict:
    """The verdict interval of ``arm`` (seeds ``seeds_a``) minus ``base`` (paired with ``seeds_b``)."""
    pairs = [(base[b], arm[a]) for b, a in zip(seeds_b, seeds_a)]
    return bootstrap.paired(pairs)["pooled"][metric]


def magnitudes(base: dict, arm: dict, seeds: list, metric: str, n_images: int) -> str:
    """Per-image standard deviations of the difference's seed effect ``a``, image effect ``e`` and interaction ``c``
    (the calibration simulation's model, tests/test_bench_calibration.py), from the per-seed full-set differences
    and their bootstrap covariances over the ``n_images`` validation images."""
    j = base[seeds[0]].keys.index(metric)
    boot = np.array([arm[s].boot[:, j] - base[s].boot[:, j] for s in seeds])  # [S, B]
    full = np.array([arm[s].full[metric] - base[s].full[metric] for s in seeds])
    cov = np.cov(boot)
    each, common = float(np.mean(np.diag(cov))), float((cov.sum() - np.trace(cov)) / (len(seeds) * (len(seeds) - 1)))
    c2, e2 = n_images * max(each - common, 0.0), n_images * max(common, 0.0)
    a2 = max(float(full.var(ddof=1)) - c2 / n_images, 0.0)
    return f"magnitudes a={a2**0.5:.3f}, e={e2**0.5:.3f}, c={c2**0.5:.3f}"


def fmt(iv: dict) -> str:
    need = iv.get("seeds_for_1_point")
    return (
        f"{iv['verdict']}, {100 * iv['diff']:+.2f} ({100 * iv['lo']:+.2f} to {100 * iv['hi']:+.2f}); "
        f"MDE {100 * iv['mde']:.1f}; seeds for 1 point {need if need else 'unreachable'}"
    )


def table(out: Path, model: str, metric: str, n_images: int) -> list[str]:
    runs = load(out, model)
    if model not in runs:
        return [f"{out}: no finished {model} runs"]
    base = runs[model]
    seeds = sorted(base)
    vals = [base[s].full[metric] for s in seeds]
    lines = [f"## {out}", "", f"- {model} {metric} per seed: " + ", ".join(f"{100 * v:.2f}" for v in vals)]
    if len(vals) > 1:
        lines.append(f"- {model} seed-to-seed std: {100 * statistics.stdev(vals):.2f} points ({len(vals)} seeds)")
    half = len(seeds) // 2
    if half >= 3:
        aa = interval(base, base, seeds[:half], seeds[half : 2 * half], metric)
        lines.append(f"- A/A ({model} seeds {seeds[half : 2 * half]} vs {seeds[:half]}): {fmt(aa)}")
    for label, arm in runs.items():
        if label == model:
            continue
        common = [s for s in seeds if s in arm]
        if len(common) < 2:
            continue
        diffs = [arm[s].full[metric] - base[s].full[metric] for s in common]
        lines.append(f"- {label}: paired differences " + ", ".join(f"{100 * d:+.2f}" for d in diffs)
                     + f"; std {100 * statistics.stdev(diffs):.2f}; " + magnitudes(base, arm, common, metric, n_images))  # fmt: skip
        for n in range(2, len(common) + 1):
            lines.append(f"  - first {n} seeds: {fmt(interval(base, arm, common[:n], common[:n], metric))}")
        h = len(common) // 2
        if h >= 2:
            a, b = common[:h], common[h : 2 * h]
            lines.append(f"  - seeds {a}: {fmt(interval(base, arm, a, a, metric))}")
            lines.append(f"  - seeds {b}: {fmt(interval(base, arm, b, b, metric))}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outs", nargs="+", type=Path, help="benchmark OUT folders")
    p.add_argument("--model", default="yolov8n", help="baseline label (yolov8n)")
    p.add_argument("--metric", default="AP50", help="AP, AP50 or AP_<bucket> (AP50)")
    p.add_argument("--images", type=int, default=80, help="validation images of these runs (80)")
    args = p.parse_args(argv)
    for out in args.outs:
        print("\n".join(table(out, args.model, args.metric, args.images)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The benchmark report: ``report.json`` (every raw number), ``report.md`` (answer first, then tables), ``plot.png``.

Input is :meth:`yolo_ema.bench.records.Results.document`, the JSON form of the benchmark's typed records
(:mod:`yolo_ema.bench.records` defines every field); ``report.md`` and ``plot.png`` are rendered from
``report.json``'s content only, so they show exactly what the JSON holds.

The verdict words come from the intervals over seeds and images (:mod:`yolo_ema.bench.stats`); the seed mean,
spread and range are shown beside them. All files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

from yolo_ema.bench import plot, stats
from yolo_ema.data import fsio

BUCKETS = ("very_tiny", "tiny", "small", "medium")
# key -> (title, path into a run record); APs are fractions in [0, 1], shown x100
METRICS = {
    "AP": ("COCO AP", ("eval", "coco", "AP")),
    "AP50": ("COCO AP50", ("eval", "coco", "AP50")),
    "AP75": ("COCO AP75", ("eval", "coco", "AP75")),
    **{f"AP_{b}": (f"AP {b} (AI-TOD)", ("eval", "buckets", b, "AP")) for b in BUCKETS},
    "VisDrone_AP": ("VisDrone AP", ("eval", "visdrone", "AP")),
    "VisDrone_AR500": ("VisDrone AR500", ("eval", "visdrone", "AR500")),
    "mAP50-95": ("mAP50-95 (Ultralytics val)", ("val", "mAP50-95")),
    "mAP50": ("mAP50 (Ultralytics val)", ("val", "mAP50")),
}
HEADLINE = ("AP50", "AP")  # the metrics in each arm's first line
BOOTSTRAPPED = ("AP", "AP50", *(f"AP_{b}" for b in BUCKETS))


def _get(rec: dict, path: tuple):
    for k in path:
        if not isinstance(rec, dict) or k not in rec:
            return None
        rec = rec[k]
    return rec


def models(results: dict) -> list[str]:
    """Model labels, baseline first, in run order."""
    b = results.get("benchmark", {})
    labels = [b["baseline"], *b.get("arms", [])] if b.get("baseline") else []
    for r in results.get("runs", []):
        if r["label"] not in labels:
            labels.append(r["label"])
    return labels


def summarize_metrics(results: dict) -> dict:
    """{metric: {title, models: {label: summary over seeds}}} for every metric some run has."""
    runs = results.get("runs", [])
    out = {}
    for key, (title, path) in METRICS.items():
        if not any(_get(r, path) is not None for r in runs):
            continue
        per = {}
        for label in models(results):
            mine = [r for r in runs if r["label"] == label]
            s = stats.summarize(_get(r, path) for r in mine)
            s["seeds"] = [r["seed"] for r in mine if _get(r, path) is not None]
            per[label] = s
        out[key] = {"title": title, "models": per}
    return out


def pts(v, signed=True) -> str:
    """A fraction as points x100 (``+1.23``), ``n/a`` for None."""
    if v is None:
        return "n/a"
    return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"


def interval_text(iv: dict) -> str:
    """``+1.20 (95% CI -0.40 to +2.80)``."""
    if iv.get("lo") is None:
        return "n/a"
    return f"{pts(iv['diff'])} (95% CI {pts(iv['lo'])} to {pts(iv['hi'])})"


def detectability_text(iv: dict, metric: str) -> str:
    """``this run can detect differences above 9.0 AP50 points; about 40 seeds would be needed for 1 point``."""
    if iv.get("mde") is None:
        return ""
    text = f"this run can detect differences above {100 * iv['mde']:.1f} {metric} points"
    if iv.get("covers") != stats.SEEDS_AND_IMAGES:
        return text + " between these weights"
    need = iv.get("seeds_for_1_point")
    if need is None:
        return text + "; no number of seeds would reach 1 point on this validation set (more images needed)"
    return text + f"; about {need} seeds would be needed for 1 point"


def answer_lines(report: dict) -> list[str]:
    """One line per arm: the headline verdict with its interval and what the run could detect, then the other
    headline metrics."""
    boot = report.get("bootstrap") or {}
    base = models(report)[0]
    lines = []
    for arm, res in (boot.get("arms") or {}).items():
        n = len(res.get("seeds", []))
        ivs = [(k, res["pooled"][k]) for k in HEADLINE if res["pooled"].get(k)]
        if not ivs:
            continue
        (k0, iv0), rest = ivs[0], ivs[1:]
        name = METRICS[k0][0]
        if n > 1:
            head = f"- **{arm}** vs {base} ({n} seeds): **{iv0['verdict']}** in {name}, {interval_text(iv0)}"
        else:
            head = (f"- **these {arm} weights** vs these {base} weights (one training each: image sampling only, "
                    f"training noise not measured): **{iv0['verdict']}** in {name}, {interval_text(iv0)}")  # fmt: skip
        parts = [head, detectability_text(iv0, name)]
        parts += [f"{METRICS[k][0]} {iv['verdict']}, {interval_text(iv)}" for k, iv in rest]
        lines.append("; ".join(p for p in parts if p) + ".")
    return lines


MEANING = (
    'What a verdict means: "better"/"worse" says the whole 95% interval of the difference lies above/below 0, '
    "where the interval covers {covers}; at most 5% of benchmarks in which nothing differs say either word (checked "
    'by simulation, and by the `control` arm: the baseline trained again with other seeds). "no detectable '
    'difference" does not say the models are equal: a difference smaller than the detectable size printed beside '
    "it can hide in this run's noise. The verdict speaks of this data, this schedule and these settings."
)


def build(results: dict) -> dict:
    """The report.json content: inputs as given plus per-metric summaries over seeds."""
    return {**results, "models": models(results), "metrics": summarize_metrics(results)}


def markdown(report: dict) -> str:
    """report.md text: the answer, the plot, then the tables."""
    b = report.get("benchmark", {})
    labels = report["models"]
    boot = report.get("bootstrap") or {}
    lines = [f"# yolo-ema benchmark: {labels[0]} vs {', '.join(labels[1:])}", ""]
    lines += answer_lines(report)
    if boot.get("method"):
        covers = next((iv.get("covers") for a in (boot.get("arms") or {}).values() for iv in a["pooled"].values()
                       if iv.get("covers")), stats.SEEDS_AND_IMAGES)  # fmt: skip
        lines += ["", f"Intervals: {boot['method']}. Differences in AP points (x100).", "",
                  MEANING.format(covers=covers)]  # fmt: skip
    lines += ["", "![AP by object size, and each arm's difference with its 95% interval](plot.png)", ""]
    facts = [
        ("Data", f"{b.get('data')} ({b.get('data_dir')}), evaluated on split `{b.get('split')}`"),
        ("Evaluation protocol", b.get("protocol")),
        ("Models", ", ".join(f"{k} `{Path(v).name}`" for k, v in (b.get("configs") or {}).items())),
        ("Seeds", ", ".join(str(s) for s in b.get("seeds", [])) or "n/a"),
        ("Training", b.get("training")),
        ("Machine", b.get("machine")),
        ("Wall time", b.get("wall_time")),
        ("Command", f"`{b['command']}`" if b.get("command") else None),
    ]
    lines += [f"- **{k}**: {v}" for k, v in facts if v]
    notes = list(report.get("notes") or [])
    if notes:
        lines += ["", "> " + " ".join(notes)]
    lines += _difference_lines(report)
    lines += _accuracy_lines(report)
    lines += _picture_lines(report)
    lines += _cost_lines(report)
    lines += _seed_lines(report)
    lines += [
        "",
        "Size buckets (AI-TOD, box area in pixels of the original image): very_tiny < 8², tiny 8²–16², "
        "small 16²–32², medium ≥ 32².",
    ]
    return "\n".join(lines) + "\n"


def _difference_lines(report: dict) -> list[str]:
    arms = (report.get("bootstrap") or {}).get("arms") or {}
    if not arms:
        return []
    lines = ["", "## Differences from the baseline (points, 95% interval, verdict; detectable effect, seeds for 1 point)",
             "", "| Metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]  # fmt: skip
    for k in BOOTSTRAPPED:
        cells = []
        for res in arms.values():
            iv = res["pooled"].get(k) or {}
            cell = f"{interval_text(iv)} {iv.get('verdict', '')}".strip()
            if iv.get("mde") is not None:
                need = iv.get("seeds_for_1_point")
                cell += f"; detects > {100 * iv['mde']:.1f}"
                if iv.get("covers") == stats.SEEDS_AND_IMAGES:
                    cell += f", {need} seeds for 1" if need else ", no seed count reaches 1 (images)"
            cells.append(cell)
        lines.append(f"| {METRICS[k][0]} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed, on this seed's trainings only (validation-image interval: no verdict, as one training "
              "says nothing of training noise):", "", "| Arm | Seed | AP50 | AP |", "|---|---:|---|---|"]  # fmt: skip
    for arm, res in arms.items():
        for seed, per in zip(res["seeds"], res["per_seed"]):
            cells = [interval_text(per[k]) for k in ("AP50", "AP")]
            lines.append(f"| {arm} | {seed} | " + " | ".join(cells) + " |")
    return lines


def _summary(s: dict) -> str:
    if not s or s["n"] == 0:
        return "n/a"
    if s["n"] == 1:
        return pts(s["mean"], False)
    return f"{pts(s['mean'], False)} ± {100 * s['std']:.2f} ({pts(s['min'], False)}–{pts(s['max'], False)})"


def _accuracy_lines(report: dict) -> list[str]:
    labels = report["models"]
    n = max((s["n"] for m in report["metrics"].values() for s in m["models"].values()), default=0)
    lines = ["", f"## Accuracy (×100; mean ± sample std (min–max) over {n} seed{'s' if n != 1 else ''})", ""]
    lines += ["| Metric | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for m in report["metrics"].values():
        lines.append(f"| {m['title']} | " + " | ".join(_summary(m["models"].get(lab)) for lab in labels) + " |")
    return lines


def _picture_lines(report: dict) -> list[str]:
    pic = report.get("pictures") or {}
    if not pic.get("attention"):
        return []
    base = report["models"][0]
    return [
        "",
        "## What EMA does",
        "",
        f"![{base} and {pic['arm']} detections, and the EMA layers' spatial attention]({pic['attention']})",
        "",
        f"Validation images {', '.join(pic['images'])} (first seed): {base}'s detections, {pic['arm']}'s, then each "
        "EMA layer's spatial attention map over the image: the sigmoid map that EMA multiplies each channel group by, "
        "averaged over the groups and upsampled, each map on its own colour range (its minimum and maximum in the title; "
        "bright: kept more, dark: suppressed more).",
    ]


def _lat(t: dict | None, first: bool = False) -> str:
    """``9.66 (9.50–9.82); ×1.32 [1.25–1.40]``: median (IQR) ms, then the paired ratio to the baseline with its 95%
    interval (flagged as noise when the interval is wider than ±2%)."""
    if not t:
        return "n/a"
    text = f"{t['median_ms']:.2f} ({t['q1_ms']:.2f}–{t['q3_ms']:.2f})"
    r = t.get("vs_first")
    if first or not r:
        return text
    wide = r["hi"] - r["lo"] > 0.04
    return text + f"; ×{r['ratio']:.3f} [{r['lo']:.3f}–{r['hi']:.3f}]" + (" noise" if wide else "")


def _cost_lines(report: dict) -> list[str]:
    cost = report.get("cost") or {}
    labels = [lab for lab in report["models"] if lab in cost]  # the control arm is the baseline's model
    if not labels or labels[0] != report["models"][0]:
        return []
    c0 = cost[labels[0]]
    imgsz = c0.get("imgsz")
    lines = [
        "",
        f"## Cost (fused eval model, batch 1; params and GFLOPs at {imgsz}×{imgsz})",
        "",
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| Parameters | " + " | ".join(f"{cost[lab]['params']:,}" for lab in labels) + " |",
        "| GFLOPs (torch FlopCounterMode) | " + " | ".join(f"{cost[lab]['gflops']:.4f}" for lab in labels) + " |",
    ]
    if all(cost[lab].get("gflops_thop") is not None for lab in labels):
        lines.append(
            "| GFLOPs (Ultralytics/thop) | " + " | ".join(f"{cost[lab]['gflops_thop']:.4f}" for lab in labels) + " |"
        )
    lines.append("| EMA layers (own params, GFLOPs) | " + " | ".join(
        f"{cost[lab].get('ema_layers', 0)} ({cost[lab].get('ema_params', 0):,}, {cost[lab].get('ema_gflops', 0):.4f})"
        for lab in labels) + " |")  # fmt: skip
    lat0 = c0.get("latency") or {}
    for size, by in lat0.items():
        for backend in by:
            row = [_lat(((cost[lab].get("latency") or {}).get(size) or {}).get(backend), lab == labels[0])
                   for lab in labels]  # fmt: skip
            lines.append(f"| Latency {size}×{size} {backend}, median ms (IQR) | " + " | ".join(row) + " |")
    if lat0:
        t = next(iter(next(iter(lat0.values())).values()))
        lines += [
            "",
            f"Latency: {t['runs']} rounds per model after warm-up, the models timed back to back in each round in one "
            f"process (device {t.get('device')}, {t.get('threads')} threads unless the row says 1 thread); onnxruntime "
            "and OpenVINO run the files Ultralytics' own exporter writes (`yolo export format=onnx|openvino`). Each "
            "arm's ×ratio is the median of its per-round ratios to the baseline with a distribution-free 95% "
            'interval; "noise" marks an interval wider than ±2%, too wide to read as a result.',
        ]
    return lines


def _seed_lines(report: dict) -> list[str]:
    runs = report.get("runs") or []
    if not runs:
        return []
    lines = [
        "",
        "## Per run (×100)",
        "",
        "| Model | Seed | COCO AP | COCO AP50 | AP very_tiny | AP tiny | AP small | AP medium | Status | Weights |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in runs:
        vals = [_get(r, METRICS[k][1]) for k in ("AP", "AP50", *(f"AP_{b}" for b in BUCKETS))]
        cells = " | ".join(pts(v, False) for v in vals)
        lines.append(
            f"| {r['label']} | {r.get('seed', '-')} | {cells} | {r.get('status', '')} | `{r.get('weights')}` |"
        )
    return lines


def write(results: dict, out: str | Path) -> dict:
    """Build the report and write report.json, plot.png and report.md into ``out`` atomically; return paths."""
    out = Path(out)
    report = build(results)
    paths = {"json": out / "report.json", "md": out / "report.md", "plot": out / "plot.png"}
    fsio.write_json(paths["json"], report, indent=1, default=str)
    plot.write(report, paths["plot"])
    fsio.write_text(paths["md"], markdown(report))
    return paths

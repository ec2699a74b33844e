"""The benchmark report: ``report.json`` (every raw per-seed number), ``report.md`` (tables and verdicts), ``plot.png``.

Input is the benchmark's results dict::

    {"benchmark": {...settings, data, labels, timings...},
     "runs": [{"role": "baseline" | "ema", "label", "seed", "weights", "val": {"mAP50-95", "mAP50"},
               "eval": <yolo_ema.eval.evaluate() result without detections>}, ...],
     "cost": {label: <yolo_ema.bench.cost.measure() entry>},
     "notes": ["caveat", ...]}

All three files are written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

from pathlib import Path

from yolo_ema.bench import atomic, plot, stats

ROLES = ("baseline", "ema")
BUCKETS = ("very_tiny", "tiny", "small", "medium")
# key -> (title, path into a run record); APs are fractions in [0, 1], shown x100
METRICS = {
    "mAP50-95": ("mAP50-95 (Ultralytics val)", ("val", "mAP50-95")),
    "mAP50": ("mAP50 (Ultralytics val)", ("val", "mAP50")),
    "AP": ("COCO AP", ("eval", "coco", "AP")),
    "AP50": ("COCO AP50", ("eval", "coco", "AP50")),
    "AP75": ("COCO AP75", ("eval", "coco", "AP75")),
    **{f"AP_{b}": (f"AP {b} (AI-TOD)", ("eval", "buckets", b, "AP")) for b in BUCKETS},
    "VisDrone_AP": ("VisDrone AP", ("eval", "visdrone", "AP")),
    "VisDrone_AR500": ("VisDrone AR500", ("eval", "visdrone", "AR500")),
}
SPREAD_RULE = (
    "Verdicts: the seed spread of a model is the range (min to max) of its per-seed values; a difference is called "
    "outside the seed spread only when the two ranges do not overlap (every EMA seed beats every baseline seed, or "
    "the reverse). Anything else is reported as inside the seed spread, i.e. not significant at this number of seeds."
)


def _get(rec: dict, path: tuple):
    for k in path:
        if not isinstance(rec, dict) or k not in rec:
            return None
        rec = rec[k]
    return rec


def labels(results: dict) -> dict:
    """{role: model label} from the benchmark section (or the runs)."""
    b = results.get("benchmark", {})
    out = {r: b.get(r) for r in ROLES}
    for run in results.get("runs", []):
        out[run["role"]] = out.get(run["role"]) or run["label"]
    return out


def summarize_metrics(results: dict) -> dict:
    """{metric: {title, baseline: summary, ema: summary, seeds, verdict}} for every metric any run has."""
    runs = results.get("runs", [])
    out = {}
    for key, (title, path) in METRICS.items():
        per = {r: [run for run in runs if run["role"] == r] for r in ROLES}
        if not any(_get(run, path) is not None for run in runs) and path[1] == "visdrone":
            continue  # VisDrone protocol not applicable to this data
        s = {r: stats.summarize(_get(run, path) for run in per[r]) for r in ROLES}
        for r in ROLES:
            s[r]["seeds"] = [run["seed"] for run in per[r] if _get(run, path) is not None]
        out[key] = {"title": title, **s, "verdict": stats.verdict(s["baseline"], s["ema"], True, 100, " points")}
    return out


def cost_verdicts(cost: dict, lab: dict) -> dict:
    """Plain-words lines for params, GFLOPs and latency (deterministic except latency, judged by its IQR)."""
    b, e = cost.get(lab["baseline"]), cost.get(lab["ema"])
    if not b or not e:
        return {}
    out = {}
    dp = e["params"] - b["params"]
    out["params"] = f"EMA adds {dp:+,} parameters ({100 * dp / b['params']:+.2f}%)"
    dg = e["gflops"] - b["gflops"]
    out["gflops"] = f"EMA adds {dg:+.4f} GFLOPs ({100 * dg / b['gflops']:+.2f}%)"
    if b.get("gflops_thop") and e.get("gflops_thop"):
        dt = e["gflops_thop"] - b["gflops_thop"]
        out["gflops_thop"] = f"EMA adds {dt:+.4f} GFLOPs by thop (FlopCounterMode: {dg:+.4f})"
    lb, le = b.get("latency"), e.get("latency")
    if lb and le:
        d = le["median_ms"] - lb["median_ms"]
        word = "slower" if d > 0 else "faster"
        overlap = not (le["q1_ms"] > lb["q3_ms"] or le["q3_ms"] < lb["q1_ms"])
        tail = "inside the timing noise (interquartile ranges overlap)" if overlap else "outside the timing noise"
        out["latency"] = f"EMA {word} by {abs(d):.2f} ms ({100 * d / lb['median_ms']:+.1f}%), {tail}"
    return out


def build(results: dict) -> dict:
    """The report.json content: inputs as given plus summaries and verdicts."""
    lab = labels(results)
    return {
        **results,
        "labels": lab,
        "metrics": summarize_metrics(results),
        "cost_verdicts": cost_verdicts(results.get("cost", {}), lab),
        "spread_rule": SPREAD_RULE,
    }


def _pm(s: dict) -> str:
    if s["n"] == 0:
        return "n/a"
    if s["n"] == 1:
        return f"{100 * s['mean']:.2f}"
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def _diff(v: dict) -> str:
    return "n/a" if v["diff"] is None else f"{100 * v['diff']:+.2f}"


def markdown(report: dict) -> str:
    """report.md text."""
    b = report.get("benchmark", {})
    lab = report["labels"]
    nseeds = len(b.get("seeds", [])) or max((m["baseline"]["n"] for m in report["metrics"].values()), default=0)
    lines = [f"# yolo-ema benchmark: {lab['baseline']} vs {lab['ema']}", ""]
    facts = [
        ("Data", f"{b.get('data')} ({b.get('data_dir')}), evaluated on split `{b.get('split')}`"),
        ("Evaluation protocol", b.get("protocol")),
        ("Models", f"baseline `{b.get('baseline_cfg')}`, EMA `{b.get('ema_cfg')}`"),
        ("Seeds", ", ".join(str(s) for s in b.get("seeds", [])) or "n/a (given weights)"),
        ("Training", b.get("training")),
        ("Machine", b.get("machine")),
        ("Wall time", b.get("wall_time")),
        ("Command", f"`{b['command']}`" if b.get("command") else None),
    ]
    lines += [f"- **{k}**: {v}" for k, v in facts if v]
    notes = list(report.get("notes") or [])
    means = [m[r]["mean"] for m in report["metrics"].values() for r in ROLES if m[r]["n"]]
    if means and all(v == 0 for v in means):
        notes.append(
            "Here every accuracy metric is 0 for both models on every seed: neither model yet scores a detection "
            "that matches the ground truth, so the accuracy table cannot tell them apart."
        )
    if notes:
        lines += ["", "> **Read this first.** " + " ".join(notes)]
    lines += [
        "",
        f"## Accuracy (×100; mean ± sample std over {nseeds} seed{'s' if nseeds != 1 else ''})",
        "",
        f"| Metric | {lab['baseline']} | {lab['ema']} | EMA − baseline | Verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for m in report["metrics"].values():
        lines.append(
            f"| {m['title']} | {_pm(m['baseline'])} | {_pm(m['ema'])} | {_diff(m['verdict'])} | {m['verdict']['text']} |"
        )
    lines += ["", SPREAD_RULE]
    lines += _cost_lines(report)
    lines += _seed_lines(report)
    lines += ["", "## AP by object size", "", "![AP by size bucket, baseline vs EMA](plot.png)", ""]
    lines.append(
        "Buckets (AI-TOD, box area in pixels of the original image): very_tiny < 8², tiny 8²–16², small 16²–32², "
        "medium ≥ 32². Bars: mean over seeds; whiskers: min–max over seeds; dots: single seeds."
    )
    return "\n".join(lines) + "\n"


def _cost_lines(report: dict) -> list[str]:
    cost, lab, cv = report.get("cost") or {}, report["labels"], report["cost_verdicts"]
    b, e = cost.get(lab["baseline"]), cost.get(lab["ema"])
    if not b or not e:
        return []
    imgsz = b.get("imgsz")
    lat = b.get("latency", {})
    lines = [
        "",
        f"## Cost (fused eval model, batch 1, {imgsz}×{imgsz})",
        "",
        f"| | {lab['baseline']} | {lab['ema']} | Verdict |",
        "|---|---:|---:|---|",
        f"| Parameters | {b['params']:,} | {e['params']:,} | {cv.get('params', '')} |",
        f"| GFLOPs (torch FlopCounterMode) | {b['gflops']:.4f} | {e['gflops']:.4f} | {cv.get('gflops', '')} |",
    ]
    if b.get("gflops_thop") is not None and e.get("gflops_thop") is not None:
        lines.append(
            f"| GFLOPs (Ultralytics/thop) | {b['gflops_thop']:.4f} | {e['gflops_thop']:.4f} | {cv.get('gflops_thop', '')} |"
        )
    if lat and e.get("latency"):
        le = e["latency"]
        lines.append(
            f"| Latency, median ms (IQR) | {lat['median_ms']:.2f} ({lat['q1_ms']:.2f}–{lat['q3_ms']:.2f}) | "
            f"{le['median_ms']:.2f} ({le['q1_ms']:.2f}–{le['q3_ms']:.2f}) | {cv.get('latency', '')} |"
        )
        lines += [
            "",
            f"Latency: {lat['runs']} interleaved forward passes per model after warm-up, same process, "
            f"device {lat.get('device')}, {lat.get('threads')} threads. EMA layers' own cost, each run alone on its "
            f"in-model input: {e.get('ema_layers')} layers, {e.get('ema_params'):,} parameters, "
            f"{e.get('ema_gflops', 0):.4f} GFLOPs.",
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
        "| Model | Seed | mAP50-95 | mAP50 | COCO AP | AP very_tiny | AP tiny | AP small | AP medium | Weights |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        vals = [_get(r, METRICS[k][1]) for k in ("mAP50-95", "mAP50", "AP", *(f"AP_{b}" for b in BUCKETS))]
        cells = " | ".join("n/a" if v is None else f"{100 * v:.2f}" for v in vals)
        lines.append(f"| {r['label']} | {r.get('seed', '-')} | {cells} | `{r.get('weights')}` |")
    return lines


def write(results: dict, out: str | Path) -> dict:
    """Build the report and write report.json, report.md and plot.png into ``out`` atomically; return paths."""
    out = Path(out)
    report = build(results)
    paths = {"json": out / "report.json", "md": out / "report.md", "plot": out / "plot.png"}
    atomic.write_json(paths["json"], report)
    plot.write(report, paths["plot"])
    atomic.write_text(paths["md"], markdown(report))
    return paths

"""Plain-text tables of evaluation results (one row per run, and per-class rows)."""

from __future__ import annotations

BUCKET_SHORT = {"very_tiny": "APvt", "tiny": "APt", "small": "APs16", "medium": "APm32"}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.1f}"  # AP/AR in percent, as papers print them
    return str(v)


def table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned first column, right-aligned others; ``None`` prints as ``-``, floats as percent."""
    cells = [headers] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(results: list[dict]) -> str:
    """One row per run: COCO AP/AP50/AP75/APs/APm/APl, AI-TOD bucket APs, and VisDrone AP/AP50/AR500 if present."""
    vis = any("visdrone" in r for r in results)
    headers = ["run", "AP", "AP50", "AP75", "APs", "APm", "APl", *BUCKET_SHORT.values()]
    if vis:
        headers += ["VD-AP", "VD-AP50", "VD-AR100", "VD-AR500"]
    rows = []
    for r in results:
        c, b = r["coco"], r["buckets"]
        row = [r.get("label", r.get("run", {}).get("model", "?"))]
        row += [c["AP"], c["AP50"], c["AP75"], c["AP_small"], c["AP_medium"], c["AP_large"]]
        row += [b[k]["AP"] for k in BUCKET_SHORT]
        if vis:
            v = r.get("visdrone", {})
            row += [v.get("AP"), v.get("AP50"), v.get("AR100"), v.get("AR500")]
        rows.append(row)
    return table(headers, rows)


def buckets_table(result: dict) -> str:
    """AI-TOD buckets of one run: object count, AP, AP50, AR."""
    rows = [[k, v["n_gt"], v["AP"], v["AP50"], v["AR"]] for k, v in result["buckets"].items()]
    return table(["bucket", "n_gt", "AP", "AP50", "AR"], rows)


def per_class_table(result: dict) -> str:
    """Per-class rows of one run: counts, AP, AP50, AP75, AR and the bucket APs."""
    headers = ["class", "n_gt", "n_dets", "AP", "AP50", "AP75", "AR", *BUCKET_SHORT.values()]
    rows = [
        [p["name"], p["n_gt"], p["n_dets"], p["AP"], p["AP50"], p["AP75"], p["AR"]]
        + [p["AP_buckets"][k] for k in BUCKET_SHORT]
        for p in result["per_class"]
    ]
    return table(headers, rows)

"""Per-metric statistics over seeds and the plain-words verdict baseline vs EMA.

The seed spread of a model is the range [min, max] of its per-seed values. A difference of means is called
"outside the seed spread" only if the two ranges do not overlap (every EMA seed beats every baseline seed, or the
reverse); otherwise it is "inside the seed spread (not significant)". With one seed per model there is no spread to
judge against, and the verdict says so.
"""

from __future__ import annotations

import math
import statistics


def summarize(values) -> dict:
    """{n, mean, std (sample, ddof=1; 0 for n=1), min, max, values} over the non-missing values."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    return {
        "n": len(vals),
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
        "values": vals,
    }


def verdict(base: dict, ema: dict, higher_is_better: bool = True, scale: float = 1.0, unit: str = "") -> dict:
    """Compare two :func:`summarize` results; return {diff, outside, text}.

    ``diff`` is mean(EMA) - mean(baseline); ``text`` is the plain-words verdict, with the difference multiplied by
    ``scale`` and followed by ``unit`` (e.g. 100 and " points" for APs).
    """
    if base["n"] == 0 or ema["n"] == 0:
        return {"diff": None, "outside": None, "text": "n/a (no value: no ground truth in this bucket?)"}
    diff = ema["mean"] - base["mean"]
    amount = f"{abs(diff) * scale:.{_digits(scale)}f}{unit}"
    if diff == 0:
        return {"diff": 0.0, "outside": False, "text": "no difference"}
    better = (diff > 0) == higher_is_better
    word = "better" if better else "worse"
    if base["n"] < 2 or ema["n"] < 2:
        return {"diff": diff, "outside": None, "text": f"EMA {word} by {amount}; one seed only, spread unknown"}
    outside = ema["min"] > base["max"] or ema["max"] < base["min"]
    if outside:
        return {"diff": diff, "outside": True, "text": f"EMA {word} by {amount}, outside the seed spread"}
    return {
        "diff": diff,
        "outside": False,
        "text": f"difference inside the seed spread (not significant): EMA {word} by {amount} on average",
    }


def _digits(scale: float) -> int:
    return 1 if scale >= 100 else 3

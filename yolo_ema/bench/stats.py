"""A metric's summary over seeds: mean, sample standard deviation and range (the verdicts come from
:mod:`yolo_ema.bench.bootstrap`)."""

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

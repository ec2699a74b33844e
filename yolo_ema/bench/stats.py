"""The benchmark's statistics: summaries over seeds, and the verdict interval over both sources of noise.

A benchmark's difference (arm minus baseline, in AP) moves for two reasons: which validation images were drawn, and
how training went (the seed: data order, augmentation, the new layers' start). The verdict interval covers both, in
the spirit of Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks" (MLSys 2021): the seeds
are a random sample of trainings and the validation images a random sample of images.

With ``S`` seeds, ``d_s`` the difference on the full validation set at seed ``s`` and ``D`` their mean::

    Var(D) = s_d^2 / S + v_common

``s_d^2``: the sample variance of the ``d_s`` (training noise and the image-by-seed interaction, ``S - 1`` degrees of
freedom); ``v_common``: the part of the images' sampling variance that every seed shares, the mean covariance between
seeds of the bootstrap differences (the same image resample for every seed and both models, see
:mod:`yolo_ema.bench.bootstrap`); the interaction is counted once, in ``s_d^2``. The interval is Student's t on
``S - 1`` degrees of freedom (``t(0.975, 1) = 12.7`` for two seeds), where a percentile bootstrap over seeds would
under-cover; adding the well-estimated ``v_common`` to both the numerator's and the estimate's variance only makes it
more conservative. Welch-Satterthwaite degrees of freedom (Satterthwaite, Biometrics Bulletin 2(6), 1946) were
measured to under-cover here (12% false "better"/"worse" at two seeds: a small ``s_d^2`` by chance inflates them).
Calibration is proved by simulation (``tests/test_bench_calibration.py``: false "better"/"worse" rate at most 5% for
2, 3 and 5 seeds, at magnitudes measured on real runs).

With one seed (or given ``--weights``) training noise is not measured: the interval is the image bootstrap's alone
and speaks of those weights, not of the method.

The minimum detectable effect is the true difference that a two-sided t-test at the 5% level on this run's noise
would detect with 80% power (noncentral t, ``scipy.stats.nct``); the seeds needed for one AP point project the
same noise to more seeds: ``s_d^2 / S' + v_common``, on ``S' - 1`` degrees of freedom.
"""

from __future__ import annotations

import functools
import math
import statistics

import numpy as np

LEVEL = 0.95  # two-sided confidence level of every interval
POWER = 0.80  # power of the minimum detectable effect
POINT = 0.01  # one AP point (APs are fractions)
MAX_SEEDS = 10_000  # the projection's search limit
SEEDS_AND_IMAGES = "training seeds and validation images"
IMAGES_ONLY = "validation images only (one training per model: training noise not measured)"


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


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: int) -> float:
    """Student's t quantile (scipy.stats), cached: a benchmark asks for a handful of (q, df) pairs."""
    from scipy import stats

    return float(stats.t.ppf(q, df))


def verdict(lo: float, hi: float) -> str:
    """ "better" if the whole interval is above 0, "worse" if below, else "no detectable difference"."""
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "no detectable difference"


def _na(n_seeds: int, resamples: int) -> dict:
    return {"diff": None, "lo": None, "hi": None, "verdict": "n/a", "n_seeds": n_seeds, "resamples": resamples}


def image_interval(diff: float, samples: np.ndarray, level: float = LEVEL) -> dict:
    """Percentile interval of bootstrap ``samples`` of a difference over validation images (Efron & Tibshirani,
    "An Introduction to the Bootstrap", 1993, ch. 13): ``{diff, lo, hi, se_image, resamples}``, no verdict."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if s.size < 2 or not np.isfinite(diff):
        return {"diff": None, "lo": None, "hi": None, "se_image": None, "resamples": int(s.size)}
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(diff), "lo": float(lo), "hi": float(hi), "se_image": float(s.std(ddof=1)),
            "resamples": int(s.size)}  # fmt: skip


def mde(se: float, df: float, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true difference a two-sided t-test at ``1 - level`` detects with ``power``, given its standard
    error ``se`` and ``df`` degrees of freedom (exact noncentral t; normal when ``df`` is infinite)."""
    from scipy import optimize, stats

    if not se > 0:
        return 0.0
    if not math.isfinite(df) or df > 1e6:
        return float((stats.norm.ppf((1 + level) / 2) + stats.norm.ppf(power)) * se)
    crit = stats.t.ppf((1 + level) / 2, df)

    def shortfall(ncp: float) -> float:  # the far tail is negligible where scipy's nct.cdf gives NaN
        return stats.nct.sf(crit, df, ncp) + np.nan_to_num(stats.nct.cdf(-crit, df, ncp)) - power

    hi = crit + stats.t.ppf(power, df) + 10
    while shortfall(hi) < 0:
        hi *= 2
    return float(optimize.brentq(shortfall, 0.0, hi, xtol=1e-6) * se)


def seeds_needed(var_d: float, var_common: float, effect: float = POINT) -> int | None:
    """Fewest seeds whose minimum detectable effect is at most ``effect``, with the seed variance ``var_d / S`` and
    the images' shared variance ``var_common``; None when even ``MAX_SEEDS`` seeds cannot (the validation set's own
    sampling noise is above it: more validation images are needed)."""

    def ok(s: int) -> bool:
        return mde(math.sqrt(var_d / s + var_common), s - 1) <= effect

    if not ok(MAX_SEEDS):
        return None
    lo, hi = 2, MAX_SEEDS  # ok(hi); the detectable effect shrinks as seeds are added
    if ok(lo):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def seed_image_halfwidth(d: np.ndarray, boot: np.ndarray, level: float = LEVEL):
    """The interval's arithmetic for many benchmarks at once: ``d`` [K, S] per-seed full-set differences, ``boot``
    [K, S, B] their image resamples (S >= 2). Returns (mean [K], half-width [K], var_d [K], var_common [K])."""
    _, n, b = boot.shape
    var_d = d.var(axis=1, ddof=1)  # training noise, the image-by-seed interaction included
    centred = boot - boot.mean(axis=2, keepdims=True)
    cov = centred @ centred.transpose(0, 2, 1) / (b - 1)  # [K, S, S]: per-seed image variances and covariances
    trace = np.trace(cov, axis1=1, axis2=2)
    var_common = (cov.sum(axis=(1, 2)) - trace) / (n * (n - 1))  # the images' effect shared by every seed
    var_pooled = cov.sum(axis=(1, 2)) / n**2  # the variance of the seed mean over the resamples
    var_common = np.minimum(np.maximum(var_common, 0.0), var_pooled)
    half = t_quantile((1 + level) / 2, n - 1) * np.sqrt(var_d / n + var_common)
    return d.mean(axis=1), half, var_d, var_common


def seed_image_interval(seed_diffs, boot_diffs, level: float = LEVEL, detectability: bool = True) -> dict:
    """The verdict interval of the mean difference over seeds, covering seeds and images (module docstring).

    ``seed_diffs`` [S]: the difference on the full validation set per seed; ``boot_diffs`` [S, B]: the same
    difference on each of B image resamples (the same resamples for every seed). Returns ``{diff, lo, hi, verdict,
    covers, n_seeds, df, se, se_seed, se_image, mde, seeds_for_1_point, resamples}``; one seed gives the image
    bootstrap's percentile interval (``covers``: images only). ``detectability=False`` leaves out ``mde`` and
    ``seeds_for_1_point`` (the simulations' speed).
    """
    d = np.asarray(seed_diffs, float)
    boot = np.asarray(boot_diffs, float).reshape(len(d), -1)
    keep = np.isfinite(boot).all(axis=0)
    boot = boot[:, keep]
    n, b = len(d), boot.shape[1]
    if n == 0 or b < 2 or not np.isfinite(d).all():
        return _na(n, b)
    pooled = boot.mean(axis=0)  # [B]: the seed mean on each resample
    if n == 1:
        iv = image_interval(float(d[0]), pooled, level)
        se = iv["se_image"]
        out = {**iv, "verdict": verdict(iv["lo"], iv["hi"]), "covers": IMAGES_ONLY, "n_seeds": 1, "df": math.inf,
               "se": se, "se_seed": None, "seeds_for_1_point": None}  # fmt: skip
        if detectability:
            out["mde"] = mde(se, math.inf, level)
        return _finite(out)
    mean, half, var_d, var_common = seed_image_halfwidth(d[None], boot[None], level)
    mean, half, var_d, var_common = float(mean[0]), float(half[0]), float(var_d[0]), float(var_common[0])
    var_seed, df = var_d / n, n - 1
    se = math.sqrt(var_seed + var_common)
    out = {
        "diff": mean,
        "lo": mean - half,
        "hi": mean + half,
        "verdict": verdict(mean - half, mean + half),
        "covers": SEEDS_AND_IMAGES,
        "n_seeds": n,
        "df": df,
        "se": se,
        "se_seed": math.sqrt(var_seed),
        "se_image": math.sqrt(var_common),
        "resamples": b,
    }
    if detectability:
        out["mde"] = mde(se, df, level)
        out["seeds_for_1_point"] = seeds_needed(var_d, var_common)
    return _finite(out)


def _finite(d: dict) -> dict:
    """JSON-safe: infinite degrees of freedom written as None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

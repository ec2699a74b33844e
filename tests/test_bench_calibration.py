"""The verdict is calibrated: simulated benchmarks of known truth, scored by the benchmark's own statistics.

Each simulated benchmark draws per-image differences (arm minus baseline) for S seeds and n validation images::

    d[s, i] = delta + a[s] + e[i] + c[s, i]

``a``: the seed effect (training noise), ``e``: the image effect (which images were drawn), ``c``: the seed-by-image
interaction; the full-set difference of seed s is the mean over images, and its bootstrap draws are means over the
same resampled images for every seed (as :mod:`yolo_ema.bench.bootstrap` scores them). Their magnitudes come from
a real run (``MEASURED``); the statistics under test are :func:`yolo_ema.bench.stats.seed_image_interval`, exactly as
the benchmark calls them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from yolo_ema.bench import bootstrap, stats

# AP50 magnitudes (fractions) measured on the default synthetic data (400 images, 80 for validation; 6-epoch shared
# pre-training, CPU) by `python scripts/noise_table.py OUT`, which decomposes yolov8n-ema minus yolov8n from the cached
# per-seed bootstrap scores: a = sqrt(var of the per-seed full-set differences - c^2 / n), e = sqrt(n * mean
# cross-seed covariance of the bootstrap differences), c = sqrt(n * (mean per-seed bootstrap variance - that
# covariance)). "default": the preset (5 fine-tuning epochs at lr0 0.001, 4 seeds; `yolo-ema benchmark` from a fresh
# clone); "short": 3 epochs at 0.002
# (5 seeds), where training noise is five times larger; "images": the images as large as the seeds (the interval's
# conservative side).
MEASURED = {
    "default": dict(a=0.012, e=0.023, c=0.044),
    "short": dict(a=0.056, e=0.037, c=0.100),
    "images": dict(a=0.01, e=0.09, c=0.09),
}
N_IMAGES = 80
RESAMPLES = 200
BENCHMARKS = 2000


def _simulate(n_seeds: int, a: float, e: float, c: float, delta: float, seed: int) -> tuple[int, int]:
    """(verdicts other than "no detectable difference", intervals covering ``delta``) over BENCHMARKS runs."""
    rng = np.random.default_rng(seed)
    idx = bootstrap.draws(N_IMAGES, RESAMPLES, seed=seed)  # the benchmark's own draws
    w = np.zeros((RESAMPLES, N_IMAGES))
    np.add.at(w, (np.repeat(np.arange(RESAMPLES), N_IMAGES), idx.ravel()), 1.0 / N_IMAGES)  # [B, n] weights
    d = delta + rng.normal(0, a, (BENCHMARKS, n_seeds, 1)) + rng.normal(0, e, (BENCHMARKS, 1, N_IMAGES))
    d = d + rng.normal(0, c, (BENCHMARKS, n_seeds, N_IMAGES))  # [K, S, n]
    mean, half, _, _ = stats.seed_image_halfwidth(d.mean(axis=2), d @ w.T)  # the benchmark's arithmetic, K at once
    lo, hi = mean - half, mean + half
    said = int(sum(stats.verdict(a_, b_) != "no detectable difference" for a_, b_ in zip(lo, hi)))
    covered = int(np.sum((lo <= delta) & (delta <= hi)))
    first = stats.seed_image_interval(d[0].mean(axis=1), d[0] @ w.T)  # the report's function agrees on one of them
    assert (first["lo"], first["hi"]) == pytest.approx((lo[0], hi[0]), abs=1e-12)
    return said, covered


@pytest.mark.parametrize("regime", list(MEASURED))
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
def test_no_true_difference_says_better_or_worse_at_most_5_percent(regime, n_seeds):
    said, covered = _simulate(n_seeds, **MEASURED[regime], delta=0.0, seed=n_seeds)
    assert said / BENCHMARKS <= 0.05 + 0.015, (regime, n_seeds, said)
    assert covered == BENCHMARKS - said


@pytest.mark.parametrize("regime", list(MEASURED))
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
def test_a_true_difference_is_covered_at_least_94_percent(regime, n_seeds):
    _, covered = _simulate(n_seeds, **MEASURED[regime], delta=0.03, seed=100 + n_seeds)
    assert covered / BENCHMARKS >= 0.94, (regime, n_seeds, covered)


def test_the_image_only_percentile_interval_would_not_be_calibrated():
    """The method the verdict replaced (images resampled, seeds fixed) says "better"/"worse" far too often."""
    rng = np.random.default_rng(7)
    idx = bootstrap.draws(N_IMAGES, RESAMPLES, seed=7)
    m = MEASURED["short"]
    said = 0
    for _ in range(400):
        d = rng.normal(0, m["a"], (3, 1)) + rng.normal(0, m["e"], (1, N_IMAGES)) + rng.normal(0, m["c"], (3, N_IMAGES))
        boot = d[:, idx].mean(axis=2).mean(axis=0)  # [B]: seed mean per resample
        iv = stats.image_interval(d.mean(), boot)
        said += stats.verdict(iv["lo"], iv["hi"]) != "no detectable difference"
    assert said / 400 > 0.3


def test_minimum_detectable_effect_has_80_percent_power():
    """At the reported effect a t-test on the seeds' differences detects it in 80% of runs (Monte Carlo)."""
    from scipy import stats as st

    rng = np.random.default_rng(0)
    n, sigma = 3, 0.05
    effect = stats.mde(sigma / math.sqrt(n), n - 1)
    d = rng.normal(effect, sigma, (40_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    power = float(np.mean(np.abs(t) > st.t.ppf(0.975, n - 1)))
    assert power == pytest.approx(0.80, abs=0.01)
    assert stats.mde(0.01, math.inf) == pytest.approx((st.norm.ppf(0.975) + st.norm.ppf(0.8)) * 0.01, rel=1e-9)


def test_seeds_needed_is_the_first_count_that_detects_one_point():
    var_d, var_common = 0.05**2, 0.002**2
    s = stats.seeds_needed(var_d, var_common)
    assert stats.mde(math.sqrt(var_d / s + var_common), s - 1) <= stats.POINT
    assert stats.mde(math.sqrt(var_d / (s - 1) + var_common), s - 2) > stats.POINT
    from scipy import stats as st

    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert s == pytest.approx(var_d / ((stats.POINT / z) ** 2 - var_common), abs=3)  # normal approximation: 286
    assert stats.seeds_needed(var_d, 0.01**2) is None  # the images alone hide a point: no seed count helps


def test_identical_models_give_a_zero_width_no_difference():
    iv = stats.seed_image_interval([0.0, 0.0, 0.0], np.zeros((3, 50)))
    assert (iv["lo"], iv["hi"], iv["verdict"]) == (0.0, 0.0, "no detectable difference")
    assert iv["covers"] == stats.SEEDS_AND_IMAGES and iv["n_seeds"] == 3 and iv["df"] == 2

"""Interleaved timing: the one timing loop of yolo-ema, and whole-model latency in eager torch, onnxruntime and OpenVINO.

Every candidate runs once per round, in alternating order (A B C, C B A, A B C, ...), so that machine noise (other
processes, frequency changes) hits all of them alike. A comparison is a paired ratio: the median of the per-round
ratios of two candidates timed back to back, with a distribution-free 95% interval (:func:`ratio_interval`).
Whole-model latency follows Ultralytics' benchmark set-up: fused eval model, batch 1, float32, one input reused.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # the clock every timing of this module reads; ``use_clock("cpu")`` switches it


def use_clock(name: str) -> None:
    """``wall`` (default) or ``cpu``: the CPU time of this process (all its threads). On a loaded machine CPU time
    leaves out the time other processes hold the cores; it is the compute of a one-thread run (with more threads it
    also counts idle workers' spinning), so use it at one thread."""
    global clock
    if name not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {name!r}")
    clock = CLOCKS[name]


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Seconds of each call of each callable, run round-robin in alternating order; ``{label: [seconds] * repeats}``.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read when the work is asynchronous.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"timing needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    labels = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in labels}
    for i in range(warmup + repeats):
        for k in labels if i % 2 == 0 else labels[::-1]:
            if sync:
                sync()
            t = clock()
            fns[k]()
            if sync:
                sync()
            if i >= warmup:
                samples[k].append(clock() - t)
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """Median seconds per label."""
    return {k: statistics.median(v) for k, v in samples.items()}


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """``{median_ms, q1_ms, q3_ms, runs}`` of one label's samples."""
    ms = [s * 1000 for s in seconds]
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {"median_ms": statistics.median(ms), "q1_ms": q[0], "q3_ms": q[2], "runs": len(ms)}


def eager_latency(models: dict, x, repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Interleaved inference-mode forwards of ready (fused, eval) torch models on ``x``; samples in seconds."""
    import torch

    sync = torch.cuda.synchronize if x.device.type == "cuda" else None
    with torch.inference_mode():
        return interleaved({k: (lambda m=m: m(x)) for k, m in models.items()}, repeats, warmup, sync)


def ratio_interval(num: list[float], den: list[float], level: float = 0.95) -> dict[str, float]:
    """Paired ratio of two labels' per-round samples: the median of the per-round ratios ``num[i] / den[i]`` and a
    distribution-free ``level`` confidence interval of that median (binomial order statistics; no assumption on the
    shape of machine noise). ``{ratio, lo, hi, rounds}``; with too few rounds for the level, the interval is the range.
    """
    if len(num) != len(den) or not num:
        raise ValueError(f"paired ratio needs two equally long non-empty sample lists, got {len(num)} and {len(den)}")
    r = sorted(a / b for a, b in zip(num, den))
    n, tail = len(r), (1 - level) / 2
    # largest k with P(Binomial(n, 1/2) < k) <= tail: [r_(k), r_(n-k+1)] (1-based) covers the median with >= level
    k, cdf = 0, 0.0
    while k < n and cdf + math.comb(n, k) / 2**n <= tail:
        cdf += math.comb(n, k) / 2**n
        k += 1
    lo, hi = (r[k - 1], r[n - k]) if k >= 1 else (r[0], r[-1])
    return {"ratio": statistics.median(r), "lo": lo, "hi": hi, "rounds": n}


def wide(interval: dict[str, float], points: float = 2.0) -> bool:
    """True when a ratio's interval is wider than +-``points`` percentage points (too noisy to report as a result)."""
    return (interval["hi"] - interval["lo"]) * 100 / 2 > points


def ort_session(path, threads: int, cuda: bool = False):
    """The onnxruntime session used for timing: ``threads`` intra-op threads, one inter-op thread, and idle threads
    that sleep instead of spinning (``session.intra_op.allow_spinning=0``: on a shared CPU, spinning workers take the
    cores other processes need and then wait for them, which made batch-1 latency at small images bimodal); on the
    CUDA execution provider when ``cuda``."""
    from yolo_ema.export.backends import ort_session as build

    session = build(path, threads=threads, spinning=False)
    if cuda:
        session.set_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    return session


def onnxruntime_latency(
    paths: dict[str, str], x, threads: int, repeats: int, warmup: int = 2, cuda: bool = False
) -> dict[str, list[float]]:
    """Interleaved onnxruntime runs of ONNX files on ``x`` (numpy or torch) with ``threads`` intra-op threads."""
    import numpy as np

    sessions = {k: ort_session(p, threads, cuda) for k, p in paths.items()}
    feed = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    feeds = {k: {s.get_inputs()[0].name: feed} for k, s in sessions.items()}
    return interleaved({k: (lambda s=s, f=feeds[k]: s.run(None, f)) for k, s in sessions.items()}, repeats, warmup)


def openvino_latency(paths: dict[str, str], x, threads: int, repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Interleaved OpenVINO CPU inferences (fp32, latency hint, ``threads`` inference threads) of models given as an
    ONNX file, an ``.xml`` or an Ultralytics ``*_openvino_model`` folder, on ``x`` (numpy or torch)."""
    from pathlib import Path

    import numpy as np
    import openvino as ov

    def model_file(p: str) -> str:
        return str(next(iter(sorted(Path(p).glob("*.xml"))))) if Path(p).is_dir() else str(p)

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled = {k: core.compile_model(model_file(p), "CPU", config) for k, p in paths.items()}
    requests = {k: c.create_infer_request() for k, c in compiled.items()}
    feed = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    return interleaved({k: (lambda r=r: r.infer([feed])) for k, r in requests.items()}, repeats, warmup)

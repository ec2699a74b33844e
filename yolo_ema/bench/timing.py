"""Interleaved timing: the one timing loop of yolo-ema, and whole-model latency in eager torch, onnxruntime and OpenVINO.

Every candidate runs once per round, in alternating order (A B C, C B A, A B C, ...), so that machine noise (other
processes, frequency changes) hits all of them alike; a ratio is then a ratio of medians taken in one process.
Whole-model latency follows Ultralytics' benchmark set-up: fused eval model, batch 1, float32, one input reused.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable


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
            t = time.perf_counter()
            fns[k]()
            if sync:
                sync()
            if i >= warmup:
                samples[k].append(time.perf_counter() - t)
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


def export_onnx(model, x, path: str) -> str:
    """Export ``model`` on example input ``x`` to ONNX (opset 17, static shape, as Ultralytics' CPU benchmark)."""
    import torch

    torch.onnx.export(model, x, path, opset_version=17, dynamo=False, input_names=["images"], output_names=["out"])
    return path


def onnxruntime_latency(
    paths: dict[str, str], x, threads: int, repeats: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Interleaved onnxruntime CPU runs of ONNX files on ``x`` with ``threads`` intra-op threads; seconds."""
    import onnxruntime as ort

    sessions = {}
    for k, path in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sessions[k] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {"images": x.numpy()}
    return interleaved({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}, repeats, warmup)


def openvino_latency(paths: dict[str, str], x, threads: int, repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Interleaved OpenVINO CPU inferences of ONNX files on ``x`` with ``threads`` inference threads; seconds."""
    import openvino as ov

    core = ov.Core()
    compiled = {
        k: core.compile_model(p, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        for k, p in paths.items()
    }
    requests = {k: c.create_infer_request() for k, c in compiled.items()}
    feed = x.numpy()
    return interleaved({k: (lambda r=r: r.infer([feed])) for k, r in requests.items()}, repeats, warmup)


def onnx_files(models: dict, x, folder: str) -> dict[str, str]:
    """One ONNX file per model in ``folder``; ``{label: path}``."""
    return {k: export_onnx(m, x, os.path.join(folder, f"{k.replace(' ', '_')}.onnx")) for k, m in models.items()}

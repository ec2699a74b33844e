"""Model cost: parameters, GFLOPs (two counters) and inference latency, baseline and EMA side by side.

- Parameters are counted on the model as trained (unfused), like Ultralytics' summary.
- GFLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the fused eval model, batch 1 at ``imgsz``:
  it sees every matmul/convolution at the ATen level, functional calls included, whatever module wraps them.
  Ultralytics' thop-based count (``model.info()``) hooks modules instead, so it can miss functional calls and does
  count some elementwise modules (GroupNorm, activations); both are reported. FLOPs are 2 x multiply-accumulates,
  as thop's GFLOPs are. FlopCounterMode does not count elementwise ops (sigmoid, softmax, normalisation).
- Latency: eager PyTorch on the fused eval models, and onnxruntime and OpenVINO on the files Ultralytics' own exporter
  writes (``format="onnx"`` with its default simplification, ``format="openvino"``), batch 1 at ``imgsz``, fp32. The
  models run one after the other in each round, interleaved (A B, B A, A B, ...), so that machine noise hits them
  alike; each entry has the median and quartiles of N timed runs and, against the first model, the paired ratio
  (median of per-round ratios) with its 95% interval (:func:`yolo_ema.bench.timing.ratio_interval`). Measured at the
  configured thread count and at one thread.
"""

from __future__ import annotations

import copy


def load_model(model):
    """The ``nn.Module`` (DetectionModel) behind a path, a cfg YAML or an Ultralytics ``YOLO`` object."""
    from torch import nn

    if isinstance(model, nn.Module) and not hasattr(model, "predictor"):
        return model
    if not hasattr(model, "model"):
        from ultralytics import YOLO

        model = YOLO(str(model))
    return model.model


def eval_model(model):
    """A fused, eval-mode, float32 CPU copy of ``model`` (never modifies the original)."""
    m = copy.deepcopy(load_model(model)).float().cpu()
    if hasattr(m, "fuse"):
        m = m.fuse(verbose=False) if "verbose" in m.fuse.__code__.co_varnames else m.fuse()
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def count_params(model) -> int:
    """Number of parameters of ``model`` (unfused, as trained)."""
    return sum(p.numel() for p in load_model(model).parameters())


def _input(imgsz: int, batch: int = 1):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, imgsz, imgsz, generator=g)


def count_flops(module, x) -> int:
    """FLOPs of one forward of ``module`` on ``x`` (inference mode), by ``FlopCounterMode``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(x)
    return int(counter.get_total_flops())


def model_flops(model, imgsz: int) -> int:
    """FLOPs of the fused eval model, batch 1 at ``imgsz`` x ``imgsz``."""
    return count_flops(eval_model(model), _input(imgsz))


def thop_gflops(model, imgsz: int) -> float | None:
    """Ultralytics' own (thop) GFLOPs of the fused model at ``imgsz``; None if thop is unavailable or fails."""
    from ultralytics.utils.torch_utils import get_flops

    g = get_flops(eval_model(model), imgsz)
    return float(g) if g else None


def ema_layers(model) -> list:
    """The EMA modules inside ``model``, in order."""
    from yolo_ema.nn.ema import EMA

    try:
        from yolo_ema.nn.ema_paper import PaperEMA
    except ImportError:  # pragma: no cover - optional reference module
        PaperEMA = EMA
    return [m for m in load_model(model).modules() if isinstance(m, (EMA, PaperEMA))]


def ema_inputs(model, x) -> tuple[list, list]:
    """The EMA layers of ``model`` (an eval-mode module) and the input each receives in a forward of ``x``."""
    import torch

    layers = ema_layers(model)
    inputs = {}
    hooks = [
        lay.register_forward_pre_hook(lambda mod, a, i=i: inputs.setdefault(i, a[0])) for i, lay in enumerate(layers)
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return layers, [inputs[i] for i in range(len(layers))]


def ema_own_cost(model, imgsz: int) -> dict:
    """Params and FLOPs of the EMA layers alone, each run in isolation on the input it gets inside ``model``."""
    layers, inputs = ema_inputs(eval_model(model), _input(imgsz))
    flops = sum(count_flops(lay, x.clone()) for lay, x in zip(layers, inputs))
    return {"layers": len(layers), "params": sum(p.numel() for lay in layers for p in lay.parameters()), "flops": flops}


def torch_device(device: str | None):
    """``cpu`` | ``0`` | ``cuda:0`` -> torch.device (CUDA only if available, else a clear error)."""
    import torch

    d = str(device if device is not None else "cpu").strip().lower()
    if d in ("", "cpu"):
        return torch.device("cpu")
    d = d if d.startswith(("cuda", "mps")) else f"cuda:{d.split(',')[0]}"
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine (use --device cpu)")
    return torch.device(d)


def latency(models: dict, imgsz: int, runs: int = 30, warmup: int = 5, device: str = "cpu") -> dict:
    """Interleaved batch-1 forward timings of fused eval models; ``{label: {median_ms, q1_ms, q3_ms, runs}}``."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"latency needs runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    from yolo_ema.bench import timing

    dev = torch_device(device)
    mods = {k: eval_model(v).to(dev) for k, v in models.items()}
    samples = timing.eager_latency(mods, _input(imgsz).to(dev), repeats=runs, warmup=warmup)
    return {k: timing.summary_ms(s) for k, s in samples.items()}


def ultralytics_exports(models: dict, imgsz: int, fmt: str, folder, batch: int = 1) -> dict[str, str]:
    """``{label: path}`` of the files ``YOLO(...).export(format=fmt, imgsz=imgsz)`` writes for each model (a weights
    path, a ``YOLO`` or an ``nn.Module``), each from a float32 checkpoint of its fused-or-not model in ``folder``."""
    from pathlib import Path

    import torch
    from ultralytics import YOLO

    out = {}
    for label, model in models.items():
        stem = "".join(ch if ch.isalnum() else "_" for ch in label) + ("" if batch == 1 else f"_b{batch}")
        pt = Path(folder) / f"{stem}.pt"
        if not pt.exists():
            torch.save({"model": copy.deepcopy(load_model(model)).float().cpu()}, pt)
        out[label] = str(YOLO(str(pt)).export(format=fmt, imgsz=imgsz, batch=batch, device="cpu"))
    return out


def exported_latency(
    models: dict, imgsz: int, runs: int = 30, warmup: int = 5, threads=(1,), folder=None
) -> dict[int, dict[str, dict[str, list[float]]]]:
    """Interleaved batch-1 timings of Ultralytics' ONNX and OpenVINO exports of ``models`` at ``imgsz``;
    ``{threads: {"onnxruntime" | "openvino": {label: seconds}}}`` (a runtime that is not installed is left out)."""
    import tempfile

    from yolo_ema.bench import timing

    x = _input(imgsz).numpy()
    out: dict = {t: {} for t in threads}
    with tempfile.TemporaryDirectory(prefix="yolo-ema-export-") as tmp:
        folder = folder or tmp
        for fmt, runtime, fn in (
            ("onnx", "onnxruntime", timing.onnxruntime_latency),
            ("openvino", "openvino", timing.openvino_latency),
        ):
            try:
                __import__(runtime)
            except ImportError:
                continue
            files = ultralytics_exports(models, imgsz, fmt, folder)
            for t in threads:
                out[t][runtime] = fn(files, x, t, repeats=runs, warmup=warmup)
    return out


def _entries(samples: dict[str, list[float]], threads: int, device: str) -> dict[str, dict]:
    """Per label: summary in ms, the threads and device, and the paired ratio to the first label with its interval."""
    from yolo_ema.bench import timing

    first = next(iter(samples))
    return {
        k: {
            **timing.summary_ms(v),
            "threads": threads,
            "device": device,
            "vs_first": timing.ratio_interval(v, samples[first]),
        }  # fmt: skip
        for k, v in samples.items()
    }


def measure(models: dict, sizes, runs: int = 30, warmup: int = 5, device: str = "cpu", progress=print) -> dict:
    """Params, GFLOPs (flop counter and thop) and EMA layers' own cost at the first size, and latency at each size.

    ``models``: {label: weights}; ``sizes``: image sizes (an int or a list). Latency: eager PyTorch on ``device`` and,
    on a CPU, onnxruntime and OpenVINO on Ultralytics' exports, at the current torch thread count and at one thread;
    ``{label: {..., "latency": {size: {backend: t}}}}`` with backend ``eager``, ``onnxruntime``, ``openvino`` and,
    when the thread count is not one, the same names followed by `` 1 thread``.
    """
    import torch

    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    imgsz = sizes[0]
    out = {}
    for label, model in models.items():
        progress(f"cost: counting params and FLOPs of {label} at imgsz {imgsz}")
        own = ema_own_cost(model, imgsz)
        out[label] = {
            "params": count_params(model),
            "gflops": model_flops(model, imgsz) / 1e9,
            "gflops_thop": thop_gflops(model, imgsz),
            "ema_layers": own["layers"],
            "ema_params": own["params"],
            "ema_gflops": own["flops"] / 1e9,
            "imgsz": imgsz,
            "latency": {},
        }
    dev = torch_device(device)
    threads = torch.get_num_threads()
    counts = list(dict.fromkeys([threads, 1]))
    for s in sizes:
        progress(f"cost: timing {', '.join(models)} at {s}x{s}, interleaved ({warmup} warm-up + {runs} runs, batch 1)")
        by: dict[str, dict] = {}
        for t in counts:
            suffix = "" if t == threads else f" {t} thread"
            torch.set_num_threads(t)
            try:
                mods = {k: eval_model(v).to(dev) for k, v in models.items()}
                by["eager" + suffix] = _entries(timing_eager(mods, s, runs, warmup, dev), t, str(dev))
            finally:
                torch.set_num_threads(threads)
        if dev.type == "cpu":
            for t, runtimes in exported_latency(models, s, runs, warmup, threads=counts).items():
                suffix = "" if t == threads else f" {t} thread"
                for runtime, samples in runtimes.items():
                    by[runtime + suffix] = _entries(samples, t, "cpu")
        for label in models:
            out[label]["latency"][str(s)] = {backend: e[label] for backend, e in by.items()}
    return out


def timing_eager(mods: dict, imgsz: int, runs: int, warmup: int, dev) -> dict[str, list[float]]:
    """Interleaved eager samples (seconds) of ready models at ``imgsz``."""
    from yolo_ema.bench import timing

    return timing.eager_latency(mods, _input(imgsz).to(dev), repeats=runs, warmup=warmup)


def ort_latency(models: dict, imgsz: int, runs: int = 30, warmup: int = 5, threads: int = 1) -> dict:
    """Interleaved batch-1 onnxruntime (CPU) timings of Ultralytics' ONNX exports of ``models`` at ``imgsz``;
    ``{label: {median_ms, q1_ms, q3_ms, runs}}``."""
    from yolo_ema.bench import timing

    samples = exported_latency(models, imgsz, runs, warmup, threads=(threads,))[threads].get("onnxruntime", {})
    return {k: timing.summary_ms(v) for k, v in samples.items()}

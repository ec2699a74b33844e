"""`yolo-ema speed`: EMA layer and whole-model speed, memory and FLOPs against the paper's formulation, side by side.

EMA: Ouyang et al., "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", ICASSP 2023,
https://arxiv.org/abs/2305.13563

The reference is :class:`yolo_ema.nn.ema_paper.PaperEMA`, the paper's equations step by step; the measured module is
the default :class:`yolo_ema.nn.ema.EMA` with the same state_dict. Every ratio comes from runs interleaved in one
process (:mod:`yolo_ema.bench.timing`); whole-model figures are paired ratios (median of per-round ratios) with a 95%
interval, and a figure whose interval is wider than +-2 points is flagged as noise. The load average is printed.

Measured:

- layer forward (inference mode) at several shapes and forward+backward at one shape, with output/gradient parity;
- training activation memory: the peak of bytes allocated during forward+backward (torch profiler memory events,
  which see every CPU allocation and free) over the input's bytes, and the bytes autograd keeps between forward and
  backward (saved tensors, de-duplicated by storage, input and parameters excluded);
- FLOPs with ``torch.utils.flop_counter`` (:func:`yolo_ema.bench.cost.count_flops`);
- whole models, batch 1, fp32: YOLOv8 with EMA on the three neck outputs (``cfg/yolov8-ema.yaml``), with our EMA and
  with the paper's formulation, against the same model without EMA: eager PyTorch (fused), and onnxruntime and
  OpenVINO (CPU) running the files Ultralytics' exporter writes (``YOLO(...).export(format="onnx")`` with its default
  simplification, ``format="openvino"``), at each thread count of ``--threads``; optionally Ultralytics'
  ``attempt_compile`` (torch.compile).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from typing import Callable

DEFAULT_SHAPES = "1,128,80,80;1,256,40,40;1,512,20,20;8,256,40,40"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", default="1,2", help="torch / onnxruntime / OpenVINO thread counts, comma-separated (default 1,2)"
    )
    parser.add_argument("--factor", type=int, default=8, help="EMA groups G of the layer measurements (default 8)")
    parser.add_argument(
        "--shapes", default=DEFAULT_SHAPES, help=f"forward shapes B,C,H,W;... (default {DEFAULT_SHAPES})"
    )
    parser.add_argument("--train-shape", default="8,256,40,40", help="forward+backward and memory shape B,C,H,W")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per layer measurement (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    parser.add_argument("--scales", default="n,s", help="YOLOv8 scales of the whole-model table (default n,s)")
    parser.add_argument("--sizes", default="256,640", help="image sizes of the whole-model table (default 256,640)")
    parser.add_argument("--model-repeats", type=int, default=20, help="timed repeats per whole-model measurement")
    parser.add_argument("--no-model", action="store_true", help="skip the whole-model table")
    parser.add_argument("--device", default="cpu", help="whole-model eager device: cpu | 0 | cuda:0 (default cpu)")
    parser.add_argument("--batch", default="1", help="whole-model batch sizes, comma-separated (default 1)")
    parser.add_argument("--no-layer", action="store_true", help="skip the layer measurements")
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime and OpenVINO in the model table")
    parser.add_argument("--no-openvino", action="store_true", help="skip OpenVINO in the model table")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (Ultralytics attempt_compile)")
    parser.add_argument("--json", help="also write the whole-model records (ratios, intervals, load) here as JSON")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (default) or this process' CPU time (for one-thread runs on a loaded machine)",
    )


def _shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    if len(shape) != 4:
        raise ValueError(f"shape must be B,C,H,W, got {text!r}")
    return shape


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _pair(channels: int, factor: int, seed: int = 0):
    """A paper-formulation EMA and ours with the same random (non-default) parameters."""
    import torch

    from yolo_ema.nn.ema import EMA
    from yolo_ema.nn.ema_paper import PaperEMA

    torch.manual_seed(seed)
    paper = PaperEMA(channels, factor)
    with torch.no_grad():
        for p in paper.parameters():
            p.normal_(0.0, 0.3)
    ours = EMA(channels, factor)
    ours.load_state_dict(paper.state_dict(), strict=True)
    return paper, ours


def memory_profile(module, x) -> tuple[int, int]:
    """(peak bytes allocated during forward+backward, bytes saved for backward) for ``module(x)``.

    The input and the output gradient exist before and are not counted; the output, every temporary, the input
    gradient and parameter gradients are. Saved bytes are the storages autograd keeps from forward to backward,
    de-duplicated, without the input's and the parameters' storages.
    """
    import json
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    x = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)
    for p in module.parameters():
        p.grad = None
    skip = {x.untyped_storage().data_ptr()} | {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            saved[st.data_ptr()] = st.nbytes()
        return t

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = module(x)
        out.backward(grad)
        del out
    with tempfile.TemporaryDirectory() as tmp:  # the chrome trace has every allocation and free, in order
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)["traceEvents"]
    events = sorted((e for e in trace if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    live = peak = 0
    for e in events:
        live += e["args"]["Bytes"]
        peak = max(peak, live)
    return peak, sum(saved.values())


def layer_benchmarks(args) -> None:
    """``--layer``: ours against the paper formulation on single layers: forward time, a training step (time,
    parity of outputs and gradients, memory), FLOPs."""
    import torch

    print(f"== EMA layer, factor {args.factor}, fp32, {torch.get_num_threads()} threads (medians, interleaved)")
    shapes = [_shape(text) for text in args.shapes.split(";")]
    for shape in shapes:
        layer_forward(shape, args.factor, args.repeats, args.warmup)
    layer_training(_shape(args.train_shape), args.factor, args.repeats, args.warmup)
    for shape in shapes:
        layer_flops(shape, args.factor)


def layer_forward(shape: tuple, factor: int, repeats: int, warmup: int) -> None:
    """Inference time of the two formulations on input ``shape`` (interleaved medians) and their largest difference."""
    import torch

    from yolo_ema.bench import timing

    paper, ours = _pair(shape[1], factor)
    paper.eval()
    ours.eval()
    x = torch.randn(shape)
    with torch.inference_mode():
        err = (paper(x) - ours(x)).abs().max().item()
    t = timing.medians(timing.eager_latency({"paper": paper, "ours": ours}, x, repeats, warmup))
    print(
        f"forward {shape}: paper {_ms(t['paper'])}  ours {_ms(t['ours'])}  ratio {t['ours'] / t['paper']:.3f}  "
        f"(max |diff| {err:.1e})"
    )


def layer_training(shape: tuple, factor: int, repeats: int, warmup: int) -> None:
    """Forward+backward time, parity of outputs and gradients, and memory of the two formulations at ``shape``."""
    import torch

    from yolo_ema.bench import timing

    paper, ours = _pair(shape[1], factor)
    x = torch.randn(shape)
    grad = torch.randn(shape)

    def step(m) -> Callable[[], None]:
        def run() -> None:
            m(x.detach().requires_grad_(True)).backward(grad)

        return run

    samples = timing.interleaved({"paper": step(paper), "ours": step(ours)}, max(3, repeats // 2), max(1, warmup - 1))
    t = timing.medians(samples)
    print(
        f"forward+backward {shape}: paper {_ms(t['paper'])}  ours {_ms(t['ours'])}  ratio {t['ours'] / t['paper']:.3f}"
    )

    # parity of outputs and gradients (input and every parameter; parameter gradients relative to their scale)
    xs = [x.detach().clone().requires_grad_(True) for _ in range(2)]
    outs = [m(xi) for m, xi in zip((paper, ours), xs)]
    for p in list(paper.parameters()) + list(ours.parameters()):
        p.grad = None
    for o in outs:
        o.backward(grad)
    d_out = (outs[0] - outs[1]).abs().max().item()
    d_in = (xs[0].grad - xs[1].grad).abs().max().item()
    d_par = max(
        ((a.grad - b.grad).abs().max() / a.grad.abs().max().clamp_min(1.0)).item()
        for a, b in zip(paper.parameters(), ours.parameters())
    )
    print(f"parity {shape}: output {d_out:.1e}  input grad {d_in:.1e}  param grad (rel. to max(1,|g|)) {d_par:.1e}")

    nbytes = x.numel() * x.element_size()
    for name, m in (("paper", paper), ("ours", ours)):
        peak, kept = memory_profile(m, x)
        print(
            f"memory {name} {shape}: fwd+bwd peak {peak / nbytes:.2f}x input  saved for backward {kept / nbytes:.2f}x"
        )


def layer_flops(shape: tuple, factor: int) -> None:
    """FLOPs of the two formulations at ``shape`` (``FlopCounterMode``)."""
    import torch

    from yolo_ema.bench.cost import count_flops

    paper, ours = _pair(shape[1], factor)
    x = torch.randn(shape)
    fp, fo = count_flops(paper, x), count_flops(ours, x)
    print(f"flops {shape}: paper {fp / 1e6:.1f} MFLOPs  ours {fo / 1e6:.1f} MFLOPs  ratio {fo / fp:.3f}")


def build_models(scale: str) -> dict:
    """Eval YOLOv8 models at ``scale``: ``{"baseline", "ours", "paper"}``; "ours" has EMA on the three neck outputs
    (``cfg/yolov8-ema.yaml``) with random non-default parameters, "paper" is a copy of it whose EMA layers are
    :class:`PaperEMA` (same parameters; the class swapped, so eager calls, tracing and every exporter run the paper's
    forward)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    import yolo_ema.seam as plugin
    from yolo_ema.nn.ema import EMA
    from yolo_ema.nn.ema_paper import PaperEMA
    from yolo_ema.resources import package_path

    plugin.register()
    cfg = str(package_path("cfg", "yolov8-ema.yaml")).replace("yolov8-ema.yaml", f"yolov8{scale}-ema.yaml")
    models = {
        "baseline": DetectionModel(f"yolov8{scale}.yaml", verbose=False),
        "ours": DetectionModel(cfg, verbose=False),
    }
    with torch.no_grad():  # non-default EMA parameters so that no branch is trivially constant
        for e in models["ours"].modules():
            if isinstance(e, EMA):
                for p in e.parameters():
                    p.normal_(0.0, 0.3)
    models["paper"] = copy.deepcopy(models["ours"])
    for e in models["paper"].modules():
        if isinstance(e, EMA):
            e.__class__ = PaperEMA
    for m in models.values():
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return models


def _cell(iv: dict) -> str:
    return f"{(iv['ratio'] - 1) * 100:+6.1f}% [{(iv['lo'] - 1) * 100:+.1f}, {(iv['hi'] - 1) * 100:+.1f}]"


def _row(scale: str, imgsz: int, runtime: str, threads: int, samples: dict[str, list[float]]) -> tuple[str, dict]:
    """One table line (baseline median, then ours and paper as paired ratios with 95% intervals) and its record."""
    import statistics

    from yolo_ema.bench import timing

    b = samples["baseline"]
    ivs = {k: timing.ratio_interval(samples[k], b) for k in ("ours", "paper")}
    noisy = [k for k, iv in ivs.items() if timing.wide(iv)]
    note = f"  interval wider than +-2 points ({', '.join(noisy)}): noise, not a result" if noisy else ""
    line = (
        f"yolov8{scale:<2} {imgsz:>5}  {runtime:<12} {threads:>2}  {_ms(statistics.median(b)):>10}"
        f"  {_cell(ivs['ours']):>24}  {_cell(ivs['paper']):>24}{note}"
    )
    rec = {"model": f"yolov8{scale}", "imgsz": imgsz, "runtime": runtime, "threads": threads}
    return line, {**rec, "baseline_ms": statistics.median(b) * 1e3, **ivs, "wide": noisy}


def model_table(args) -> list[dict]:
    """Whole models: eager (fused), and Ultralytics' ONNX and OpenVINO exports, at each thread count."""
    import torch

    from yolo_ema.bench import cost, timing

    counts = _threads(args.threads)
    print(
        "== whole model, YOLOv8 with EMA on the three neck outputs, batch 1, fp32, CPU: eager = fused PyTorch, "
        'onnxruntime / openvino = the files YOLO(...).export(format="onnx" | "openvino") writes; '
        f"{args.model_repeats} interleaved rounds; change over the baseline = median of per-round ratios "
        "[95% interval]"
    )
    print(
        f"{'model':<9} {'imgsz':>5}  {'runtime':<12} {'th':>2}  {'baseline':>10}  {'EMA ours':>24}  {'EMA paper':>24}"
    )
    dev = cost.torch_device(args.device)
    batches = [int(v) for v in str(args.batch).split(",") if v.strip()]
    records, flops = [], []
    for scale in (s.strip() for s in args.scales.split(",") if s.strip()):
        models = build_models(scale)
        for imgsz in (int(v) for v in args.sizes.split(",") if v.strip()):
            fused = {k: cost.eval_model(m).to(dev) for k, m in models.items()}
            for b in batches:
                x = cost._input(imgsz, b).to(dev)
                name = "eager" if dev.type == "cpu" else f"eager {dev.type}"
                name += "" if b == 1 else f" b{b}"
                for t in counts:
                    torch.set_num_threads(t)
                    line, rec = _row(scale, imgsz, name, t, timing.eager_latency(fused, x, args.model_repeats))
                    print(line, flush=True)
                    records.append({**rec, "batch": b, "device": str(dev)})
                    if dev.type != "cpu":
                        break  # threads only matter on the CPU
            torch.set_num_threads(max(counts))
            if not args.no_onnx:
                records += _exported(args, scale, imgsz, models, counts, dev, batches)
            x = cost._input(imgsz)
            if args.compile:
                _compiled(scale, imgsz, {k: m.cpu() for k, m in fused.items()}, x, args.model_repeats)
            fb, fo = cost.count_flops(fused["baseline"].cpu(), x), cost.count_flops(fused["ours"].cpu(), x)
            flops.append(f"yolov8{scale} {imgsz}: {fb / 1e9:.2f} GFLOPs, EMA {(fo - fb) / fb * 100:+.2f}%")
    print("flops (FlopCounterMode): " + "; ".join(flops))
    return records


def _exported(args, scale: str, imgsz: int, models: dict, counts: list[int], dev, batches) -> list[dict]:
    """Ultralytics' ONNX and OpenVINO exports timed on the CPU (batch 1), or onnxruntime CUDA on a GPU (each batch)."""
    from yolo_ema.bench import cost, timing

    cuda = dev.type == "cuda"
    runtimes = {"onnxruntime": ("onnx", timing.onnxruntime_latency)}
    if not args.no_openvino and not cuda:
        runtimes["openvino"] = ("openvino", timing.openvino_latency)
    records = []
    with tempfile.TemporaryDirectory(prefix="yolo-ema-speed-") as tmp:
        for name, (fmt, fn) in runtimes.items():
            try:
                ort = __import__(name)
            except ImportError as e:
                print(f"yolov8{scale:<2} {imgsz:>5}  {name:<12} skipped ({e.name} not installed)")
                continue
            if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
                print(f"yolov8{scale:<2} {imgsz:>5}  {name:<12} skipped (no CUDAExecutionProvider: onnxruntime-gpu)")
                continue
            for b in batches if cuda else [1]:
                files = cost.ultralytics_exports(models, imgsz, fmt, tmp, batch=b)
                x = cost._input(imgsz, b).numpy()
                label = (f"{name} cuda" if cuda else name) + ("" if b == 1 else f" b{b}")
                for t in counts[-1:] if cuda else counts:
                    kw = {"cuda": True} if cuda else {}
                    line, rec = _row(scale, imgsz, label, t, fn(files, x, t, args.model_repeats, **kw))
                    print(line, flush=True)
                    records.append({**rec, "batch": b, "device": str(dev) if cuda else "cpu"})
    return records


def _compiled(scale: str, imgsz: int, models: dict, x, repeats: int) -> None:
    import torch
    from ultralytics.utils.torch_utils import attempt_compile

    from yolo_ema.bench import timing

    try:
        compiled = {
            k: attempt_compile(models[k], device=torch.device("cpu"), imgsz=imgsz, warmup=False)
            for k in ("baseline", "ours")
        }
        samples = timing.eager_latency(compiled, x, repeats)
    except Exception as e:  # compile needs a host C++ compiler; report, do not fail the whole run
        print(
            f"yolov8{scale:<2} {imgsz:>5}  torch.compile skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        )
        return
    iv = timing.ratio_interval(samples["ours"], samples["baseline"])
    print(
        f"yolov8{scale:<2} {imgsz:>5}  {'torch.compile':<12} {torch.get_num_threads():>2}  "
        f"{_ms(timing.medians(samples)['baseline']):>10}  {_cell(iv):>24}  (paper formulation not compiled)",
        flush=True,
    )


def _threads(text) -> list[int]:
    counts = [int(v) for v in str(text).split(",") if v.strip()]
    if not counts or min(counts) < 1:
        raise ValueError(f"--threads must list positive thread counts, got {text!r}")
    return counts


def run(args) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import torch

    counts = _threads(args.threads)
    torch.set_num_threads(max(counts))
    from yolo_ema.bench import timing

    timing.use_clock(args.clock)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {counts}, {args.clock} clock, load average {load}"
    )
    if not args.no_layer:
        layer_benchmarks(args)
    records = [] if args.no_model else model_table(args)
    if args.json:
        from yolo_ema.data import fsio

        end = os.getloadavg() if hasattr(os, "getloadavg") else None
        fsio.write_json(
            args.json, {"load_start": load, "load_end": end, "threads": counts, "clock": args.clock, "rows": records}
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yolo-ema speed", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

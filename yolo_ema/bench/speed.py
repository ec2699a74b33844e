"""`yolo-ema speed`: EMA layer speed, memory and FLOPs against the paper's formulation, side by side.

EMA: Ouyang et al., "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", ICASSP 2023,
https://arxiv.org/abs/2305.13563

The reference is :class:`yolo_ema.nn.ema_paper.PaperEMA`, the paper's equations step by step; the measured module is
the default :class:`yolo_ema.nn.ema.EMA` with the same state_dict. Every ratio comes from runs interleaved in one
process (paper, ours, paper, ours, ...) and is a ratio of medians. This is a script that reports, not a test: on a
shared machine the numbers move, so run it on a quiet one and read the medians.

Measured:

- layer forward (inference mode) at several shapes and forward+backward at one shape, with output/gradient parity;
- training activation memory: the peak of bytes allocated during forward+backward (torch profiler memory events,
  which see every CPU allocation and free) over the input's bytes, and the bytes autograd keeps between forward and
  backward (saved tensors, de-duplicated by storage, input and parameters excluded);
- FLOPs with ``torch.utils.flop_counter`` (it sees functional matmul/conv calls, not elementwise ops);
- inside YOLOv8s-EMA at 640, batch 1, fused: eager EMA time from hooks around the EMA layers over the rest of the
  forward; with Ultralytics' ``attempt_compile`` (torch.compile) and in onnxruntime the EMA share is whole-model time
  with EMA over the same model without EMA, minus one, and in onnxruntime also the EMA nodes' own time from its
  profiler.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

GOAL_FWD = 0.45
GOAL_FWD_BWD = 0.7
GOAL_MODEL_SHARE = 0.03
GOAL_MEMORY = 5.0
GOAL_PARITY = 1e-5
DEFAULT_SHAPES = "1,128,80,80;1,256,40,40;1,512,20,20;8,256,40,40"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2, help="torch / onnxruntime intra-op threads (default 2)")
    parser.add_argument("--factor", type=int, default=8, help="EMA groups G (default 8)")
    parser.add_argument(
        "--shapes", default=DEFAULT_SHAPES, help=f"forward shapes B,C,H,W;... (default {DEFAULT_SHAPES})"
    )
    parser.add_argument("--train-shape", default="8,256,40,40", help="forward+backward and memory shape B,C,H,W")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per layer measurement (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    parser.add_argument("--model", default="yolov8s", help="YOLO scale for the in-model measurement (default yolov8s)")
    parser.add_argument("--imgsz", type=int, default=640, help="in-model image size (default 640)")
    parser.add_argument("--model-repeats", type=int, default=10, help="timed repeats per in-model measurement")
    parser.add_argument("--no-model", action="store_true", help="skip the in-model measurements")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile in-model measurement")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime in-model measurement")


def _shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    if len(shape) != 4:
        raise ValueError(f"shape must be B,C,H,W, got {text!r}")
    return shape


def _verdict(value: float, goal: float) -> str:
    return f"goal <= {goal:g}  {'MET' if value <= goal else 'NOT MET'}"


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of each callable, run round-robin so that machine noise hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


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


def flops(module, x) -> int:
    """Forward FLOPs that ``torch.utils.flop_counter`` sees (matmul / conv family, functional calls included)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())


def layer_benchmarks(args) -> list[bool]:
    import torch

    met: list[bool] = []
    factor = args.factor
    print(f"== EMA layer, factor {factor}, fp32, {torch.get_num_threads()} threads (medians, interleaved)")
    for text in args.shapes.split(";"):
        shape = _shape(text)
        paper, ours = _pair(shape[1], factor)
        paper.eval()
        ours.eval()
        x = torch.randn(shape)
        with torch.inference_mode():
            err = (paper(x) - ours(x)).abs().max().item()
            t = _interleaved(
                {"paper": lambda p=paper, x=x: p(x), "ours": lambda m=ours, x=x: m(x)}, args.repeats, args.warmup
            )
        ratio = t["ours"] / t["paper"]
        met += [ratio <= GOAL_FWD, err <= GOAL_PARITY]
        print(
            f"forward {shape}: paper {t['paper'] * 1e3:.2f} ms  ours {t['ours'] * 1e3:.2f} ms  "
            f"ratio {ratio:.3f}  {_verdict(ratio, GOAL_FWD)}  (max |diff| {err:.1e})"
        )

    shape = _shape(args.train_shape)
    paper, ours = _pair(shape[1], factor)
    x = torch.randn(shape)
    grad = torch.randn(shape)

    def step(m) -> Callable[[], None]:
        def run() -> None:
            xi = x.detach().requires_grad_(True)
            m(xi).backward(grad)

        return run

    t = _interleaved({"paper": step(paper), "ours": step(ours)}, max(3, args.repeats // 2), max(1, args.warmup - 1))
    ratio = t["ours"] / t["paper"]
    met.append(ratio <= GOAL_FWD_BWD)
    print(
        f"forward+backward {shape}: paper {t['paper'] * 1e3:.2f} ms  ours {t['ours'] * 1e3:.2f} ms  "
        f"ratio {ratio:.3f}  {_verdict(ratio, GOAL_FWD_BWD)}"
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
    ok = max(d_out, d_in, d_par) <= GOAL_PARITY
    met.append(ok)
    print(
        f"parity {shape}: output {d_out:.1e}  input grad {d_in:.1e}  param grad (rel. to max(1,|g|)) {d_par:.1e}  "
        f"{_verdict(max(d_out, d_in, d_par), GOAL_PARITY)}"
    )

    nbytes = x.numel() * x.element_size()
    mem = {name: memory_profile(m, x) for name, m in (("paper", paper), ("ours", ours))}
    for name, (peak, kept) in mem.items():
        line = (
            f"memory {name} {shape}: fwd+bwd peak {peak / nbytes:.2f}x input  saved for backward {kept / nbytes:.2f}x"
        )
        if name == "ours":
            met.append(peak / nbytes <= GOAL_MEMORY)
            line += f"  {_verdict(peak / nbytes, GOAL_MEMORY)}"
        print(line)

    for text in args.shapes.split(";"):
        shape = _shape(text)
        paper, ours = _pair(shape[1], factor)
        x = torch.randn(shape)
        fp, fo = flops(paper, x), flops(ours, x)
        print(f"flops {shape}: paper {fp / 1e6:.1f} MFLOPs  ours {fo / 1e6:.1f} MFLOPs  ratio {fo / fp:.3f}")
    return met


def _build_models(scale: str, factor: int):
    """(model with EMA on the three neck outputs, the same model without EMA, EMA modules, how EMA was inserted)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from yolo_ema.nn.ema import EMA

    base = DetectionModel(f"{scale}.yaml", verbose=False)
    family = scale.rstrip("nsmlx")
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, "..", "cfg"), os.path.join(here, "..", "..", "cfg")]  # package, checkout
    cfg = next(
        (os.path.normpath(os.path.join(d, f"{family}-ema.yaml")) for d in candidates if os.path.isdir(d)),
        "",
    )
    if cfg and os.path.exists(cfg):
        import yolo_ema.ultralytics_plugin as plugin

        plugin.register()
        ema_cfg = cfg.replace(f"{family}-ema.yaml", f"{scale}-ema.yaml")  # scale picked by Ultralytics' name rule
        model = DetectionModel(ema_cfg, verbose=False)
        emas = [m for m in model.modules() if isinstance(m, EMA)]
        how = f"cfg/{os.path.basename(ema_cfg)}"
    else:  # EMA(c, factor) on the outputs of layers 15, 18, 21 through forward hooks
        import copy

        model = copy.deepcopy(base)
        emas = []
        for i in (15, 18, 21):
            layer = model.model[i]
            c = layer.cv2.conv.out_channels
            ema = EMA(c, factor)
            layer.add_module("ema_hook", ema)
            layer.register_forward_hook(lambda m, inp, out: m.ema_hook(out))
            emas.append(ema)
        how = f"{scale}.yaml + forward hooks on layers 15, 18, 21"
    for m in (base, model):
        m.eval()
        m.fuse(verbose=False)
        for p in m.parameters():
            p.requires_grad_(False)
    with torch.no_grad():  # non-default EMA parameters so that no branch is trivially constant
        for e in emas:
            for p in e.parameters():
                p.normal_(0.0, 0.3)
    return model, base, emas, how


def _use_paper_forward(emas, on: bool) -> None:
    from yolo_ema.nn.ema_paper import PaperEMA

    for e in emas:
        if on:
            e.forward = PaperEMA.forward.__get__(e)
        else:
            e.__dict__.pop("forward", None)


def model_benchmarks(args) -> list[bool]:
    import torch

    met: list[bool] = []
    model, base, emas, how = _build_models(args.model, args.factor)
    x = torch.rand(1, 3, args.imgsz, args.imgsz)
    print(
        f"== {args.model}-ema, {how}, fused, batch 1, {args.imgsz}x{args.imgsz}, fp32, {torch.get_num_threads()} threads"
    )

    acc = [0.0]
    starts: dict[int, float] = {}

    def pre(m, inp) -> None:
        starts[id(m)] = time.perf_counter()

    def post(m, inp, out) -> None:
        acc[0] += time.perf_counter() - starts[id(m)]

    handles = [h for e in emas for h in (e.register_forward_pre_hook(pre), e.register_forward_hook(post))]

    def timed(paper: bool) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            _use_paper_forward(emas, paper)
            acc[0] = 0.0
            t = time.perf_counter()
            model(x)
            total = time.perf_counter() - t
            return total, acc[0]

        return run

    runs: dict[str, list[tuple[float, float]]] = {"paper": [], "ours": []}
    with torch.inference_mode():
        for _ in range(2):
            timed(True)()
            timed(False)()
            base(x)
        base_t = []
        for _ in range(args.model_repeats):
            runs["paper"].append(timed(True)())
            runs["ours"].append(timed(False)())
            t = time.perf_counter()
            base(x)
            base_t.append(time.perf_counter() - t)
    for h in handles:
        h.remove()
    _use_paper_forward(emas, False)
    tb = statistics.median(base_t)
    for name, rs in runs.items():
        share = statistics.median(e / (t - e) for t, e in rs)
        tot = statistics.median(t for t, _ in rs)
        line = (
            f"in-model eager {name}: EMA layers {statistics.median(e for _, e in rs) * 1e3:.2f} ms = {share * 100:.2f}% "
            f"of the rest (hooks)  model {tot * 1e3:.1f} ms, without EMA {tb * 1e3:.1f} ms"
        )
        if name == "ours":
            met.append(share <= GOAL_MODEL_SHARE)
            line += f"  {_verdict(share, GOAL_MODEL_SHARE)}"
        print(line)

    with torch.inference_mode():
        fl = {"without EMA": flops(base, x), "ours": flops(model, x)}
        _use_paper_forward(emas, True)
        fl["paper"] = flops(model, x)
        _use_paper_forward(emas, False)
    fb = fl["without EMA"]
    print(
        f"in-model flops: without EMA {fb / 1e9:.2f} GFLOPs  EMA paper +{(fl['paper'] - fb) / fb * 100:.2f}%  "
        f"EMA ours +{(fl['ours'] - fb) / fb * 100:.2f}%"
    )

    if not args.no_compile:
        met += _compiled(args, model, base, x)
    if not args.no_onnx:
        met += _onnxruntime(args, model, base, emas, x)
    return met


def _compiled(args, model, base, x) -> list[bool]:
    import torch
    from ultralytics.utils.torch_utils import attempt_compile

    try:
        t0 = time.perf_counter()
        cm = attempt_compile(model, device=torch.device("cpu"), imgsz=args.imgsz, warmup=False)
        cb = attempt_compile(base, device=torch.device("cpu"), imgsz=args.imgsz, warmup=False)
        with torch.inference_mode():
            cm(x)
            cb(x)
            compile_s = time.perf_counter() - t0
            t = _interleaved({"ema": lambda: cm(x), "base": lambda: cb(x)}, args.model_repeats, 1)
    except Exception as e:  # compile needs a host C++ compiler; report, do not fail the whole run
        print(f"in-model torch.compile: skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        return []
    share = t["ema"] / t["base"] - 1
    print(
        f"in-model torch.compile (Ultralytics attempt_compile) ours: EMA {share * 100:+.2f}% over the model without "
        f"EMA ({t['ema'] * 1e3:.1f} vs {t['base'] * 1e3:.1f} ms, compile {compile_s:.0f} s)  {_verdict(share, GOAL_MODEL_SHARE)}"
    )
    return [share <= GOAL_MODEL_SHARE]


def _onnxruntime(args, model, base, emas, x) -> list[bool]:
    import json
    import tempfile

    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        print("in-model onnxruntime: skipped (onnxruntime not installed)")
        return []
    ema_names = {n for n, m in model.named_modules() if any(m is e for e in emas)}
    met: list[bool] = []
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for label, m, paper in (("ours", model, False), ("paper", model, True), ("without EMA", base, False)):
            _use_paper_forward(emas, paper)
            path = os.path.join(tmp, f"{label.replace(' ', '_')}.onnx")
            torch.onnx.export(m, x, path, opset_version=17, dynamo=False, input_names=["images"], output_names=["out"])
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.enable_profiling = label != "without EMA"
            so.profile_file_prefix = os.path.join(tmp, label.replace(" ", "_"))
            sessions[label] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        _use_paper_forward(emas, False)
        feed = {"images": x.numpy()}
        t = _interleaved({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}, args.model_repeats, 2)
        for label in ("ours", "paper"):
            prof = sessions[label].end_profiling()
            with open(prof) as f:
                events = [
                    e for e in json.load(f) if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
                ]
            ema_us = rest_us = 0
            for e in events:
                node = e["name"][: -len("_kernel_time")]
                if any(f"/{n.replace('.', '/')}/" in node or f"/{n}/" in node for n in ema_names):
                    ema_us += e["dur"]
                else:
                    rest_us += e["dur"]
            share = ema_us / max(rest_us, 1)
            diff = t[label] / t["without EMA"] - 1
            line = (
                f"in-model onnxruntime {label}: EMA nodes {share * 100:.2f}% of the other nodes (ORT profiler); "
                f"model {t[label] * 1e3:.1f} ms vs {t['without EMA'] * 1e3:.1f} ms without EMA ({diff * 100:+.2f}%)"
            )
            if label == "ours":
                met.append(share <= GOAL_MODEL_SHARE)
                line += f"  {_verdict(share, GOAL_MODEL_SHARE)}"
            print(line)
    return met


def run(args) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}")
    met = layer_benchmarks(args)
    if not args.no_model:
        met += model_benchmarks(args)
    print(f"goals met: {sum(met)}/{len(met)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yolo-ema speed", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

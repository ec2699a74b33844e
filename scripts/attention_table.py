"""Cost of each attention in one detector, side by side: params, FLOPs and whole-model latency overhead (README table).

Every arm is the shipped config ``{family}{scale}-{arm}.yaml`` (neck placement: after each block feeding Detect),
compared with the Ultralytics baseline ``{family}{scale}.yaml``, all in one process:

- params: the model as trained (unfused); ``attn params``: the inserted layers' own;
- GFLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on the fused eval model, batch 1 (2 x multiply-accumulates of
  matmuls and convolutions; elementwise work such as sigmoid gates, normalisation and SimAM is not counted);
- latency: fused eval models, batch 1, float32, one input reused, timed interleaved (every model once per round,
  alternating order) so that machine noise hits all alike; medians with the quartiles, eager torch and (CPU)
  onnxruntime on the file ``YOLO(...).export(format="onnx")`` writes. Overheads are ratios of medians to the
  baseline's (``yolo-ema speed`` gives paired ratios with intervals for EMA).

    YOLO_OFFLINE=1 python scripts/attention_table.py --imgsz 640 --runs 30
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402

from yolo_ema.bench import cost, timing  # noqa: E402
from yolo_ema.nn import CA, CBAM, ECA, EMA, SA, SE, SimAM  # noqa: E402

ARMS = ("ema", "se", "cbam", "ca", "eca", "sa", "simam")
ATTENTIONS = (EMA, SE, CBAM, CA, ECA, SA, SimAM)


def layer_params(model) -> tuple[int, int]:
    """(number of attention layers, their parameters) in ``model``."""
    layers = [m for m in model.modules() if isinstance(m, ATTENTIONS)]
    return len(layers), sum(p.numel() for m in layers for p in m.parameters())


def measure(models: dict, imgsz: int, runs: int, warmup: int, device: str, onnxruntime: bool, progress=print) -> dict:
    """``{label: {params, attn_layers, attn_params, flops, eager: summary, onnxruntime: summary}}``."""
    out = {}
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    ready = {}
    for label, model in models.items():
        n, p = layer_params(model)
        ready[label] = cost.eval_model(model)
        out[label] = {"params": cost.count_params(model), "attn_layers": n, "attn_params": p}
        out[label]["flops"] = cost.count_flops(ready[label], x)
        progress(f"{label}: {out[label]['params'] / 1e6:.3f} M params, {out[label]['flops'] / 1e9:.2f} GFLOPs")
    dev = cost.torch_device(device)
    progress(f"timing {len(ready)} models eager on {dev}, interleaved ({warmup} warm-up + {runs} rounds)")
    samples = timing.eager_latency({k: m.to(dev) for k, m in ready.items()}, x.to(dev), runs, warmup)
    for label, s in samples.items():
        out[label]["eager"] = timing.summary_ms(s)
    if onnxruntime and dev.type == "cpu":
        with tempfile.TemporaryDirectory() as tmp:
            progress("exporting ONNX with Ultralytics' exporter (static shape, default simplification)")
            paths = cost.ultralytics_exports(models, imgsz, "onnx", tmp)
            progress(f"timing {len(paths)} models in onnxruntime, interleaved ({warmup} warm-up + {runs} rounds)")
            samples = timing.onnxruntime_latency(paths, x, torch.get_num_threads(), runs, warmup)
        for label, s in samples.items():
            out[label]["onnxruntime"] = timing.summary_ms(s)
    return out


def _pct(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+.1f}%"


def _ms(s: dict) -> str:
    return f"{s['median_ms']:.1f} [{s['q1_ms']:.1f}, {s['q3_ms']:.1f}]"


def table(results: dict, base: str, title: str) -> str:
    """Markdown table of ``results`` with every row's differences to the ``base`` row."""
    b = results[base]
    runtimes = [r for r in ("eager", "onnxruntime") if r in b]
    head = f"| {title} | params (M) | attn params | GFLOPs | " + " | ".join(
        f"{r} ms, median [q1, q3] | {r} overhead" for r in runtimes
    )
    lines = [head + " |", "|---" * (4 + 2 * len(runtimes)) + "|"]
    for label, r in results.items():
        row = [
            label,
            f"{r['params'] / 1e6:.3f}" + ("" if label == base else f" ({r['params'] - b['params']:+,})"),
            "-" if label == base else f"{r['attn_params']:,} in {r['attn_layers']} layers",
            f"{r['flops'] / 1e9:.2f}" + ("" if label == base else f" ({(r['flops'] - b['flops']) / 1e6:+.2f} M)"),
        ]
        for rt in runtimes:
            row += [_ms(r[rt]), "-" if label == base else _pct(r[rt]["median_ms"], b[rt]["median_ms"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="yolov8", help="config family (yolov5, yolov8, yolov8-p2, yolo11, yolo26)")
    ap.add_argument("--scale", default="s")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), help=f"attention arms (default: {' '.join(ARMS)})")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--runs", type=int, default=30, help="timed rounds (each model once per round)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="cpu | 0 | cuda:0")
    ap.add_argument("--no-onnxruntime", dest="onnxruntime", action="store_false", help="eager torch timing only")
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    ap.add_argument("--render", metavar="JSON", help="only print the table of a JSON file written by --json")
    args = ap.parse_args(argv)
    if args.render:
        import json

        with open(args.render) as f:
            saved = json.load(f)
        print(
            f"\nbatch 1, {saved['imgsz']}x{saved['imgsz']}, float32, {saved['device']}, {saved['runs']} interleaved rounds\n"
        )
        base = next(iter(saved["models"]))
        print(table(saved["models"], base, f"{base} @{saved['imgsz']}"))
        return 0

    family, tail = (args.family.split("-", 1) + [""])[:2]
    name = f"{family}{args.scale}" + (f"-{tail}" if tail else "")
    base = f"{name}.yaml"
    models = {base.removesuffix(".yaml"): cost.load_model(base)}
    for arm in args.arms:
        cfg = f"{name}-{arm}.yaml"
        models[cfg.removesuffix(".yaml")] = cost.load_model(cfg)
    results = measure(models, args.imgsz, args.runs, args.warmup, args.device, args.onnxruntime)
    dev = cost.torch_device(args.device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nbatch 1, {args.imgsz}x{args.imgsz}, float32, {where}, {args.runs} interleaved rounds\n")
    print(table(results, base.removesuffix(".yaml"), f"{name} @{args.imgsz}"))
    if args.json:
        from yolo_ema.data.fsio import write_json

        write_json(args.json, {"imgsz": args.imgsz, "device": where, "runs": args.runs, "models": results}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

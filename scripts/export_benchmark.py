"""EMA vs baseline after export: ONNX file size and onnxruntime CPU latency, interleaved.

Both models are exported to ONNX with Ultralytics at the same settings (or given as .onnx), then timed in the same
process on the same input with :mod:`yolo_ema.bench.timing` (its interleaved loop and onnxruntime session): each
round runs both sessions once, in alternating order, so load from other processes and CPU frequency drift hit both
equally. The medians of the per-call wall times and the paired ratio EMA / baseline (median of per-round ratios, 95%
interval) are printed, and written as JSON with ``--out``.

Usage::

    python scripts/export_benchmark.py --ema cfg/yolov8n-ema.yaml --base yolov8n.yaml --imgsz 640 --runs 50
    python scripts/export_benchmark.py --ema runs/ema/weights/best.pt --base runs/base/weights/best.pt
    python scripts/export_benchmark.py --ema best_ema.onnx --base best_base.onnx --threads 1

A ``.yaml`` builds a randomly initialised model (latency and size do not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path


def to_onnx(model: str, workdir: Path, name: str, imgsz: int, batch: int, dynamic: bool) -> Path:
    """``model`` as ONNX: a .onnx is used as is; a .pt is exported; a .yaml is built, saved and exported."""
    p = Path(model)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise FileNotFoundError(f"{name}: {p} not found")
        return p
    from ultralytics import YOLO

    from yolo_ema.export.exporting import export

    if p.suffix in (".yaml", ".yml"):
        pt = workdir / f"{name}.pt"
        YOLO(model).save(str(pt))  # model=... resolves Ultralytics' bundled YAMLs (yolov8n.yaml) offline
    elif p.suffix == ".pt":
        if not p.is_file():
            raise FileNotFoundError(f"{name}: {p} not found")
        pt = p
    else:
        raise ValueError(f"{name}: expected .yaml, .pt or .onnx, got {model!r}")
    out = workdir / f"{name}.onnx"
    return export(pt, "onnx", imgsz=imgsz, batch=batch, dynamic=dynamic, output=out).path


def onnx_stats(path: Path) -> dict:
    """File size (bytes) and parameter count (elements of the initializers) of an ONNX model."""
    import numpy as np
    import onnx

    m = onnx.load(str(path))
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    return {"file": str(path), "bytes": path.stat().st_size, "params": params, "nodes": len(m.graph.node)}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ema", default="cfg/yolov8n-ema.yaml", help="EMA model: .yaml, .pt or .onnx")
    ap.add_argument("--base", default="yolov8n.yaml", help="baseline model: .yaml, .pt or .onnx")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dynamic", action="store_true", help="export with dynamic axes (timed at --imgsz/--batch)")
    ap.add_argument("--runs", type=int, default=50, help="timed rounds (each runs both models once)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: onnxruntime default)")
    ap.add_argument("--workdir", help="keep the exported models here (default: a temporary folder)")
    ap.add_argument("--out", help="write the results as JSON here")
    return ap


def _measure(args: argparse.Namespace, files: dict[str, Path]) -> tuple[dict, dict]:
    """({name: ONNX stats}, {name: per-call ms}) of the exported models, from interleaved rounds."""
    import numpy as np

    from yolo_ema.bench import timing

    stats = {n: onnx_stats(f) for n, f in files.items()}
    x = np.random.default_rng(0).random((args.batch, 3, args.imgsz, args.imgsz), dtype=np.float32)
    samples = timing.onnxruntime_latency({n: str(f) for n, f in files.items()}, x, args.threads, args.runs, args.warmup)
    return stats, {n: [t * 1000 for t in v] for n, v in samples.items()}


def _summary(args: argparse.Namespace, stats: dict, times: dict) -> dict:
    """The JSON result: settings, each model's size and medians, size and latency ratios EMA / baseline."""
    from yolo_ema.bench import timing

    med = {n: statistics.median(t) for n, t in times.items()}
    return {
        "imgsz": args.imgsz,
        "batch": args.batch,
        "dynamic": args.dynamic,
        "runs": args.runs,
        "threads": args.threads,
        "models": {n: {**stats[n], "median_ms": med[n], "min_ms": min(times[n])} for n in stats},
        "size_ratio": stats["ema"]["bytes"] / stats["base"]["bytes"],
        "latency_ratio": med["ema"] / med["base"],
        "latency_ratio_paired": timing.ratio_interval(times["ema"], times["base"]),
    }


def _print(result: dict) -> None:
    from yolo_ema.bench import timing

    b, s = result["batch"], result["imgsz"]
    print(f"onnxruntime CPU, input ({b}, 3, {s}, {s}), {result['runs']} interleaved rounds")
    print(f"{'model':<6}{'size MB':>10}{'params':>12}{'nodes':>8}{'median ms':>12}{'min ms':>10}")
    for n, r in result["models"].items():
        print(
            f"{n:<6}{r['bytes'] / 1e6:>10.2f}{r['params']:>12,}{r['nodes']:>8}{r['median_ms']:>12.2f}{r['min_ms']:>10.2f}"
        )
    print(f"size ratio EMA/baseline: {result['size_ratio']:.4f}")
    print(f"latency ratio EMA/baseline (medians): {result['latency_ratio']:.3f}")
    iv = result["latency_ratio_paired"]
    print(
        f"latency ratio EMA/baseline (median of per-round ratios): {iv['ratio']:.3f} "
        f"[95% interval {iv['lo']:.3f}, {iv['hi']:.3f}]"
        + (" (wider than +-2 points: noise)" if timing.wide(iv) else "")
    )


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    with tempfile.TemporaryDirectory(prefix="yolo-ema-export-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            files = {
                n: to_onnx(m, workdir, n, args.imgsz, args.batch, args.dynamic)
                for n, m in (("ema", args.ema), ("base", args.base))
            }
        except (FileNotFoundError, ValueError) as e:
            print(f"export_benchmark: error: {e}", file=sys.stderr)
            return 2
        stats, times = _measure(args, files)
    result = _summary(args, stats, times)
    _print(result)
    if args.out:
        from yolo_ema.data import fsio

        fsio.write_json(args.out, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

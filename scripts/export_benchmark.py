"""EMA vs baseline after export: ONNX file size and onnxruntime CPU latency, interleaved.

Both models are exported to ONNX with Ultralytics at the same settings (or given as .onnx), then timed in the same
process on the same input: each round runs both sessions once, in alternating order (EMA first on even rounds,
baseline first on odd ones), so load from other processes and CPU frequency drift hit both equally. The medians of
the per-call wall times and their ratio (EMA / baseline) are printed, and written as JSON with ``--out``.

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
import time
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


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def interleaved_latency(sessions: dict, x, runs: int, warmup: int) -> dict[str, list[float]]:
    """Per-call wall times in ms for each session, rounds alternating the order of the sessions."""
    names = list(sessions)
    feeds = {n: {s.get_inputs()[0].name: x} for n, s in sessions.items()}
    for _ in range(warmup):
        for n in names:
            sessions[n].run(None, feeds[n])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        for n in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            sessions[n].run(None, feeds[n])
            times[n].append(1000 * (time.perf_counter() - t0))
    return times


def main(argv: list[str] | None = None) -> int:
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
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    import numpy as np

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
        stats = {n: onnx_stats(f) for n, f in files.items()}
        sessions = {n: session(f, args.threads) for n, f in files.items()}
        x = np.random.default_rng(0).random((args.batch, 3, args.imgsz, args.imgsz), dtype=np.float32)
        times = interleaved_latency(sessions, x, args.runs, args.warmup)

    med = {n: statistics.median(t) for n, t in times.items()}
    result = {
        "imgsz": args.imgsz,
        "batch": args.batch,
        "dynamic": args.dynamic,
        "runs": args.runs,
        "threads": args.threads,
        "models": {n: {**stats[n], "median_ms": med[n], "min_ms": min(times[n])} for n in files},
        "size_ratio": stats["ema"]["bytes"] / stats["base"]["bytes"],
        "latency_ratio": med["ema"] / med["base"],
    }
    print(f"onnxruntime CPU, input ({args.batch}, 3, {args.imgsz}, {args.imgsz}), {args.runs} interleaved rounds")
    print(f"{'model':<6}{'size MB':>10}{'params':>12}{'nodes':>8}{'median ms':>12}{'min ms':>10}")
    for n in files:
        r = result["models"][n]
        print(
            f"{n:<6}{r['bytes'] / 1e6:>10.2f}{r['params']:>12,}{r['nodes']:>8}{r['median_ms']:>12.2f}{r['min_ms']:>10.2f}"
        )
    print(f"size ratio EMA/baseline: {result['size_ratio']:.4f}")
    print(f"latency ratio EMA/baseline (medians): {result['latency_ratio']:.3f}")
    if args.out:
        from yolo_ema.data import fsio

        fsio.write_json(args.out, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

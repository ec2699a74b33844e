"""``yolo-ema eval``: small-object evaluation of one or more Ultralytics models on a prepared dataset.

Examples::

    yolo-ema eval --model runs/detect/train/weights/best.pt --data datasets/visdrone
    yolo-ema eval --model base.pt ema.pt --data datasets/visdrone --imgsz 640 --out runs/eval/cmp
    yolo-ema eval --model ema.pt --data datasets/visdrone --slice 640 --overlap 0.2 --compare-full

Writes ``OUT/metrics.json`` (``{"runs": [<evaluate() dict + "label">, ...]}``) and prints a summary table with one
row per run (whole-image and sliced runs side by side), the AI-TOD buckets and the per-class table of each run.
Module import is light: torch/Ultralytics/sahi load inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PER_CLASS_AUTO_LIMIT = 30  # print per-class tables by default only up to this many classes


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``eval`` options on ``p``."""
    p.add_argument("--model", nargs="+", required=True, help="model(s): .pt, .onnx, .yaml ... (several: one row each)")
    p.add_argument("--data", required=True, help="prepared dataset directory (with annotations/{split}.json)")
    p.add_argument("--split", default="val", help="split to evaluate (default: val)")
    p.add_argument("--imgsz", type=int, default=640, help="inference size (of each window when slicing)")
    p.add_argument(
        "--protocol",
        choices=["auto", "coco", "visdrone", "visdrone-coco"],
        default="auto",
        help="auto: visdrone (the VisDrone2019-DET toolkit's own rules) when the ground truth has ignore_regions; "
        "visdrone-coco: a COCO-style variant, not comparable with published VisDrone numbers",
    )
    p.add_argument("--slice", type=int, default=None, metavar="PX", help="sliced inference with sahi, window side")
    p.add_argument("--overlap", type=float, default=0.2, help="slice overlap ratio (default 0.2)")
    p.add_argument("--compare-full", action="store_true", help="with --slice: also evaluate on whole images")
    p.add_argument("--out", default="runs/eval", help="output directory for metrics.json (default runs/eval)")
    p.add_argument("--device", default="cpu", help="cpu, 0, cuda:0 ... (default cpu)")
    p.add_argument("--batch", type=int, default=8, help="images (or slices) per inference batch")
    p.add_argument("--conf", type=float, default=0.001, help="confidence threshold (default 0.001)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU (default 0.7)")
    p.add_argument("--max-det", type=int, default=500, help="detections kept per image (default 500, VisDrone)")
    p.add_argument("--backend", choices=["faster-coco-eval", "pycocotools"], default="faster-coco-eval")
    p.add_argument("--save-dets", action="store_true", help="also write each run's COCO-format detections")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--per-class", dest="per_class", action="store_true", default=None, help="print per-class tables")
    g.add_argument("--no-per-class", dest="per_class", action="store_false", help="do not print per-class tables")


def plan_runs(models: list[str], slice_px: int | None, compare_full: bool) -> list[tuple[str, str, int | None]]:
    """``[(label, model, slice)]``: each model whole-image and/or sliced; labels made unique."""
    if compare_full and not slice_px:
        raise ValueError("--compare-full needs --slice PX")
    runs, seen = [], {}
    for m in models:
        name = Path(m).name
        modes = ([None] if (compare_full or not slice_px) else []) + ([slice_px] if slice_px else [])
        for s in modes:
            label = name if s is None else f"{name} [slice {s}]"
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:
                label = f"{label} #{seen[label]}"
            runs.append((label, m, s))
    return runs


def run(args: argparse.Namespace) -> int:
    """Evaluate every planned run, print tables, write ``metrics.json``; 0 on success, 2 on a usage/data error."""
    from yolo_ema.data import fsio
    from yolo_ema.eval import report
    from yolo_ema.eval.api import evaluate

    try:
        runs = plan_runs(args.model, args.slice, args.compare_full)
        out = Path(args.out)
        results = []
        for label, model, s in runs:
            print(f"[yolo-ema eval] {label}: predicting on {args.data} ({args.split}) ...", file=sys.stderr)
            r = evaluate(
                model,
                args.data,
                split=args.split,
                imgsz=args.imgsz,
                protocol=args.protocol,
                device=args.device,
                slice=s,
                overlap=args.overlap,
                batch=args.batch,
                conf=args.conf,
                iou=args.iou,
                max_det=args.max_det,
                backend=args.backend,
                return_detections=args.save_dets,
            )
            r = {"label": label, **r}
            dets = r.pop("detections", None)
            if dets is not None:
                out.mkdir(parents=True, exist_ok=True)
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
                fsio.write_text(out / f"detections_{safe}.json", json.dumps(dets))
            results.append(r)
    except (FileNotFoundError, ValueError, ImportError, TypeError) as e:
        print(f"yolo-ema eval: error: {e}", file=sys.stderr)
        return 2

    first = results[0]
    print(f"\nprotocol: {first['protocol']}   images: {first['n_images']}   objects: {first['n_gt']}")
    print(
        "AP/AR in %; '-' = no ground truth in that bucket. APvt/APt/APs16/APm32: AI-TOD buckets <8, 8-16, 16-32, >=32 px"
    )
    print(report.summary_table(results))
    n_cls = len(first["per_class"])
    show_pc = args.per_class if args.per_class is not None else n_cls <= PER_CLASS_AUTO_LIMIT
    for r in results:
        print(f"\n== {r['label']}  ({r['n_dets']} detections, {r['run']['predict_seconds']} s)")
        print(report.buckets_table(r))
        if show_pc:
            print()
            print(report.per_class_table(r))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    fsio.write_text(path, json.dumps({"runs": results}, indent=2))
    print(f"\nwrote {path}")
    return 0

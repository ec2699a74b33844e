"""`yolo-ema benchmark`: baseline vs its EMA variant on the same data, seeds and settings; writes a report.

With no arguments: the embedded synthetic set, yolov8n vs yolov8n-ema, 3 seeds, a few CPU epochs (a pipeline
check that fits in ~15 minutes on 2 cores, not an accuracy result). ``--data visdrone`` / ``--data coco`` run the
real experiment with GPU defaults (imgsz 640, 200/300 epochs, batch 16/32, device 0). Options left out take the
preset's value; the presets are in :data:`PRESETS`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

# Defaults per --data (an explicit option always wins). The synthetic preset is sized to finish in ~15 min on a
# 2-core CPU: 80 images of 256x256 (60 train / 16 val), 5 epochs at imgsz 256, batch 8, validation only at the end.
PRESETS = {
    "synthetic": dict(epochs=5, imgsz=256, batch=8, device="cpu", workers=0, val=False),
    "visdrone": dict(epochs=200, imgsz=640, batch=16, device="0", workers=8, val=True),
    "coco": dict(epochs=300, imgsz=640, batch=32, device="0", workers=8, val=True),
    "folder": dict(epochs=100, imgsz=640, batch=16, device="0", workers=8, val=True),
}
SYNTHETIC_IMAGES, SYNTHETIC_SIZE = 80, 256


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``benchmark`` options on ``p``."""
    p.add_argument(
        "--data",
        default="synthetic",
        help="synthetic (default, generated and cached) | visdrone | coco (prepared per datasets.yaml) | "
        "PATH to a folder prepared by `yolo-ema prepare`",
    )
    p.add_argument("--model", default="yolov8n", help="baseline name; EMA variant = cfg/<name>-ema.yaml (yolov8n)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (synthetic 5, visdrone 200, coco 300)")
    p.add_argument("--imgsz", type=int, default=None, help="train/eval/latency image size (synthetic 256, else 640)")
    p.add_argument("--batch", type=int, default=None, help="batch size (synthetic 8, visdrone 16, coco 32)")
    p.add_argument("--device", default=None, help="cpu | 0 | 0,1 (synthetic cpu, else 0)")
    p.add_argument("--workers", type=int, default=None, help="dataloader workers (synthetic 0, else 8)")
    p.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="output folder (runs/benchmark)")
    p.add_argument("--weights", nargs=2, metavar=("BASE.pt", "EMA.pt"), default=None, help="skip training")
    p.add_argument("--pretrained", default=None, help="initialise both models from these weights (BASE.pt)")
    p.add_argument("--data-dir", type=Path, default=None, help="prepared visdrone/coco folder (datasets/<name>)")
    p.add_argument("--source", type=Path, default=None, help="raw dataset to prepare into --data-dir if needed")
    p.add_argument("--cache", type=Path, default=None, help="synthetic data cache (OUT/data)")
    p.add_argument("--split", default="val", help="evaluation split (val)")
    p.add_argument("--protocol", default="auto", choices=("auto", "coco", "visdrone"), help="evaluation protocol")
    p.add_argument("--synthetic-images", type=int, default=SYNTHETIC_IMAGES, help="synthetic images in total (80)")
    p.add_argument("--synthetic-size", type=int, default=SYNTHETIC_SIZE, help="synthetic image side in px (256)")
    p.add_argument("--latency-runs", type=int, default=30, help="timed forward passes per model (30)")
    p.add_argument("--latency-warmup", type=int, default=5, help="untimed warm-up passes per model (5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the latency timing (all cores)")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--val", dest="val", action="store_true", default=None, help="validate every epoch")
    v.add_argument("--no-val", dest="val", action="store_false", help="validate only after the last epoch")


def preset_name(data: str) -> str:
    return data if data in ("synthetic", "visdrone", "coco") else "folder"


def config_from_args(args: argparse.Namespace):
    """A :class:`yolo_ema.bench.pipeline.Config` from parsed arguments and the preset of ``--data``."""
    from yolo_ema.bench.pipeline import Config

    preset = dict(PRESETS[preset_name(args.data)])
    if preset["device"] != "cpu" and args.device is None:
        import torch

        if not torch.cuda.is_available():
            print(f"benchmark: no CUDA device here, running the {args.data} preset on cpu", file=sys.stderr)
            preset["device"] = "cpu"
    for k in preset:
        if getattr(args, k, None) is not None:
            preset[k] = getattr(args, k)
    for k in ("epochs", "imgsz", "batch"):
        if preset[k] < 1:
            raise ValueError(f"--{k} must be >= 1, got {preset[k]}")
    return Config(
        data=args.data,
        model=args.model,
        seeds=list(args.seeds),
        out=args.out,
        weights=args.weights,
        pretrained=args.pretrained,
        data_dir=args.data_dir,
        source=args.source,
        cache=args.cache,
        split=args.split,
        protocol=args.protocol,
        synthetic_images=args.synthetic_images,
        synthetic_size=args.synthetic_size,
        latency_runs=args.latency_runs,
        latency_warmup=args.latency_warmup,
        threads=args.threads,
        command="yolo-ema benchmark" + "".join(" " + shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "benchmark"
        else None,
        **preset,
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 on success, 2 on a usage/data error (message names the culprit)."""
    from yolo_ema.bench.runner import BenchmarkError

    try:
        cfg = config_from_args(args)
        from yolo_ema.bench import pipeline

        if len(set(cfg.seeds)) != len(cfg.seeds):
            raise ValueError(f"--seeds has duplicates: {cfg.seeds}")
        res = pipeline.run(cfg)
    except (BenchmarkError, ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"yolo-ema benchmark: error: {msg}", file=sys.stderr)
        return 2
    print(Path(res["report"]["md"]).read_text(encoding="utf-8"))
    return 0

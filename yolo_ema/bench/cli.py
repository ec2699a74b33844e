"""`yolo-ema benchmark`: a baseline and its variants (arms) on the same data, seeds and settings; writes a report.

With no arguments: the embedded synthetic set, yolov8n against yolov8n-ema (EMA in the neck), 5 seeds, sized to
learn on a 2-core CPU within 15 minutes: the baseline is pre-trained once, then every model is fine-tuned from it
per seed, two runs at a time. With a CUDA device (``--device 0``) the
synthetic preset scales up (more and larger images, longer schedules). ``--data visdrone`` / ``--data coco`` / a
prepared folder run the real experiment with GPU defaults. Options left out take the preset's value
(:mod:`yolo_ema.bench.presets`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from yolo_ema.bench.presets import DEFAULT, PRESETS, preset_name
from yolo_ema.data.synthetic import DEFAULT_IMAGES, DEFAULT_SIZE
from yolo_ema.eval.metrics import PROTOCOLS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``benchmark`` options on ``p``."""
    p.add_argument(
        "--data",
        default="synthetic",
        help="synthetic (default, generated and cached) | visdrone | coco (prepared per datasets.yaml) | "
        "PATH to a folder prepared by `yolo-ema prepare`",
    )
    p.add_argument("--model", default="yolov8n", help="baseline name (yolov8n); arm X is the config <model>-X.yaml")
    p.add_argument("--arms", nargs="+", default=None,
                   help=f"compared variants (synthetic: {' '.join(DEFAULT['arms'])}; e.g. cbam, c2f-ema; control: the "
                   "baseline again with other seeds, the A/A check of the run's noise floor)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help=f"training seeds (synthetic: {' '.join(map(str, DEFAULT['seeds']))})")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="epochs per model and seed (synthetic 3, visdrone 200)")
    p.add_argument("--pretrain-epochs", type=int, default=None,
                   help="pre-train the baseline once for this many epochs; every model is fine-tuned from it "
                   "(synthetic 6; 0: train each model from scratch or --pretrained)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None, help="runs trained at once (CPU: cores // training threads)")
    p.add_argument("--imgsz", type=int, default=None, help="train/eval image size (synthetic 256, else 640)")
    p.add_argument("--batch", type=int, default=None, help="batch size (synthetic 16, visdrone 16, coco 32)")
    p.add_argument("--device", default=None,
                   help="cpu | 0 | 0,1,2,3 | all (synthetic cpu, else 0); several GPUs: one run per GPU at once, "
                   "each pinned to its GPU (--jobs 1: each run over all of them, DDP)")  # fmt: skip
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler (tcp://host:8786): each run is a task on that cluster asking for GPU=1 (CPU: "
                   "runs=1); --out must be on storage every worker sees; needs pip install 'yolo-ema[dask]'")  # fmt: skip
    p.add_argument("--workers", type=int, default=None, help="dataloader workers (synthetic 0, else 8)")
    p.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="output folder (runs/benchmark)")
    p.add_argument("--weights", nargs="+", metavar="W.pt", default=None,
                   help="skip training: the baseline's weights, then each arm's")  # fmt: skip
    p.add_argument("--pretrained", default=None, help="start every model from these weights (BASE.pt)")
    p.add_argument("--data-dir", type=Path, default=None, help="prepared visdrone/coco folder (datasets/<name>)")
    p.add_argument("--source", type=Path, default=None, help="raw dataset to prepare into --data-dir if needed")
    p.add_argument("--cache", type=Path, default=None, help="synthetic data cache (OUT/data)")
    p.add_argument("--split", default="val", help="evaluation split (val)")
    p.add_argument("--protocol", default="auto", choices=PROTOCOLS, help="evaluation protocol (auto)")
    p.add_argument("--synthetic-images", type=int, default=None,
                   help=f"synthetic images in total ({DEFAULT_IMAGES}; 4000 on a GPU)")  # fmt: skip
    p.add_argument("--synthetic-size", type=int, default=None,
                   help=f"synthetic image side in px ({DEFAULT_SIZE}; 640 on a GPU)")  # fmt: skip
    p.add_argument("--resamples", type=int, default=None,
                   help="bootstrap resamples of the validation images (synthetic 500, else 1000)")  # fmt: skip
    p.add_argument("--latency-sizes", type=int, nargs="+", default=None,
                   help="image sizes of the latency timing (default: --imgsz and 640)")  # fmt: skip
    p.add_argument("--latency-runs", type=int, default=30, help="timed forward passes per model (30)")
    p.add_argument("--latency-warmup", type=int, default=5, help="untimed warm-up passes per model (5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the latency timing (all cores)")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--val", dest="val", action="store_true", default=None, help="validate every epoch")
    v.add_argument("--no-val", dest="val", action="store_false", help="validate only after the last epoch")


def config_from_args(args: argparse.Namespace):
    """A :class:`yolo_ema.bench.pipeline.Config` from parsed arguments and the preset of ``--data``."""
    from yolo_ema.bench.pipeline import Config

    preset = dict(PRESETS[preset_name(args.data, args.device)])
    if preset["device"] != "cpu" and args.device is None and not args.scheduler:  # the workers have the GPUs
        import torch

        if not torch.cuda.is_available():
            print(f"benchmark: no CUDA device here, running the {args.data} preset on cpu", file=sys.stderr)
            preset["device"] = "cpu"
    for k in preset:
        if getattr(args, k, None) is not None:
            preset[k] = getattr(args, k)
    for k in ("epochs", "imgsz", "batch", "resamples"):
        v = preset.get(k, getattr(args, k, 1))
        if v < 1:
            raise ValueError(f"--{k} must be >= 1, got {v}")
    if preset.get("pretrain_epochs", 0) < 0:
        raise ValueError(f"--pretrain-epochs must be >= 0, got {preset['pretrain_epochs']}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.scheduler:
        from yolo_ema.bench.cluster import preflight

        preflight(preset["device"])  # Dask installed, --device usable on a worker
    else:
        from yolo_ema.bench.jobs import resolve_device

        preset["device"] = resolve_device(preset["device"])  # all -> 0,1,... of this machine
    if args.pretrained and args.pretrain_epochs is None:
        preset["pretrain_epochs"] = 0  # the given weights are the start
    return Config(
        data=args.data,
        model=args.model,
        out=args.out,
        weights=args.weights,
        pretrained=args.pretrained,
        data_dir=args.data_dir,
        source=args.source,
        cache=args.cache,
        split=args.split,
        protocol=args.protocol,
        jobs=args.jobs,
        scheduler=args.scheduler,
        latency_sizes=args.latency_sizes,
        latency_runs=args.latency_runs,
        latency_warmup=args.latency_warmup,
        threads=args.threads,
        command="yolo-ema benchmark" + "".join(" " + shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "benchmark"
        else None,
        **{k: list(v) if k in ("arms", "seeds") else v for k, v in preset.items()},
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 on success, 2 on a usage/data error (message names the culprit)."""
    from yolo_ema.bench.runner import BenchmarkError

    try:
        cfg = config_from_args(args)
        from yolo_ema.bench import pipeline

        res = pipeline.run(cfg)
    except (BenchmarkError, ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"yolo-ema benchmark: error: {msg}", file=sys.stderr)
        return 2
    print(Path(res["report"]["md"]).read_text(encoding="utf-8"))
    return 0

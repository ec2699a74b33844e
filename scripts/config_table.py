"""Params and GFLOPs of every cfg/ EMA model vs its Ultralytics baseline (markdown table for the README).

GFLOPs are counted two ways at the given image size: Ultralytics' ``model.info()`` counter (thop module hooks,
which sees only submodule calls) and ``torch.utils.flop_counter.FlopCounterMode`` (every aten op, so it also sees the
functional parts of a forward). Both count multiply-adds x2 (GFLOPs), batch 1.

    YOLO_OFFLINE=1 python scripts/config_table.py --imgsz 640 --scales n s
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils.torch_utils import get_flops  # noqa: E402

CFG = Path(__file__).resolve().parents[1] / "cfg"
FAMILIES = [  # (EMA config with {s}, baseline with {s})
    ("yolov5{s}-ema.yaml", "yolov5{s}.yaml"),
    ("yolov8{s}-ema.yaml", "yolov8{s}.yaml"),
    ("yolov8{s}-p2-ema.yaml", "yolov8{s}-p2.yaml"),
    ("yolo11{s}-ema.yaml", "yolo11{s}.yaml"),
    ("yolo26{s}-ema.yaml", "yolo26{s}.yaml"),
]


def measure(cfg: str, imgsz: int) -> tuple[float, float, float]:
    """(params in millions, thop GFLOPs, flop-counter GFLOPs) of a fused, eval-mode model at imgsz."""
    model = DetectionModel(cfg, verbose=False).fuse(verbose=False).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    thop = get_flops(model, imgsz)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, imgsz, imgsz))
    return params, thop, counter.get_total_flops() / 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--scales", nargs="+", default=list("nsmlx"))
    args = ap.parse_args(argv)
    print(f"| model @{args.imgsz} | params (M) | vs baseline | GFLOPs (thop) | GFLOPs (flop counter) | vs baseline |")
    print("|---|---|---|---|---|---|")
    for ema, base in FAMILIES:
        for s in args.scales:
            pe, te, fe = measure(str(CFG / ema.format(s=s)), args.imgsz)
            pb, tb, fb = measure(base.format(s=s), args.imgsz)
            print(
                f"| {ema.format(s=s).replace('.yaml', '')} | {pe:.3f} | +{(pe - pb) * 1e3:.1f}k ({(pe / pb - 1) * 100:+.2f}%) "
                f"| {te:.2f} (base {tb:.2f}) | {fe:.2f} | base {fb:.2f} ({(fe / fb - 1) * 100:+.2f}%) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

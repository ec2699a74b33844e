"""Params and GFLOPs of every shipped config beside its Ultralytics baseline (markdown table for the README).

Each config is built by the name users type (``yolov8s-cbam-paper.yaml``) and its baseline by Ultralytics' own name
(``yolov8s.yaml``). Counters are the package's own (``yolo_ema.bench.cost``): parameters of the model as trained;
GFLOPs of the fused eval model, batch 1, with ``torch.utils.flop_counter.FlopCounterMode`` (every ATen matmul and
convolution, functional calls included; elementwise ops not counted) and Ultralytics' thop count (``model.info()``,
module hooks only). Classification configs are measured at 224, as Ultralytics trains them.

    YOLO_OFFLINE=1 python scripts/config_table.py --imgsz 640 --scales n s
    YOLO_OFFLINE=1 python scripts/config_table.py --only 'yolov8-*' --scales s
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
from pathlib import PurePosixPath

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")  # the table only

from yolo_ema.bench.cost import count_params, model_flops, thop_gflops  # noqa: E402
from yolo_ema.configs import shipped_specs  # noqa: E402


def typed(name: str, scale: str) -> str:
    """yolov8-ema.yaml -> yolov8s-ema.yaml (Ultralytics' rule: the scale letter follows the version digits)."""
    return re.sub(r"^(yolov?\d+)", rf"\g<1>{scale}", name)


def measure(name: str, imgsz: int) -> tuple[int, float, float | None]:
    """(params, flop-counter GFLOPs, thop GFLOPs) of the model Ultralytics builds for ``name``."""
    from ultralytics import YOLO

    model = YOLO(name, verbose=False).model
    thop = thop_gflops(model, imgsz)
    return count_params(model), model_flops(model, imgsz) / 1e9, thop


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--scales", nargs="+", default=["n", "s"])
    ap.add_argument("--only", default="*", help="shell pattern over config file names, e.g. 'yolov8-*'")
    args = ap.parse_args(argv)
    base_cache: dict = {}
    print(
        "| model | imgsz | params (M) | params vs baseline | GFLOPs (flop counter) | vs baseline | GFLOPs (thop) |\n"
        "|---|---|---|---|---|---|---|"
    )
    for spec in shipped_specs():
        if not fnmatch.fnmatch(spec.name, args.only):
            continue
        imgsz = 224 if "-cls-" in spec.name else args.imgsz
        for s in args.scales:
            name, base = typed(spec.name, s), typed(PurePosixPath(spec.baseline).name, s)
            p, f, t = measure(name, imgsz)
            if (base, imgsz) not in base_cache:
                base_cache[base, imgsz] = measure(base, imgsz)
            pb, fb, _ = base_cache[base, imgsz]
            thop = f"{t:.2f}" if t is not None else "n/a"
            print(
                f"| {name[:-5]} | {imgsz} | {p / 1e6:.3f} | {p - pb:+,} ({(p / pb - 1) * 100:+.2f}%) vs {base[:-5]} "
                f"| {f:.2f} | {(f / fb - 1) * 100:+.2f}% (base {fb:.2f}) | {thop} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`yolo-ema` command: info | prepare | eval | benchmark | export | speed.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; those modules
import torch/Ultralytics only inside ``run`` so that ``yolo-ema --help`` and ``yolo-ema prepare`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "info": ("yolo_ema.info", "print versions, where EMA is registered and the configs shipped"),
    "prepare": ("yolo_ema.data.cli", "prepare a dataset (synthetic | visdrone | coco) for training and evaluation"),
    "eval": ("yolo_ema.eval.cli", "small-object evaluation: COCO size buckets, tiny buckets, VisDrone protocol"),
    "benchmark": ("yolo_ema.bench.cli", "baseline vs EMA: train, evaluate, time and write a report"),
    "export": ("yolo_ema.export.cli", "export a model (onnx | torchscript | openvino) and verify parity"),
    "speed": ("yolo_ema.bench.speed", "EMA layer speed and memory vs the paper's formulation"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; given ``argv`` naming a subcommand, only that subcommand's module is imported."""
    from yolo_ema import __version__

    parser = argparse.ArgumentParser(prog="yolo-ema", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"yolo-ema {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        if chosen in SUBCOMMANDS and name != chosen:
            sub.add_parser(name, help=help_text, description=help_text)  # listed in --help, not imported
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # subcommand not built yet in this checkout
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

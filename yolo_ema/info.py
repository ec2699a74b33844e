"""``yolo-ema info``: versions, where EMA is registered, and the model configs shipped."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import sys
from pathlib import Path


def config_dir() -> Path:
    """The shipped model YAMLs: ``cfg/`` beside the package (repo checkout) or inside it (wheel)."""
    pkg = Path(__file__).resolve().parent
    for d in (pkg / "cfg", pkg.parent / "cfg"):
        if d.is_dir():
            return d
    raise FileNotFoundError(f"yolo-ema model configs not found in {pkg / 'cfg'} or {pkg.parent / 'cfg'}")


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-register", action="store_true", help="do not import Ultralytics (versions only)")


def run(args: argparse.Namespace) -> int:
    from yolo_ema import __version__
    from yolo_ema._autoload import ENV, enabled

    print(f"yolo-ema      {__version__} ({Path(__file__).resolve().parent})")
    print(f"python        {platform.python_version()} ({sys.executable})")
    for dist in ("ultralytics", "torch", "torchvision", "opencv-python", "onnx", "onnxruntime", "openvino", "sahi"):
        print(f"{dist:<13} {_version(dist)}")
    print(f"autoload      {'on' if enabled() else 'off'} ({ENV}={os.environ.get(ENV, '<unset>')})")
    if not args.no_register:
        import ultralytics.nn.tasks  # noqa: F401  (the start-up hook registers EMA when this loads)

        from yolo_ema.ultralytics_plugin import register, registration_status

        if not enabled():
            register()
        status = registration_status()
        print(f"parser        EMA in {status['parser_namespace'] or 'NOT REGISTERED'}")
        print(f"safe loading  EMA allowed: {status['safe_globals']}")
        print(f"transfer      pretrained alignment across EMA rows: {status['transfer_patch']}")
        print(f"nan guard     first-epoch NaN/Inf EMA weights stop the run: {status['nan_guard']}")
        if status["problem"]:
            print(f"problem       {status['problem']}")
    d = config_dir()
    print(f"configs       {d}")
    for f in sorted(d.glob("*.yaml")):
        stem = f.stem.replace("-ema", "")
        scaled = f"{stem[:6]}s{stem[6:]}" if stem.startswith("yolov8-p2") else f"{stem}s"
        print(f"  {f.name:<22} e.g. model={d / (scaled + '-ema.yaml')}")
    return 0

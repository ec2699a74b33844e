"""``yolo-ema info``: versions, where the plugin layers are registered, and the model names users type."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import sys
import textwrap
from pathlib import Path


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
    from yolo_ema.configs import config_dir, user_names

    print(f"yolo-ema      {__version__} ({Path(__file__).resolve().parent})")
    print(f"python        {platform.python_version()} ({sys.executable})")
    for dist in ("ultralytics", "torch", "torchvision", "opencv-python", "onnx", "onnxruntime", "openvino", "sahi"):
        print(f"{dist:<13} {_version(dist)}")
    print(f"autoload      {'on' if enabled() else 'off'} ({ENV}={os.environ.get(ENV, '<unset>')})")
    if not args.no_register:
        from yolo_ema.seam import register, registration_status  # loads Ultralytics (the start-up hook registers)

        if not enabled():
            register()
        status = registration_status()
        print(f"parser        {' '.join(status['layers']) or 'NOT REGISTERED'} in ultralytics.nn.tasks")
        print(f"safe loading  plugin layers allowed: {status['safe_globals']}")
        print(f"transfer      pretrained alignment across inserted plugin rows: {status['transfer_patch']}")
        print(f"by name       shipped configs found by bare name from any folder: {status['config_lookup']}")
        print(f"nan guard     first-epoch NaN/Inf plugin-layer weights stop the run: {status['nan_guard']}")
        for key in ("problem", "lookup_problem"):
            if status[key]:
                print(f"problem       {status[key]}")
    names = user_names("s")
    print(f"configs       {len(names)} in {config_dir()}; type a scale n/s/m/l/x (the s scale below), from any folder:")
    wrap = textwrap.TextWrapper(width=118, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
    print("\n".join(wrap.wrap("  ".join(f"model={n}" for n in names))))
    return 0

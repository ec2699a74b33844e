"""yolo-ema: the EMA attention module (Ouyang et al., ICASSP 2023, arXiv:2305.13563) as an Ultralytics YOLO plugin.

The package face is lazy: ``import yolo_ema`` does not import torch or Ultralytics. ``yolo_ema.EMA`` and
``yolo_ema.register`` load them on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["EMA", "register", "__version__"]


def __getattr__(name: str):
    if name == "EMA":
        from yolo_ema.nn.ema import EMA

        return EMA
    if name == "register":
        from yolo_ema.ultralytics_plugin import register

        return register
    raise AttributeError(f"module 'yolo_ema' has no attribute {name!r}")

"""yolo-ema: the EMA attention module (Ouyang et al., ICASSP 2023, arXiv:2305.13563) as an Ultralytics YOLO plugin.

The package face is lazy: ``import yolo_ema`` does not import torch or Ultralytics. ``yolo_ema.EMA`` (and the other
plugin layers of :mod:`yolo_ema.nn.registry`) and ``yolo_ema.register`` load them on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["EMA", "register", "__version__"]


def __getattr__(name: str):
    if name == "register":
        from yolo_ema.seam import register

        return register
    from yolo_ema.nn.registry import LAYERS  # EMA and the other plugin layers

    if name in LAYERS:
        return LAYERS[name].cls
    raise AttributeError(f"module 'yolo_ema' has no attribute {name!r}")

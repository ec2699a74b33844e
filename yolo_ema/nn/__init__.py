"""Pure-torch layers (no Ultralytics import)."""

from yolo_ema.nn.ema import EMA

__all__ = ["EMA"]

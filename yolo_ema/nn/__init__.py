"""Pure-torch layers (no Ultralytics import): EMA and the attentions it is compared with.

The layers are those of :data:`yolo_ema.nn.registry.LAYERS`, imported on first use (``from yolo_ema.nn import EMA``).
"""

from yolo_ema.nn.registry import LAYERS

__all__ = sorted(LAYERS)


def __getattr__(name: str):
    if name in LAYERS:
        return LAYERS[name].cls
    raise AttributeError(f"module 'yolo_ema.nn' has no attribute {name!r}")

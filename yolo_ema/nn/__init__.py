"""Pure-torch layers (no Ultralytics import): EMA and the attentions it is compared with."""

from yolo_ema.nn.ca import CA
from yolo_ema.nn.cbam import CBAM
from yolo_ema.nn.eca import ECA
from yolo_ema.nn.ema import EMA
from yolo_ema.nn.sa import SA
from yolo_ema.nn.se import SE
from yolo_ema.nn.simam import SimAM

__all__ = ["CA", "CBAM", "ECA", "EMA", "SA", "SE", "SimAM"]

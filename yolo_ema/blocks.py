"""C2f and C3k2 with EMA inside every bottleneck (the "C2f_EMA" in-block variants).

EMA (Ouyang et al., ICASSP 2023, arXiv:2305.13563) re-weights each bottleneck's residual branch before the shortcut
addition, the placement SE and coordinate attention use in residual blocks:

    BottleneckEMA(x) = x + EMA(cv2(cv1(x)))   (shortcut)      EMA(cv2(cv1(x)))   (no shortcut)

The CSP structure around the bottlenecks is Ultralytics' own (``ultralytics/nn/modules/block.py``: ``C2f``,
``C3k2``, ``C3k``, ``Bottleneck``); the classes here subclass it, so every existing tensor keeps its name
(``m.0.cv1.conv.weight`` ...) and C2f / C3k2 checkpoints load unchanged; each bottleneck gains one ``ema``
submodule (``m.0.ema.*``), which starts fresh. Inside a C3k (C3k2 at m/l/x scales) and in C3k2's attention variant,
every inner Bottleneck gets its EMA the same way.

Factor (groups): the official default is 32, chosen for ResNet bottlenecks of 64-512 channels. YOLO bottlenecks are
narrower (32 channels in YOLOv8n/YOLO11n neck blocks, where 32 groups would leave one channel per group and
collapse EMA's channel softmax to a constant), so the default here is 8, the factor of the neck EMA configs: at
every official scale each group keeps at least 4 channels. For a custom width whose bottleneck channels are not
divisible by the factor, the factor drops to ``gcd(channels, factor)`` (a divisor, so every group stays equal).

YAML rows read like their parents' (``[-1, 3, C2f_EMA, [256]]``, ``[-1, 2, C3k2_EMA, [512, False]]``) and are scaled
exactly as the parents are; the yolo-ema plugin arranges that in Ultralytics' parser. The factor is the last
constructor argument (after C2f's ``e`` / C3k2's ``shortcut``) and, the same way, an optional last YAML arg:
``[-1, 3, C2f_EMA, [256, False, 1, 0.5, 16]]``.

This module is the classes' public import path and the one checkpoints name; they are defined in the Ultralytics
seam (:mod:`yolo_ema.seam.inblock`), and their YAML names in :data:`yolo_ema.nn.registry.INBLOCK`.
"""

from yolo_ema.seam.inblock import (
    DEFAULT_FACTOR,
    BottleneckEMA,
    C2f_EMA,
    C3k2_EMA,
    add_ema,
    ema_factor,
    split_row_args,
    upgrade,
)

__all__ = [
    "DEFAULT_FACTOR",
    "BottleneckEMA",
    "C2f_EMA",
    "C3k2_EMA",
    "add_ema",
    "ema_factor",
    "split_row_args",
    "upgrade",
]

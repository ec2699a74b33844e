"""The benchmark's defaults, one preset per kind of data: the only place they are written.

An explicit ``yolo-ema benchmark`` option always wins over its preset. ``synthetic`` is sized for a quiet 2-core
CPU: every model at every seed learns (COCO AP50 >= 0.25) and the whole run, data generation included, ends within
15 minutes; its seeds and arms are the ones whose verdict can detect the smallest effect in that budget (the noise
table in the README, ``scripts/noise_table.py``). ``synthetic-gpu`` is what a CUDA ``--device`` turns it into.
"""

from __future__ import annotations

from yolo_ema.data.synthetic import DEFAULT_IMAGES, DEFAULT_SIZE

FAST = dict(nbs=16, optimizer="AdamW", lr0=0.002)  # an optimizer step per batch of 16: enough steps on 300 images
PRESETS = {
    "synthetic": dict(arms=("ema",), seeds=(0, 1, 2, 3), epochs=5, pretrain_epochs=6, imgsz=DEFAULT_SIZE,
                      batch=16, device="cpu", workers=0, val=False, synthetic_images=DEFAULT_IMAGES,
                      synthetic_size=DEFAULT_SIZE, resamples=500,  # the images' variance, not far percentiles
                      extra=dict(FAST, lr0=0.001, warmup_epochs=0),  # fine-tuning: half the rate, no warm-up or mosaic
                      pretrain_extra=dict(FAST, warmup_epochs=1, lrf=1.0, close_mosaic=0)),  # flat lr, mosaic on
    "synthetic-gpu": dict(arms=("ema", "ema-paper"), seeds=(0, 1, 2, 3, 4), epochs=20, pretrain_epochs=60, imgsz=640,
                          batch=32, device="0", workers=8, val=False, synthetic_images=4000, synthetic_size=640,
                          resamples=1000, extra=dict(warmup_epochs=0), pretrain_extra={}),
    "visdrone": dict(arms=("ema", "ema-paper"), seeds=(0, 1, 2), epochs=200, pretrain_epochs=0, imgsz=640, batch=16,
                     device="0", workers=8, val=True, resamples=1000, extra={}, pretrain_extra={}),
    "coco": dict(arms=("ema", "ema-paper"), seeds=(0, 1, 2), epochs=300, pretrain_epochs=0, imgsz=640, batch=32,
                 device="0", workers=8, val=True, resamples=1000, extra={}, pretrain_extra={}),
    "folder": dict(arms=("ema", "ema-paper"), seeds=(0, 1, 2), epochs=100, pretrain_epochs=0, imgsz=640, batch=16,
                   device="0", workers=8, val=True, resamples=1000, extra={}, pretrain_extra={}),
}  # fmt: skip
DEFAULT = PRESETS["synthetic"]


def preset_name(data: str, device: str | None = None) -> str:
    """The preset of ``--data`` (a CUDA ``--device`` turns "synthetic" into "synthetic-gpu")."""
    if data == "synthetic":
        return "synthetic-gpu" if device is not None and str(device).lower() not in ("cpu", "") else "synthetic"
    return data if data in ("visdrone", "coco") else "folder"

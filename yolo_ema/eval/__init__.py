"""Small-object evaluation: COCO metrics, AI-TOD tiny-object buckets and the VisDrone-DET protocol.

COCO and AI-TOD run on faster-coco-eval; the VisDrone2019-DET toolkit's own algorithm is ported rule for rule in
:mod:`yolo_ema.eval.visdrone_toolkit` (COCOeval cannot express it).

``evaluate(model, data_dir, ...)`` predicts and evaluates; ``metrics.evaluate_detections(gt, detections, protocol)``
evaluates detections you already have. Importing this package is light: torch, Ultralytics and sahi load on use.
"""

from __future__ import annotations

__all__ = ["evaluate", "evaluate_detections"]


def __getattr__(name: str):
    if name == "evaluate":
        from yolo_ema.eval.api import evaluate

        return evaluate
    if name == "evaluate_detections":
        from yolo_ema.eval.metrics import evaluate_detections

        return evaluate_detections
    raise AttributeError(f"module 'yolo_ema.eval' has no attribute {name!r}")

"""Sliced inference (SAHI: Akyon et al., "Slicing Aided Hyper Inference and Fine-tuning for Small Object Detection",
ICIP 2022) through the ``sahi`` library, as an optional extra: ``pip install yolo-ema[sahi]``.

Each image is cut into ``slice x slice`` windows overlapping by ``overlap`` (a fraction of the window), the model
runs on every window at ``imgsz`` and, as sahi's ``perform_standard_pred`` does by default, once on the whole image;
window boxes are shifted back to image coordinates and merged class-wise with NMS at IoU 0.5 (sahi switches to NMS
anyway at our low confidence threshold, because box merging would inflate boxes). The ``max_det`` best-scoring
detections of each image are kept. The output matches :mod:`yolo_ema.eval.predict`, so both feed the same metrics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from yolo_ema.eval.predict import PREDICT_DEFAULTS, class_to_category, image_paths, load_model, results_to_coco

SAHI_MISSING = "sliced evaluation needs the 'sahi' package: pip install yolo-ema[sahi]  (or: pip install sahi)"


def require_sahi():
    """Import sahi or raise ImportError with the install hint."""
    try:
        import sahi  # noqa: F401
        from sahi import AutoDetectionModel
        from sahi.predict import get_sliced_prediction
    except ImportError as e:
        raise ImportError(f"{SAHI_MISSING} ({e})") from None
    return AutoDetectionModel, get_sliced_prediction


def iter_sliced_predictions(
    model,
    gt: dict,
    data_dir: str | os.PathLike,
    *,
    slice_size: int = 640,
    overlap: float = 0.2,
    imgsz: int | None = None,
    device: str | None = "cpu",
    batch: int = 8,
    conf: float = PREDICT_DEFAULTS["conf"],
    iou: float = PREDICT_DEFAULTS["iou"],
    max_det: int = PREDICT_DEFAULTS["max_det"],
    full_image_pass: bool = True,
    merge: str = "NMS",
    merge_metric: str = "IOU",
    merge_threshold: float = 0.5,
) -> Iterator[list[dict]]:
    """Yield, image by image, COCO-format detections from sahi sliced prediction.

    Args:
        slice_size: window side in pixels. overlap: window overlap ratio in [0, 1).
        imgsz: inference size of each window (default: ``slice_size``).
        full_image_pass: also predict on the whole image (sahi ``perform_standard_pred``) to keep large objects.
        merge, merge_metric, merge_threshold: sahi postprocess (``NMS``/``NMM``/``GREEDYNMM``, ``IOU``/``IOS``).
    """
    if slice_size < 32:
        raise ValueError(f"slice size must be >= 32 pixels, got {slice_size}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    auto_model, get_sliced_prediction = require_sahi()
    yolo = load_model(model, gt)
    paths = image_paths(gt, data_dir)
    cat_ids = class_to_category(gt, yolo.names)
    saved = dict(yolo.overrides)
    # sahi passes only conf/imgsz/device to the model; NMS IoU and the per-window cap travel in the overrides.
    yolo.overrides.update({"iou": iou, "max_det": max_det})
    try:
        det_model = auto_model.from_pretrained(
            model_type="ultralytics",
            model=yolo,
            confidence_threshold=conf,
            device=device,
            image_size=imgsz or slice_size,
        )
        for path, image_id in paths.items():
            res = get_sliced_prediction(
                path,
                det_model,
                slice_height=slice_size,
                slice_width=slice_size,
                overlap_height_ratio=overlap,
                overlap_width_ratio=overlap,
                perform_standard_pred=full_image_pass,
                postprocess_type=merge,
                postprocess_match_metric=merge_metric,
                postprocess_match_threshold=merge_threshold,
                verbose=0,
                batch_size=batch,
                force_postprocess_type=True,
            )
            preds = sorted(res.object_prediction_list, key=lambda p: -p.score.value)[:max_det]
            boxes = [p.bbox.to_xyxy() for p in preds]
            yield results_to_coco(
                boxes, [p.score.value for p in preds], [p.category.id for p in preds], image_id, cat_ids
            )
    finally:
        yolo.overrides.clear()
        yolo.overrides.update(saved)


def sliced_predict(model, gt: dict, data_dir: str | os.PathLike, **kwargs) -> list[dict]:
    """All detections of :func:`iter_sliced_predictions` in one list."""
    return [d for dets in iter_sliced_predictions(model, gt, data_dir, **kwargs) for d in dets]

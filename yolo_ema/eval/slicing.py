"""Sliced inference (SAHI: Akyon et al., "Slicing Aided Hyper Inference and Fine-tuning for Small Object Detection",
ICIP 2022) through the ``sahi`` library, as an optional extra: ``pip install yolo-ema[sahi]``.

Each image is cut into ``slice x slice`` windows overlapping by ``overlap`` (a fraction of the window), the model
runs on every window at ``imgsz`` and, as sahi's ``perform_standard_pred`` does by default, once on the whole image;
window boxes are shifted back to image coordinates and merged class-wise with NMS at IoU 0.5 (sahi switches to NMS
anyway at our low confidence threshold, because box merging would inflate boxes). The ``max_det`` best-scoring
detections of each image are kept. The output matches :mod:`yolo_ema.eval.predict`, so both feed the same metrics.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from yolo_ema.eval.predict import PredictSettings, class_to_category, flatten, model_and_images, results_to_coco

SAHI_MISSING = "sliced evaluation needs the 'sahi' package: pip install yolo-ema[sahi]  (or: pip install sahi)"


@dataclass(frozen=True)
class SliceSettings:
    """How images are cut into windows and the windows' detections merged.

    slice_size: window side in pixels. overlap: window overlap ratio in [0, 1).
    full_image_pass: also predict on the whole image (sahi ``perform_standard_pred``) to keep large objects.
    merge, merge_metric, merge_threshold: sahi postprocess (``NMS``/``NMM``/``GREEDYNMM``, ``IOU``/``IOS``).
    """

    slice_size: int = 640
    overlap: float = 0.2
    full_image_pass: bool = True
    merge: str = "NMS"
    merge_metric: str = "IOU"
    merge_threshold: float = 0.5

    def __post_init__(self):
        if self.slice_size < 32:
            raise ValueError(f"slice size must be >= 32 pixels, got {self.slice_size}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")


def require_sahi():
    """Import sahi or raise ImportError with the install hint."""
    try:
        import sahi  # noqa: F401
        from sahi import AutoDetectionModel
        from sahi.predict import get_sliced_prediction
    except ImportError as e:
        raise ImportError(f"{SAHI_MISSING} ({e})") from None
    return AutoDetectionModel, get_sliced_prediction


@contextlib.contextmanager
def _nms_overrides(yolo, settings: PredictSettings):
    """sahi passes only conf/imgsz/device to the model; NMS IoU and the per-window cap travel in the overrides."""
    saved = dict(yolo.overrides)
    yolo.overrides.update({"iou": settings.iou, "max_det": settings.max_det})
    try:
        yield
    finally:
        yolo.overrides.clear()
        yolo.overrides.update(saved)


def _sliced_image(predict_sliced, det_model, path: str, p: PredictSettings, w: SliceSettings) -> tuple[list, ...]:
    """(xyxy boxes, scores, classes) of one image's ``max_det`` best merged detections."""
    res = predict_sliced(
        path,
        det_model,
        slice_height=w.slice_size,
        slice_width=w.slice_size,
        overlap_height_ratio=w.overlap,
        overlap_width_ratio=w.overlap,
        perform_standard_pred=w.full_image_pass,
        postprocess_type=w.merge,
        postprocess_match_metric=w.merge_metric,
        postprocess_match_threshold=w.merge_threshold,
        verbose=0,
        batch_size=p.batch,
        force_postprocess_type=True,
    )
    preds = sorted(res.object_prediction_list, key=lambda q: -q.score.value)[: p.max_det]
    return [q.bbox.to_xyxy() for q in preds], [q.score.value for q in preds], [q.category.id for q in preds]


def iter_sliced_predictions(
    model, gt: dict, data_dir: str | os.PathLike, settings: PredictSettings, windows: SliceSettings
) -> Iterator[list[dict]]:
    """Yield, image by image, COCO-format detections from sahi sliced prediction (``settings.imgsz`` None: the
    window size)."""
    auto_model, predict_sliced = require_sahi()
    yolo, paths = model_and_images(model, gt, data_dir)
    cat_ids = class_to_category(gt, yolo.names)
    with _nms_overrides(yolo, settings):
        det_model = auto_model.from_pretrained(
            model_type="ultralytics",
            model=yolo,
            confidence_threshold=settings.conf,
            device=settings.device,
            image_size=settings.imgsz or windows.slice_size,
        )
        for path, image_id in paths.items():
            yield results_to_coco(*_sliced_image(predict_sliced, det_model, path, settings, windows), image_id, cat_ids)


def sliced_predict(model, gt: dict, data_dir: str | os.PathLike, **settings) -> list[dict]:
    """All detections of :func:`iter_sliced_predictions`; ``settings``: fields of :class:`SliceSettings` and of
    :class:`PredictSettings` (``imgsz`` defaults to the window size)."""
    windows = {k: settings.pop(k) for k in list(settings) if k in SliceSettings.__dataclass_fields__}
    windows = SliceSettings(**windows)
    return flatten(
        iter_sliced_predictions(model, gt, data_dir, PredictSettings(**{"imgsz": None, **settings}), windows)
    )

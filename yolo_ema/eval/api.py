"""``evaluate(model, data_dir, ...)``: predict over a prepared split and compute the small-object metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path

from yolo_ema.eval.metrics import MAX_DETS_PER_IMAGE, evaluate_detections, resolve_protocol
from yolo_ema.eval.predict import PredictSettings

_DEFAULT = PredictSettings()


def gt_path(data_dir: str | os.PathLike, split: str) -> Path:
    """``data_dir/annotations/{split}.json``, or a clear error naming what is missing."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    p = root / "annotations" / f"{split}.json"
    if not p.is_file():
        have = sorted(q.stem for q in (root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []
        raise FileNotFoundError(
            f"no COCO ground truth for split {split!r}: {p} (splits found: {have or 'none'}; run `yolo-ema prepare`)"
        )
    return p


def model_label(model) -> str:
    """A short name for a model: the file name for a path, the YAML/checkpoint name for a YOLO object."""
    if isinstance(model, (str, os.PathLike)):
        return Path(model).name
    return Path(
        str(getattr(model, "ckpt_path", None) or getattr(model, "model_name", None) or type(model).__name__)
    ).name


def evaluate(
    model,
    data_dir: str | os.PathLike,
    split: str = "val",
    imgsz: int = 640,
    protocol: str = "auto",
    device: str | None = "cpu",
    slice: int | None = None,  # noqa: A002 - the benchmark's agreed keyword
    overlap: float = 0.2,
    *,
    batch: int = 8,
    conf: float = _DEFAULT.conf,
    iou: float = _DEFAULT.iou,
    max_det: int = MAX_DETS_PER_IMAGE,
    backend: str = "faster-coco-eval",
    return_detections: bool = False,
) -> dict:
    """Predict with ``model`` over ``data_dir``'s ``split`` and evaluate (see :func:`metrics.evaluate_detections`).

    Args:
        model: a path (``.pt``, ``.onnx``, ``.yaml``, ...) or an Ultralytics ``YOLO`` object, EMA or not.
        data_dir: a prepared dataset (``images/``, ``annotations/{split}.json``).
        imgsz: inference size (of each window when slicing).
        protocol: ``auto`` | ``coco`` | ``visdrone`` | ``visdrone-coco``. ``auto`` is ``visdrone`` (the VisDrone2019-DET
            toolkit's own algorithm, :mod:`yolo_ema.eval.visdrone_toolkit`) when the ground truth has
            ``ignore_regions`` (a prepared VisDrone set), else ``coco``. The toolkit caps each image at its first
            1/10/100/500 detections in the order given; predictions here come sorted by score per image, so the
            cap keeps the most confident ones.
        slice: window size for sahi sliced inference (``None``: whole images); ``overlap`` its overlap ratio.
        conf, iou, max_det: prediction thresholds (defaults 0.001, 0.7, 500 detections per image).
        return_detections: also return the COCO-format detections under ``"detections"``.

    Returns:
        The dict of :func:`yolo_ema.eval.metrics.evaluate_detections` plus ``"run"``: ``{model, data, split,
        imgsz, slice, overlap, conf, iou, max_det, device, predict_seconds, images_per_second}``.
    """
    from yolo_ema.eval.gt import load_gt

    gt = load_gt(gt_path(data_dir, split))
    resolve_protocol(gt, protocol)  # fail on a bad protocol before the slow part
    settings = PredictSettings(imgsz=imgsz, device=device, batch=batch, conf=conf, iou=iou, max_det=max_det)
    t0 = time.perf_counter()
    dets = _detections(model, gt, data_dir, settings, int(slice) if slice else None, overlap)
    seconds = time.perf_counter() - t0
    result = evaluate_detections(gt, dets, protocol, max_dets_per_image=max_det, backend=backend)
    result["run"] = {
        "model": model_label(model),
        "data": str(data_dir),
        "split": split,
        **_run_settings(settings, int(slice) if slice else None, overlap),
        "predict_seconds": round(seconds, 3),
        "images_per_second": round(len(gt["images"]) / seconds, 3) if seconds > 0 else None,
    }
    if return_detections:
        result["detections"] = dets
    return result


def _detections(model, gt: dict, data_dir, settings: PredictSettings, slice_size: int | None, overlap: float):
    """COCO-format detections over whole images, or over ``slice_size`` windows overlapping by ``overlap``."""
    if slice_size:
        from yolo_ema.eval.predict import flatten
        from yolo_ema.eval.slicing import SliceSettings, iter_sliced_predictions

        windows = SliceSettings(slice_size=slice_size, overlap=overlap)
        return flatten(iter_sliced_predictions(model, gt, data_dir, settings, windows))
    from yolo_ema.eval.predict import flatten, iter_predictions

    return flatten(iter_predictions(model, gt, data_dir, settings))


def _run_settings(s: PredictSettings, slice_size: int | None, overlap: float) -> dict:
    """The prediction settings of a run record, in its key order."""
    return {"imgsz": s.imgsz, "slice": slice_size, "overlap": overlap if slice_size else None, "conf": s.conf,
            "iou": s.iou, "max_det": s.max_det, "device": s.device}  # fmt: skip

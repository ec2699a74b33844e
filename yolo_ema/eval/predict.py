"""Detections of an Ultralytics model over the images of a prepared split, in COCO results format.

Evaluation needs the whole precision-recall curve, so predictions are made the way Ultralytics' own validator makes
them (``conf=0.001``, NMS IoU 0.7) but with ``max_det=500`` per image, the VisDrone cap, instead of the predictor's
300 (and its default ``conf=0.25``, which would cut the curve). Images are streamed (``stream=True``) in batches so
memory stays flat on large splits. torch and Ultralytics are imported inside the functions.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class PredictSettings:
    """How detections are made, over whole images and over sliced windows alike (the evaluation's defaults).

    The fields are Ultralytics' predict arguments of the same names.
    """

    imgsz: int | None = 640  # inference size; of each window when slicing (None there: the window size)
    device: str | None = "cpu"
    batch: int = 8
    conf: float = 0.001
    iou: float = 0.7  # NMS IoU
    max_det: int = 500  # detections per image (per window when slicing)


def _register_ema() -> None:
    """Make the EMA layer known to Ultralytics (EMA checkpoints and YAMLs need it); plain models do not."""
    try:
        from yolo_ema import register

        register()
    except Exception as e:  # an incompatible Ultralytics still evaluates non-EMA models
        warnings.warn(f"EMA layer not registered with Ultralytics ({e}); EMA models will not load", stacklevel=3)


def load_model(model, gt: dict | None = None):
    """An Ultralytics ``YOLO`` from a path (``.pt``, ``.onnx``, ``.yaml``, ...) or a ``YOLO`` object as is.

    A ``.yaml`` path builds a randomly initialised model; with ``gt`` given, its class count and names are taken from
    the ground-truth categories (as training on that dataset would set them).
    """
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        is_yaml = path.endswith((".yaml", ".yml"))
        if not is_yaml and not Path(path).exists():
            raise FileNotFoundError(f"model not found: {path}")
        _register_ema()
        from ultralytics import YOLO

        yolo = YOLO(path)
        if is_yaml and gt is not None:
            from ultralytics.nn.tasks import DetectionModel

            cats = sorted(gt["categories"], key=lambda c: c["id"])
            yolo.model = DetectionModel(path, nc=len(cats), verbose=False)
            yolo.model.names = {i: c.get("name", str(c["id"])) for i, c in enumerate(cats)}
        return yolo
    from ultralytics.engine.model import Model

    if isinstance(model, Model):
        return model
    raise TypeError(
        f"model must be a path or an ultralytics YOLO object, got {type(model).__name__}; "
        "wrap a bare nn.Module with ultralytics.YOLO(<yaml>) and assign it to .model"
    )


def image_paths(gt: dict, data_dir: str | os.PathLike) -> dict[str, int]:
    """``{absolute image path: image_id}`` for the GT's images (``file_name`` is relative to ``data_dir``)."""
    root = Path(data_dir)
    out = {}
    for im in gt["images"]:
        p = (root / im["file_name"]).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"image {im['file_name']!r} (id {im['id']}) of the ground truth is missing: {p}")
        out[str(p)] = im["id"]
    return out


def class_to_category(gt: dict, model_names: dict | list) -> list[int]:
    """YOLO class ``i`` -> ``categories[i]['id']`` (categories sorted by id), checked against the model's classes."""
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    names = list(model_names.values()) if isinstance(model_names, dict) else list(model_names)
    if len(names) != len(cats):
        raise ValueError(
            f"the model has {len(names)} classes {names[:5]}{'...' if len(names) > 5 else ''} but the ground truth has "
            f"{len(cats)} categories {[c.get('name') for c in cats][:5]}: evaluate a model trained on this dataset"
        )
    differ = [(n, c.get("name")) for n, c in zip(names, cats) if c.get("name") and str(n).lower() != c["name"].lower()]
    if differ:
        warnings.warn(
            f"model class names differ from the ground-truth categories (model, gt): {differ[:5]}", stacklevel=2
        )
    return [c["id"] for c in cats]


def results_to_coco(boxes_xyxy, scores, classes, image_id: int, cat_ids: list[int]) -> list[dict]:
    """Rows of xyxy boxes, scores and class indices -> COCO results dicts (bbox ``[x, y, w, h]``)."""
    out = []
    for (x1, y1, x2, y2), s, c in zip(boxes_xyxy, scores, classes):
        c = int(c)
        if not 0 <= c < len(cat_ids):
            raise ValueError(f"predicted class {c} is outside the {len(cat_ids)} categories of the ground truth")
        out.append(
            {
                "image_id": image_id,
                "category_id": cat_ids[c],
                "bbox": [round(float(x1), 3), round(float(y1), 3), round(float(x2 - x1), 3), round(float(y2 - y1), 3)],
                "score": round(float(s), 5),
            }
        )
    return out


def model_and_images(model, gt: dict, data_dir: str | os.PathLike):
    """(``YOLO`` to predict with, ``{absolute image path: image_id}`` of the ground truth's images)."""
    return load_model(model, gt), image_paths(gt, data_dir)


def iter_predictions(
    model, gt: dict, data_dir: str | os.PathLike, settings: PredictSettings | None = None
) -> Iterator[list[dict]]:
    """Yield, image by image, the COCO-format detections of ``model`` on the images listed in ``gt``."""
    s = settings or PredictSettings()
    yolo, paths = model_and_images(model, gt, data_dir)
    if not paths:
        return
    cat_ids = None
    stream = yolo.predict(source=list(paths), stream=True, verbose=False, save=False, **asdict(s))
    for r in stream:
        if cat_ids is None:
            cat_ids = class_to_category(gt, r.names)
        key = str(Path(r.path).resolve())
        if key not in paths:
            raise RuntimeError(f"Ultralytics returned a result for an image not asked for: {r.path}")
        b = r.boxes
        yield results_to_coco(b.xyxy.tolist(), b.conf.tolist(), b.cls.tolist(), paths[key], cat_ids)


def flatten(per_image: Iterable[list[dict]]) -> list[dict]:
    """The detections of every image in one list, in image order."""
    return [d for dets in per_image for d in dets]


def predict(model, gt: dict, data_dir: str | os.PathLike, **settings) -> list[dict]:
    """All detections of :func:`iter_predictions`; ``settings``: fields of :class:`PredictSettings`."""
    return flatten(iter_predictions(model, gt, data_dir, PredictSettings(**settings)))

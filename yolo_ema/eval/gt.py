"""Ground truth and detections in COCO format: loading, checking, per-image truncation, ignore-region filtering.

Ground truth follows the COCO "object detection" format (https://cocodataset.org/#format-data) as written by
``yolo-ema prepare``: ``images`` [{id, file_name, width, height}], ``categories`` [{id, name}] (YOLO class ``i`` is
``categories[i]`` once sorted by id), ``annotations`` [{id, image_id, category_id, bbox [x, y, w, h], area,
iscrowd}], and for VisDrone a top-level ``ignore_regions`` [{id, image_id, bbox, source}] with ``source`` one of
``"ignored_region"`` (VisDrone category 0), ``"others"`` (category 11) or ``"score0"`` (rows with score 0).

Detections follow the COCO results format (https://cocodataset.org/#format-results):
[{image_id, category_id, bbox [x, y, w, h], score}].
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from yolo_ema.eval.ignore import in_ignored

IGNORE_SOURCES = ("ignored_region", "others", "score0")  # the sources ``ignore_regions`` may name
#: Regions the DET toolkit drops boxes in: category 0 only (dropObjectsInIgr.m); 'others' and score-0 objects are not.
DROP_SOURCES = ("ignored_region",)


def load_gt(gt: str | os.PathLike | dict) -> dict:
    """Return a copy of a COCO ground-truth dict (given as a dict or a path to a json), checked for shape."""
    where = "<dict>"
    if isinstance(gt, (str, os.PathLike)):
        where = os.fspath(gt)
        try:
            with open(where, encoding="utf-8") as f:
                gt = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"ground-truth json not found: {where}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"ground-truth json {where} is not valid JSON: {e}") from None
    elif isinstance(gt, dict):
        # One level deeper than a shallow copy: we add keys to annotations, never edit their bbox lists in place.
        gt = {
            k: ([dict(x) if isinstance(x, dict) else x for x in v] if isinstance(v, list) else copy.deepcopy(v))
            for k, v in gt.items()
        }
    else:
        raise TypeError(f"ground truth must be a path or a dict, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise ValueError(
                f"ground truth {where} has no list {key!r} (COCO format needs images/annotations/categories)"
            )
    if not gt["categories"]:
        raise ValueError(f"ground truth {where} has no categories")
    img_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    for im in gt["images"]:
        for k in ("id", "width", "height"):
            if k not in im:
                raise ValueError(f"ground truth {where}: image {im!r} lacks {k!r}")
    for ann in gt["annotations"]:
        if ann.get("image_id") not in img_ids:
            raise ValueError(
                f"ground truth {where}: annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')!r}"
            )
        if ann.get("category_id") not in cat_ids:
            raise ValueError(
                f"ground truth {where}: annotation {ann.get('id')} has unknown category_id {ann.get('category_id')!r}"
            )
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
            raise ValueError(f"ground truth {where}: annotation {ann.get('id')} has bad bbox {bbox!r}")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(bbox[2]) * float(bbox[3]))
    for reg in gt.get("ignore_regions") or []:
        if reg.get("image_id") not in img_ids:
            raise ValueError(
                f"ground truth {where}: ignore region {reg.get('id')} refers to unknown image_id {reg.get('image_id')!r}"
            )
        if reg.get("source", "ignored_region") not in IGNORE_SOURCES:
            raise ValueError(
                f"ground truth {where}: ignore region {reg.get('id')} has unknown source {reg.get('source')!r}"
            )
    gt["categories"] = sorted(gt["categories"], key=lambda c: c["id"])
    return gt


def check_detections(detections: Iterable[dict], gt: dict) -> list[dict]:
    """Validate COCO-format detections against ``gt``; return clean copies ``{image_id, category_id, bbox, score}``.

    Checked column-wise with numpy; when anything is wrong, :func:`_first_bad_detection` names the first culprit.
    """
    dets = detections if isinstance(detections, list) else list(detections)
    img_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    try:
        image_id = [d["image_id"] for d in dets]
        category_id = [d["category_id"] for d in dets]
        box = np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4)  # (N, 4) [x, y, w, h]
        score = np.array([d["score"] for d in dets], dtype=np.float64)  # (N,)
        ok = box.shape == (len(dets), 4) and score.shape == (len(dets),)
        ok = ok and all(v in img_ids for v in image_id) and all(v in cat_ids for v in category_id)
        ok = ok and bool(np.isfinite(box).all() and (box[:, 2:] >= 0).all() and np.isfinite(score).all())
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        _first_bad_detection(dets, img_ids, cat_ids)
    return [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(image_id, category_id, box.tolist(), score.tolist())
    ]


def _member(v, ids: set) -> bool:
    try:
        return v in ids
    except TypeError:  # unhashable
        return False


def _first_bad_detection(dets: list, img_ids: set, cat_ids: set) -> None:
    """Raise a ValueError naming the first detection that is not a valid COCO result for this ground truth."""
    for i, d in enumerate(dets):
        try:
            image_id, category_id, bbox, score = d["image_id"], d["category_id"], d["bbox"], d["score"]
        except (KeyError, TypeError):
            raise ValueError(f"detection #{i} {d!r} lacks image_id/category_id/bbox/score") from None
        if not _member(image_id, img_ids):
            raise ValueError(f"detection #{i}: image_id {image_id!r} is not in the ground truth")
        if not _member(category_id, cat_ids):
            raise ValueError(
                f"detection #{i}: category_id {category_id!r} is not in the ground truth categories {sorted(cat_ids)}"
            )
        try:
            good = len(bbox) == 4 and all(math.isfinite(float(v)) for v in bbox) and bbox[2] >= 0 and bbox[3] >= 0
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ValueError(f"detection #{i}: bbox {bbox!r} is not a finite [x, y, w, h] with w, h >= 0")
        try:
            good = math.isfinite(float(score))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ValueError(f"detection #{i}: score {score!r} is not finite")
    raise ValueError("detections are not valid COCO results (a bbox or score is not a number)")


def truncate_per_image(detections: list[dict], max_dets: int) -> list[dict]:
    """Keep the ``max_dets`` highest-scoring detections of each image, all classes together (the COCO views' cap).

    The VisDrone toolkit protocol caps differently (first rows in the order given): see
    :mod:`yolo_ema.eval.visdrone_toolkit`.
    """
    by_image = defaultdict(list)
    for d in detections:
        by_image[d["image_id"]].append(d)
    out = []
    for dets in by_image.values():
        dets.sort(key=lambda d: -d["score"])  # stable: ties keep input order
        out.extend(dets[:max_dets])
    return out


def ignore_regions_by_image(gt: dict, sources: Iterable[str] = DROP_SOURCES) -> dict:
    """``{image_id: (R, 4) array of [x, y, w, h]}`` for the ignore regions of the given sources."""
    sources = set(sources)
    regions = defaultdict(list)
    for reg in gt.get("ignore_regions") or []:
        if reg.get("source", "ignored_region") in sources:
            regions[reg["image_id"]].append(reg["bbox"])
    return {k: np.asarray(v, dtype=np.float64) for k, v in regions.items()}


def drop_in_ignored(gt: dict, detections: list[dict], sources: Iterable[str] = DROP_SOURCES):
    """The DET toolkit's drop (``dropObjectsInIgr.m``, see :mod:`yolo_ema.eval.ignore`): remove GT annotations and
    detections >= 50% inside the image's ignored regions, measured on the toolkit's pixel grid of the image size.

    Returns:
        ``(gt_filtered, detections_filtered, n_gt_dropped, n_dets_dropped)``; ``gt_filtered`` is a shallow copy of
        ``gt`` with a new ``annotations`` list.
    """
    regions = ignore_regions_by_image(gt, sources)
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}

    def keep(items):
        by_image = defaultdict(list)
        for j, it in enumerate(items):
            by_image[it["image_id"]].append(j)
        mask = np.ones(len(items), dtype=bool)
        for image_id, idx in by_image.items():
            if image_id in regions:
                boxes = [items[j]["bbox"] for j in idx]
                mask[idx] = ~in_ignored(boxes, regions[image_id], *sizes[image_id])
        return [it for it, k in zip(items, mask) if k]

    anns = keep(gt["annotations"])
    dets = keep(detections)
    out = dict(gt)
    out["annotations"] = anns
    return out, dets, len(gt["annotations"]) - len(anns), len(detections) - len(dets)

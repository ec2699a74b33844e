"""Small-object metrics from a COCO ground truth and COCO-format detections, computed by a maintained COCO evaluator.

Nothing here re-implements average precision: matching, the 101-point interpolated precision and recall come from
``faster_coco_eval.COCOeval_faster`` (default) or ``pycocotools.cocoeval.COCOeval`` (``backend="pycocotools"``); we
only choose their documented parameters (``params.areaRng``, ``params.areaRngLbl``, ``params.maxDets``) and read the
``eval["precision"]`` (T x R x K x A x M) and ``eval["recall"]`` (T x K x A x M) arrays they produce, averaging the
entries that are not -1 exactly as ``COCOeval.summarize`` does.

Protocols (see :func:`evaluate_detections` for the returned dict):

* **COCO** (Lin et al., ECCV 2014; cocodataset.org/#detection-eval): AP over IoU 0.50:0.05:0.95, AP50, AP75,
  AP/AR for area small [0, 32^2), medium [32^2, 96^2), large [96^2, inf), AR1/AR10/AR100, at most 100 detections
  per image and category. Crowd annotations (iscrowd=1) are "ignore" regions of the evaluator.
* **AI-TOD size buckets** (Wang et al., "Tiny Object Detection in Aerial Images", ICPR 2020, evaluated with their
  cocoapi-aitod): very_tiny [0, 8^2), tiny [8^2, 16^2), small [16^2, 32^2), medium [32^2, inf) in pixel area. The
  paper describes medium as 32-64 px; the authors' evaluator leaves it open-ended, which we follow so that the four
  buckets partition all objects. The evaluators test ``lo <= area <= hi`` (an 8x8 box would sit in two buckets),
  so each bucket's upper bound is passed as the float just below it, making the buckets half-open and disjoint.
  The COCO areas keep COCO's own inclusive bounds, so "coco" equals pycocotools' standard summary. AI-TOD caps at
  1500 detections/image; we use :data:`MAX_DETS_PER_IMAGE` (500).
* **VisDrone-DET** (``"visdrone"``; Zhu et al., "Detection and Tracking Meet Drones Challenge", TPAMI 2021): the
  official VisDrone2019-DET toolkit's own algorithm, rule for rule (:mod:`yolo_ema.eval.visdrone_toolkit`; COCOeval
  cannot express it): category-0 regions dropped on the toolkit's pixel grid, then the first 1/10/100/500 detection
  rows of each image over all classes, greedy matching with score-0 ignore objects, VOC all-point AP, classes
  weighted by the number of images containing them. AP, AP50, AP75 (500 detections) and AR1, AR10, AR100, AR500;
  comparable with published VisDrone-DET numbers.
* **VisDrone, COCO-style** (``"visdrone-coco"``): the toolkit's ignored-region drop followed by COCOeval (101-point
  AP, classes weighted equally, maxDets per image *and class*, score-0 objects as crowd). Not comparable with
  published VisDrone numbers; kept for COCO-style analyses of VisDrone data.

As in COCO, an object belongs to an area bucket by its annotation ``area`` (the prepared VisDrone/synthetic sets
write ``w * h``; COCO itself writes the mask area), a detection by ``w * h``; ground truth outside the bucket is
ignored and so are unmatched detections outside it.

This module imports neither torch nor Ultralytics.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Iterable

import numpy as np

from yolo_ema.eval import visdrone_toolkit
from yolo_ema.eval.gt import check_detections, drop_in_ignored, load_gt, truncate_per_image

#: Detections kept per image (all classes together), as the VisDrone challenge allows.
MAX_DETS_PER_IMAGE = 500
VISDRONE_MAX_DETS = visdrone_toolkit.MAX_DETS  # the DET toolkit's AR1/AR10/AR100/AR500
COCO_MAX_DETS = 100  # COCO's AP is reported at 100 detections per image (and category)
AREA_INF = 1e5**2  # the evaluators' own "infinity" for area ranges
COCO_AREAS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, AREA_INF)}
TINY_BUCKETS = {"very_tiny": (0, 8**2), "tiny": (8**2, 16**2), "small": (16**2, 32**2), "medium": (32**2, AREA_INF)}
PROTOCOLS = ("auto", "coco", "visdrone", "visdrone-coco")
BACKENDS = ("faster-coco-eval", "pycocotools")


def _half_open(lo: float, hi: float) -> list[float]:
    """``[lo, hi)`` in the evaluators' inclusive ``lo <= area <= hi`` test: ``hi`` becomes the next float below it."""
    return [float(lo), float(hi) if hi >= AREA_INF else float(np.nextafter(hi, -np.inf))]


def _area_table() -> tuple[list[str], list[list[float]]]:
    labels = ["all"] + [f"coco_{k}" for k in COCO_AREAS] + [f"tiny_{k}" for k in TINY_BUCKETS]
    ranges = [[0, AREA_INF]] + [list(v) for v in COCO_AREAS.values()]
    ranges += [_half_open(*v) for v in TINY_BUCKETS.values()]
    return labels, ranges


def evaluator_inputs(gt: dict, detections: list[dict]) -> tuple[dict, dict]:
    """(GT, detections) as COCO datasets for an evaluator: detections get ids and areas, GT annotations are copied
    (evaluators write an "ignore" key into them)."""
    dt = {
        "images": gt["images"],
        "categories": gt["categories"],
        "annotations": [
            {**d, "id": i + 1, "area": d["bbox"][2] * d["bbox"][3], "iscrowd": 0} for i, d in enumerate(detections)
        ],
    }
    gt_eval = {k: gt[k] for k in ("images", "categories")}
    gt_eval["annotations"] = [dict(a) for a in gt["annotations"]]
    return gt_eval, dt


class CocoRun:
    """One evaluator run over a GT dict and detections; holds ``precision``/``recall`` and index helpers."""

    def __init__(self, gt: dict, detections: list[dict], max_dets: list[int], backend: str = "faster-coco-eval"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.labels, ranges = _area_table()
        self.max_dets = sorted(max_dets)
        self.cat_ids = [c["id"] for c in gt["categories"]]
        gt_eval, dt = evaluator_inputs(gt, detections)
        if backend == "faster-coco-eval":
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt, coco_dt = COCO(gt_eval), COCO(dt)
            ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt, coco_dt = COCO(), COCO()
            coco_gt.dataset, coco_dt.dataset = gt_eval, dt
            with contextlib.redirect_stdout(io.StringIO()):
                coco_gt.createIndex()
                coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.catIds = self.cat_ids  # categories without GT stay in, as -1 columns
        ev.params.areaRng = ranges
        ev.params.areaRngLbl = self.labels
        ev.params.maxDets = self.max_dets
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
        self.iou_thrs = np.asarray(ev.params.iouThrs)
        self.precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
        self.recall = np.asarray(ev.eval["recall"])  # [T, K, A, M]

    def _t(self, iou):
        if iou is None:
            return slice(None)
        hit = np.flatnonzero(np.isclose(self.iou_thrs, iou))
        if not len(hit):
            raise ValueError(f"IoU {iou} is not one of the evaluator's thresholds {self.iou_thrs.tolist()}")
        return int(hit[0])

    @staticmethod
    def _mean(s: np.ndarray) -> float | None:
        valid = s[s > -1]
        return float(valid.mean()) if valid.size else None  # COCO's -1 ("no ground truth here") becomes None

    def ap(self, area: str = "all", max_dets: int | None = None, iou: float | None = None, k=None) -> float | None:
        """Mean precision over recall thresholds, categories (or category index ``k``) and IoUs, as COCO."""
        a, m = self.labels.index(area), self.max_dets.index(max_dets or self.max_dets[-1])
        s = self.precision[self._t(iou)][..., a, m]  # [(T,) R, K]
        if k is not None:
            s = s[..., k]
        return self._mean(s)

    def ar(self, area: str = "all", max_dets: int | None = None, iou: float | None = None, k=None) -> float | None:
        """Mean recall over IoUs and categories (or category index ``k``), as COCO."""
        a, m = self.labels.index(area), self.max_dets.index(max_dets or self.max_dets[-1])
        s = self.recall[self._t(iou)][..., a, m]  # [(T,) K]
        if k is not None:
            s = s[..., k]
        return self._mean(s)


def _count_gt(gt: dict, lo: float = 0, hi: float = AREA_INF) -> int:
    """Non-crowd annotations with ``lo <= area < hi`` (``hi`` inclusive when it is the open end)."""
    return sum(
        1
        for a in gt["annotations"]
        if not a.get("iscrowd", 0) and lo <= a["area"] and (a["area"] < hi or hi >= AREA_INF)
    )


def _coco_section(run: CocoRun) -> dict:
    m = COCO_MAX_DETS
    out = {
        "AP": run.ap(max_dets=m),
        "AP50": run.ap(max_dets=m, iou=0.5),
        "AP75": run.ap(max_dets=m, iou=0.75),
    }
    for k in COCO_AREAS:
        out[f"AP_{k}"] = run.ap(f"coco_{k}", m)
    for md in (1, 10, 100):
        out[f"AR{md}"] = run.ar(max_dets=md)
    for k in COCO_AREAS:
        out[f"AR_{k}"] = run.ar(f"coco_{k}", m)
    return out


def _buckets_section(run: CocoRun, gt: dict) -> dict:
    out = {}
    for k, (lo, hi) in TINY_BUCKETS.items():
        out[k] = {
            "AP": run.ap(f"tiny_{k}"),
            "AP50": run.ap(f"tiny_{k}", iou=0.5),
            "AR": run.ar(f"tiny_{k}"),
            "n_gt": _count_gt(gt, lo, hi),
        }
    return out


def _visdrone_section(run: CocoRun) -> dict:
    """COCO-style VisDrone numbers: AP/AP50/AP75 at 500 detections per image and class, AR at 1/10/100/500."""
    out = {
        "AP": run.ap(max_dets=VISDRONE_MAX_DETS[-1]),
        "AP50": run.ap(max_dets=VISDRONE_MAX_DETS[-1], iou=0.5),
        "AP75": run.ap(max_dets=VISDRONE_MAX_DETS[-1], iou=0.75),
    }
    for md in VISDRONE_MAX_DETS:
        out[f"AR{md}"] = run.ar(max_dets=md)
    return out


def _per_class(run: CocoRun, gt: dict, detections: list[dict]) -> list[dict]:
    n_gt = Counter(a["category_id"] for a in gt["annotations"] if not a.get("iscrowd", 0))
    n_dets = Counter(d["category_id"] for d in detections)
    rows = []
    for k, cat in enumerate(gt["categories"]):
        cid = cat["id"]
        rows.append(
            {
                "id": cid,
                "name": cat.get("name", str(cid)),
                "n_gt": n_gt[cid],
                "n_dets": n_dets[cid],
                "AP": run.ap(k=k),
                "AP50": run.ap(iou=0.5, k=k),
                "AP75": run.ap(iou=0.75, k=k),
                "AR": run.ar(k=k),
                "AP_buckets": {b: run.ap(f"tiny_{b}", k=k) for b in TINY_BUCKETS},
            }
        )
    return rows


def resolve_protocol(gt: dict, protocol: str) -> str:
    """``auto`` -> ``visdrone`` (the DET toolkit) when the ground truth carries an ``ignore_regions`` key, else ``coco``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "auto":
        return "visdrone" if "ignore_regions" in gt else "coco"
    return protocol


def with_score0_as_crowd(gt: dict) -> dict:
    """``gt`` whose score-0 objects (``ignore_regions`` source ``score0``) are crowd annotations, COCO's ignore GT."""
    cat_ids = {c["id"] for c in gt["categories"]}
    next_id = max((a["id"] for a in gt["annotations"] if isinstance(a.get("id"), int)), default=0) + 1
    extra = [
        {**{k: r[k] for k in ("image_id", "category_id", "bbox")}, "id": next_id + j, "iscrowd": 1}
        for j, r in enumerate(
            r for r in gt.get("ignore_regions") or [] if r.get("source") == "score0" and r.get("category_id") in cat_ids
        )
    ]
    for a in extra:
        a["area"] = float(a["bbox"][2]) * float(a["bbox"][3])
    return {**gt, "annotations": gt["annotations"] + extra}


def checked_inputs(gt, detections: Iterable[dict], protocol: str, max_dets_per_image: int):
    """(loaded GT, resolved protocol, checked detections, the same capped per image, highest scores first)."""
    gt = load_gt(gt)
    protocol = resolve_protocol(gt, protocol)
    dets_in = check_detections(detections, gt)
    return gt, protocol, dets_in, truncate_per_image(dets_in, max_dets_per_image)


def evaluate_detections(
    gt: str | os.PathLike | dict,
    detections: Iterable[dict],
    protocol: str = "auto",
    *,
    max_dets_per_image: int = MAX_DETS_PER_IMAGE,
    backend: str = "faster-coco-eval",
) -> dict:
    """Evaluate COCO-format detections against a COCO ground truth.

    Over 60 lines for its docstring only (the returned dict's schema, kept beside the code that builds it); the body
    is 25 lines.

    Args:
        gt: path to a COCO ground-truth json, or the dict (not modified).
        detections: iterable of ``{image_id, category_id, bbox [x, y, w, h], score}``. Under ``"visdrone"`` their
            order matters as in the toolkit: each image's 1/10/100/500 caps keep its first detections *in the order
            given* (the toolkit's file order), after the ignored-region drop, whatever their scores; sort each image's
            detections by score first (yolo-ema's own predictions are) to keep the best ones.
        protocol: ``"coco"``, ``"visdrone"`` (the DET toolkit), ``"visdrone-coco"`` (COCO-style, not comparable with
            published VisDrone numbers) or ``"auto"`` (visdrone when the GT has ``ignore_regions``).
        max_dets_per_image: detections kept per image, highest scores first, over all classes, for the COCO views
            ("coco", "buckets", "per_class", "visdrone_coco"; default 500). The toolkit's caps are fixed (1..500).
        backend: ``"faster-coco-eval"`` or ``"pycocotools"`` (same numbers, the former is faster).

    Returns:
        A dict; every metric is a float in [0, 1] or ``None`` where COCO's evaluator gives -1, i.e. no ground truth
        falls in that class/area bucket, so the metric is undefined (never 0 and never NaN, so it survives JSON)::

            {
              "protocol": "coco" | "visdrone" | "visdrone-coco",
              "backend": "faster-coco-eval",
              "n_images": int, "n_gt": int (non-crowd annotations), "n_dets": int (after the per-image cap),
              "n_dets_in": int (as given), "max_dets_per_image": 500,
              "coco": {AP, AP50, AP75, AP_small, AP_medium, AP_large, AR1, AR10, AR100, AR_small, AR_medium,
                       AR_large},          # plain COCO on the unfiltered GT, 100 dets/image, always present
              "buckets": {"very_tiny" | "tiny" | "small" | "medium": {AP, AP50, AR, n_gt}},  # AI-TOD, at max_dets_per_image
              "visdrone": {AP, AP50, AP75, AR1, AR10, AR100, AR500, n_gt, n_gt_ignore, n_gt_dropped, n_dets_dropped,
                           per_class},     # the DET toolkit (visdrone_toolkit.evaluate), protocol "visdrone" only
              "visdrone_coco": {AP, AP50, AP75, AR1, AR10, AR100, AR500, n_gt, n_gt_dropped, n_dets_dropped},
                                           # protocol "visdrone-coco" only
              "per_class": [{id, name, n_gt, n_dets, AP, AP50, AP75, AR,
                             "AP_buckets": {very_tiny, tiny, small, medium}}],  # COCOeval, in category-id order
            }

        Under both VisDrone protocols "buckets" and "per_class" are COCOeval after the toolkit's ignored-region drop
        (score-0 objects as crowd; "n_gt"/"n_dets" in "per_class" count what is left); "coco" stays the unfiltered
        COCO view, in which a detection inside an ignored region is a false positive.
    """
    if max_dets_per_image < 1:
        raise ValueError(f"max_dets_per_image must be >= 1, got {max_dets_per_image}")
    gt, protocol, dets_in, dets = checked_inputs(gt, detections, protocol, max_dets_per_image)
    max_dets = sorted({*VISDRONE_MAX_DETS, COCO_MAX_DETS, max_dets_per_image})

    plain = CocoRun(gt, dets, max_dets, backend)
    result = {
        "protocol": protocol,
        "backend": backend,
        "n_images": len(gt["images"]),
        "n_gt": _count_gt(gt),
        "n_dets": len(dets),
        "n_dets_in": len(dets_in),
        "max_dets_per_image": max_dets_per_image,
        "coco": _coco_section(plain),
    }
    if protocol in ("visdrone", "visdrone-coco"):
        result.update(_visdrone_views(gt, dets_in, protocol, max_dets, max_dets_per_image, backend))
    else:
        result["buckets"] = _buckets_section(plain, gt)
        result["per_class"] = _per_class(plain, gt, dets)
    return result


def _visdrone_views(gt: dict, dets_in: list[dict], protocol: str, max_dets: list[int], cap: int, backend: str) -> dict:
    """The "visdrone" (toolkit) or "visdrone_coco" section, and "buckets" and "per_class" after the ignored-region
    drop (score-0 objects as crowd), as :func:`evaluate_detections` returns them."""
    gt_s = with_score0_as_crowd(gt)
    gt_v, dets_v, _, n_det_drop = drop_in_ignored(gt_s, dets_in)  # drop first, then cap (saveAnnoRes.m)
    dets_v = truncate_per_image(dets_v, cap)
    run = CocoRun(gt_v, dets_v, max_dets, backend)
    if protocol == "visdrone":
        out = {"visdrone": visdrone_toolkit.evaluate(gt, dets_in)}
    else:
        out = {
            "visdrone_coco": {
                **_visdrone_section(run),
                "n_gt": _count_gt(gt_v),
                "n_gt_dropped": _count_gt(gt_s) - _count_gt(gt_v),
                "n_dets_dropped": n_det_drop,
            }
        }
    out["buckets"] = _buckets_section(run, gt_v)
    out["per_class"] = _per_class(run, gt_v, dets_v)
    return out

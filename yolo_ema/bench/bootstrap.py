"""Paired bootstrap over validation images: how arm minus baseline moves with the images drawn.

Method (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13): draw the validation images with
replacement ``B`` times; on each draw score *both* models, at every seed, on the same images, so the difference sees
only how the models differ, not which images happened to be drawn. Per seed this gives an image-only percentile
interval; the verdict over seeds and images is :func:`yolo_ema.bench.stats.seed_image_interval`'s.

AP inside the resampling is the maintained evaluator's (``faster_coco_eval``): it matches detections to ground
truth once per image (``evaluate``, with ``separate_eval=True`` so its per-image results are kept), and each draw
re-runs only its C++ ``accumulate`` on the drawn images' per-image results, duplicates included. That is exactly
what ``COCOeval`` gives on a data set in which a drawn image appears as many separate copies (test:
``tests/test_bench_bootstrap.py`` compares with a direct evaluation of such an explicitly duplicated set).
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from yolo_ema.bench import stats
from yolo_ema.eval.gt import drop_in_ignored, truncate_per_image
from yolo_ema.eval.metrics import (
    AREA_INF,
    COCO_MAX_DETS,
    MAX_DETS_PER_IMAGE,
    TINY_BUCKETS,
    _half_open,
    checked_inputs,
    evaluator_inputs,
    with_score0_as_crowd,
)

RESAMPLES = 1000
METHOD = (
    "95% interval of the mean difference over training seeds and validation images: Student's t on seeds - 1 "
    "degrees of freedom, from the per-seed differences' variance plus the validation images' shared variance, the "
    "latter from a paired bootstrap of the images ({b} resamples, the same resampled images scored for every model "
    "and seed; AP re-accumulated by faster-coco-eval from its per-image matches)"
)
METHOD_ONE = (
    "95% percentile interval of a paired bootstrap over validation images ({b} resamples, the same resampled "
    "images scored for both models; AP re-accumulated by faster-coco-eval from its per-image matches); one training "
    "per model, so training noise is not measured and the interval speaks of these weights only"
)


class PerImage:
    """One ``faster_coco_eval`` matching pass whose per-image results are re-accumulated for any image resample.

    ``areas``: {label: [lo, hi]} area ranges (the evaluator's inclusive test); ``max_det``: detections per image and
    category, as COCO. After construction ``score(idx)`` gives the precision array [T, R, K, A] of the images
    ``idx`` (positions into the GT's image list, repeats allowed).
    """

    def __init__(self, gt: dict, detections: list[dict], areas: dict, max_det: int):
        from faster_coco_eval import COCO, COCOeval_faster
        from faster_coco_eval import faster_eval_api_cpp as cpp

        self._accumulate = cpp.COCOevalAccumulate
        gt_eval, dt = evaluator_inputs(gt, detections)
        ev = COCOeval_faster(COCO(gt_eval), COCO(dt), "bbox", print_function=lambda *a, **k: None, separate_eval=True)
        ev.params.catIds = [c["id"] for c in gt["categories"]]
        ev.params.imgIds = [im["id"] for im in gt["images"]]
        ev.params.areaRng = [list(v) for v in areas.values()]
        ev.params.areaRngLbl = list(areas)
        ev.params.maxDets = [max_det]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
        self.areas = list(areas)
        self.iou_thrs = np.asarray(ev.params.iouThrs)
        # evaluate() sorts the image ids; map GT list positions to the evaluator's image order
        order = {int(i): j for j, i in enumerate(ev._paramsEval.imgIds)}
        self._pos = np.array([order[im["id"]] for im in gt["images"]])
        self._n = len(order)
        self._k, self._a = len(ev._paramsEval.catIds), len(self.areas)
        self._evals = np.empty(len(ev._evalImgs_cpp), dtype=object)  # [K, A, N] flattened, as the evaluator keeps it
        self._evals[:] = ev._evalImgs_cpp
        self._params = ev._paramsEval

    def score(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Precision [T, R, K, A] of the images at GT positions ``idx`` (all images once when None)."""
        img = self._pos if idx is None else self._pos[np.asarray(idx)]
        n = len(img)
        base = (np.arange(self._k * self._a) * self._n)[:, None]  # [K*A, 1]
        flat = (base + img[None, :]).ravel()  # [K*A*n]: the evaluator's layout with n (repeated) images
        params = copy.copy(self._params)
        params.imgIds = list(range(n))  # accumulate() reads only how many there are
        with contextlib.redirect_stdout(io.StringIO()):
            res = self._accumulate(params, self._evals[flat].tolist())
        return np.asarray(res["precision"])[..., 0]  # [T, R, K, A]


def _mean(p: np.ndarray) -> float:
    """COCO's average over the entries that are not -1 (no ground truth); NaN when none is left."""
    v = p[p > -1]
    return float(v.mean()) if v.size else float("nan")


def _iou(run: PerImage, iou: float) -> int:
    return int(np.flatnonzero(np.isclose(run.iou_thrs, iou))[0])


class Scorer:
    """The benchmark's bootstrapped metrics for one model: COCO AP and AP50 and the AP of each size bucket.

    AP and AP50 are plain COCO (100 detections per image and category); the buckets follow the protocol as in
    :func:`yolo_ema.eval.metrics.evaluate_detections` (under the VisDrone protocols: score-0 objects as crowd, what
    lies in ignored regions removed, then at most 500 detections per image).
    """

    def __init__(self, gt: dict, detections: list[dict], protocol: str = "auto"):
        gt, protocol, dets_in, dets = checked_inputs(gt, detections, protocol, MAX_DETS_PER_IMAGE)
        self.n_images = len(gt["images"])
        self.plain = PerImage(gt, dets, {"all": _half_open(0, AREA_INF)}, COCO_MAX_DETS)
        gt_b, dets_b = gt, dets
        if protocol in ("visdrone", "visdrone-coco"):  # as evaluate_detections: drop in ignored regions, then cap
            gt_b, dets_b = drop_in_ignored(with_score0_as_crowd(gt), dets_in)[:2]
            dets_b = truncate_per_image(dets_b, MAX_DETS_PER_IMAGE)
        self.buckets = PerImage(gt_b, dets_b, {k: _half_open(*v) for k, v in TINY_BUCKETS.items()}, MAX_DETS_PER_IMAGE)

    def __call__(self, idx: np.ndarray | None = None) -> dict:
        """{AP, AP50, AP_<bucket>} on the images ``idx`` (GT positions, repeats allowed; all when None)."""
        p = self.plain.score(idx)  # [T, R, K, 1]
        out = {"AP": _mean(p), "AP50": _mean(p[_iou(self.plain, 0.5)])}
        b = self.buckets.score(idx)  # [T, R, K, 4]
        for j, name in enumerate(self.buckets.areas):
            out[f"AP_{name}"] = _mean(b[..., j])
        return out


def draws(n_images: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """[B, n] image positions drawn with replacement (fixed seed: the same draws in every process and re-run)."""
    return np.random.default_rng(seed).integers(0, n_images, size=(resamples, n_images))


class Scores:
    """A model's metrics on all images (``full``) and on each bootstrap draw (``boot`` [B, metrics])."""

    def __init__(self, scorer: Scorer, idx: np.ndarray):
        self.full = scorer()
        self.keys = list(self.full)
        self.boot = np.array([[m[k] for k in self.keys] for m in map(scorer, idx)])  # [B, metrics]

    @classmethod
    def from_dict(cls, d: dict) -> Scores:
        """From ``{keys, full, boot}`` (as cached by the benchmark)."""
        s = cls.__new__(cls)
        s.keys = list(d["keys"])
        s.full = {k: float("nan") if v is None else float(v) for k, v in d["full"].items()}
        s.boot = np.asarray(d["boot"], dtype=float).reshape(-1, len(s.keys))
        return s


def paired(pairs: list[tuple[Scores, Scores]]) -> dict:
    """Arm minus baseline from (baseline, arm) :class:`Scores` per seed, all scored on the same draws.

    Returns ``{"per_seed": [{metric: image interval}], "pooled": {metric: verdict interval}}``: per seed the
    difference on the full set with its image-only percentile interval (no verdict: one training says nothing of
    training noise), pooled the interval over seeds and images with its verdict and detectability
    (:func:`yolo_ema.bench.stats.seed_image_interval`).
    """
    n = {s.boot.shape for pair in pairs for s in pair}
    if len(n) != 1:
        raise ValueError(f"paired bootstrap needs every model scored on the same draws, got shapes {sorted(n)}")
    keys = pairs[0][0].keys
    full = np.array([[a.full[k] - b.full[k] for k in keys] for b, a in pairs])  # [S, metrics]
    boot = np.stack([a.boot - b.boot for b, a in pairs])  # [S, B, metrics]
    per_seed = [{k: stats.image_interval(full[s, j], boot[s, :, j]) for j, k in enumerate(keys)}
                for s in range(len(pairs))]  # fmt: skip
    pooled = {k: stats.seed_image_interval(full[:, j], boot[:, :, j]) for j, k in enumerate(keys)}
    return {"per_seed": per_seed, "pooled": pooled}

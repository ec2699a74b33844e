"""A run's evaluation, cached in its run folder: ``yolo_ema.eval.evaluate`` plus the detections it scored.

The detections (COCO results format) are kept in ``detections-<split>-<imgsz>.json`` beside the cached metrics so
that the paired bootstrap can re-score any resample of the images without predicting again. The cache is keyed on
the weights file (path and modification time) and the evaluation settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from yolo_ema.data import fsio

if TYPE_CHECKING:
    from yolo_ema.bench.bootstrap import Scores
    from yolo_ema.bench.records import TrainedRun


def read_json(path: Path):
    """The JSON in ``path``, or None if it is missing or unreadable (a cache miss)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def detections_path(folder: Path, split: str, imgsz: int) -> Path:
    return Path(folder) / f"detections-{split}-{imgsz}.json"


def evaluate_run(
    trained: TrainedRun,
    folder: Path | None,
    data: Path,
    split: str,
    imgsz: int,
    protocol: str,
    device: str,
    log: Callable = print,
) -> dict:
    """Metrics of ``trained.weights`` on ``data``'s ``split`` (see :func:`yolo_ema.eval.evaluate`), cached in ``folder``.

    With a ``folder`` the detections are written to :func:`detections_path` and the result's ``"detections"`` entry
    names that file.
    """
    from yolo_ema.eval import evaluate

    w = Path(trained.weights)
    key = {"weights": str(w), "mtime": w.stat().st_mtime, "split": split, "imgsz": imgsz}
    key.update({"protocol": protocol, "data": str(data)})
    cache = Path(folder) / f"eval-{split}-{imgsz}.json" if folder else None
    dets_file = detections_path(folder, split, imgsz) if folder else None
    if cache is not None:
        hit = read_json(cache)
        if hit and hit.get("key") == key and dets_file.is_file():
            log(f"{trained.run}: evaluation cached ({cache.name})")
            return hit["result"]
    log(f"{trained.run}: evaluating {w.name} on {split} at imgsz {imgsz}")
    res = evaluate(str(w), data, split=split, imgsz=imgsz, protocol=protocol, device=device, return_detections=True)
    dets = res.pop("detections")
    if cache is None:
        res["detections"] = dets  # kept in memory for the bootstrap
        return res
    fsio.write_json(dets_file, dets, indent=1, default=str)
    res["detections"] = dets_file.name
    fsio.write_json(cache, {"key": key, "result": json.loads(json.dumps(res, default=str))}, indent=1, default=str)
    return res


def bootstrap_scores(name: str, metrics: dict, folder: Path | None, data: Path, split: str, imgsz: int,
                     protocol: str, resamples: int, log: Callable = print) -> Scores:  # fmt: skip
    """Run ``name``'s metrics on every bootstrap draw of the split's images, from the detections its ``metrics``
    (:func:`evaluate_run`'s result) name; cached in ``folder`` as {keys, full, boot [B, metrics]}.

    The draws depend only on the number of images and ``resamples`` (fixed seed), so every run of a benchmark is
    scored on the same draws, in whichever process it ran.
    """
    from yolo_ema.bench import bootstrap
    from yolo_ema.eval.api import gt_path
    from yolo_ema.eval.gt import load_gt

    cache = Path(folder) / f"bootstrap-{split}-{imgsz}-{resamples}.json" if folder else None
    key = {"eval": metrics.get("run"), "protocol": protocol, "resamples": resamples}
    if cache is not None:
        hit = read_json(cache)
        if hit and hit.get("key") == json.loads(json.dumps(key, default=str)):
            return bootstrap.Scores.from_dict(hit["scores"])
    gt = load_gt(gt_path(data, split))
    dets = read_json(Path(folder) / metrics["detections"]) if folder else metrics["detections"]
    log(f"{name}: scoring {resamples} bootstrap draws of the {len(gt['images'])} {split} images")
    sc = bootstrap.Scores(bootstrap.Scorer(gt, dets, protocol), bootstrap.draws(len(gt["images"]), resamples))
    nan_free = lambda v: None if v != v else v  # noqa: E731 - JSON has no NaN (a bucket without objects)
    out = {"keys": sc.keys, "full": {k: nan_free(v) for k, v in sc.full.items()},
           "boot": [[nan_free(v) for v in row] for row in sc.boot.tolist()]}  # fmt: skip
    if cache is not None:
        fsio.write_json(cache, {"key": key, "scores": out}, indent=1, default=str)
    return sc

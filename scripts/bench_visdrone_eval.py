"""Time the VisDrone-DET toolkit protocol on a val-sized set: 548 images x 500 detections per image.

The images are VisDrone-like: real VisDrone2019-DET annotation files (official txt format, image sizes in a CSV)
resampled with replacement, each image with 500 detections made from its objects (jittered boxes, some with the
wrong class, sorted by score as a detector writes them) padded with random boxes. Prints the median wall time of
``yolo_ema.eval.visdrone_toolkit.evaluate`` and of the whole ``evaluate_detections(..., "visdrone")`` (which adds the
COCO views), and the load average.

    python scripts/bench_visdrone_eval.py --samples ../shared/visdrone-samples [--images 548] [--dets 500] [--repeat 3]

The samples folder holds ``image_sizes.csv`` (split,stem,width,height) and
``VisDrone2019-DET-{split}/annotations/<stem>.txt``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def load_samples(root: Path) -> list[tuple[np.ndarray, int, int]]:
    """[(rows (n, 8), width, height)] of the annotation files listed in ``root/image_sizes.csv``."""
    csv = root / "image_sizes.csv"
    if not csv.is_file():
        raise SystemExit(f"no {csv}: pass --samples <folder with image_sizes.csv and the annotation txt files>")
    out = []
    for line in csv.read_text().splitlines()[1:]:
        split, stem, w, h = line.strip().split(",")
        txt = root / f"VisDrone2019-DET-{split}" / "annotations" / f"{stem}.txt"
        rows = np.loadtxt(txt, delimiter=",", usecols=range(8), ndmin=2)
        out.append((rows, int(w), int(h)))
    return out


def synthesise(samples, n_images: int, n_dets: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground truth (as ``yolo-ema prepare visdrone`` writes it) and ``n_dets`` detections per image."""
    from yolo_ema.data.visdrone import GroundTruth

    rng = np.random.default_rng(seed)
    truth = GroundTruth()
    dets = []
    for i in range(1, n_images + 1):
        rows, w, h = samples[int(rng.integers(len(samples)))]
        truth.add_rows(f"images/val/{i:07d}.jpg", w, h, rows.tolist())
        obj = rows[(rows[:, 5] >= 1) & (rows[:, 5] <= 10)]
        n_hit = min(len(obj), n_dets)
        hit = obj[rng.permutation(len(obj))[:n_hit]]
        jit = rng.normal(0, 0.08, (n_hit, 4)) * hit[:, [2, 3, 2, 3]]
        boxes = np.concatenate([hit[:, :2] + jit[:, :2], np.maximum(1, hit[:, 2:4] + jit[:, 2:])], axis=1)
        cls = np.where(rng.random(n_hit) < 0.9, hit[:, 5], rng.integers(1, 11, n_hit))
        n_fp = n_dets - n_hit
        size = rng.integers(4, 80, (n_fp, 2)).astype(float)
        corner = rng.random((n_fp, 2)) * (np.array([w, h]) - size)
        boxes = np.concatenate([boxes, np.concatenate([corner, size], axis=1)])
        cls = np.concatenate([cls, rng.integers(1, 11, n_fp)])
        score = np.concatenate([0.3 + 0.7 * rng.random(n_hit), 0.6 * rng.random(n_fp)])
        for k in np.argsort(-score, kind="stable"):
            b = boxes[k].round(2).tolist()
            dets.append({"image_id": i, "category_id": int(cls[k]), "bbox": b, "score": round(float(score[k]), 5)})
    return truth.as_dict("VisDrone-like val set"), dets


def main(argv=None) -> int:
    from yolo_ema.eval import visdrone_toolkit
    from yolo_ema.eval.gt import check_detections, load_gt
    from yolo_ema.eval.metrics import evaluate_detections

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "visdrone-samples"
    ap.add_argument("--samples", type=Path, default=default, help=f"annotation samples folder (default {default})")
    ap.add_argument("--images", type=int, default=548)
    ap.add_argument("--dets", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    gt, dets = synthesise(load_samples(args.samples), args.images, args.dets)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} objects, {len(dets)} detections", file=sys.stderr)
    gt_l = load_gt(gt)
    toolkit_s, toolkit_cpu, full_s = [], [], []
    for _ in range(args.repeat):  # interleaved
        t0, c0 = time.perf_counter(), time.process_time()
        r = visdrone_toolkit.evaluate(gt_l, check_detections(dets, gt_l))
        toolkit_s.append(time.perf_counter() - t0)
        toolkit_cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        evaluate_detections(gt, dets, "visdrone")
        full_s.append(time.perf_counter() - t0)
    print({k: round(100 * r[k], 2) for k in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500")})
    wall, cpu = statistics.median(toolkit_s), statistics.median(toolkit_cpu)
    print(
        f"toolkit protocol (check + score): median {wall:.2f} s wall, {cpu:.2f} s CPU; runs {[round(t, 2) for t in toolkit_s]}"
    )
    print(f"evaluate_detections(visdrone), with the COCO views: median {statistics.median(full_s):.2f} s")
    print(f"load average: {os.getloadavg()}  cpus: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

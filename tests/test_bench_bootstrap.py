"""Paired bootstrap: re-accumulated AP equals a direct evaluation of the duplicated set; constructed verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_ema.bench import bootstrap, stats
from yolo_ema.eval.metrics import evaluate_detections


def _scene(n_images=16, n_cats=3, seed=0):
    """GT and noisy detections (some misses, some false positives) of mixed sizes."""
    rng = np.random.default_rng(seed)
    images = [{"id": 10 + i, "width": 200, "height": 200} for i in range(n_images)]
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(n_cats)]
    anns, dets = [], []
    for im in images:
        for _ in range(int(rng.integers(1, 8))):
            w, h = rng.uniform(3, 50, 2)
            x, y = rng.uniform(0, 140, 2)
            c = int(rng.integers(1, n_cats + 1))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": c, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0})  # fmt: skip
            if rng.random() < 0.7:
                box = [x + rng.normal(0, 1.5), y + rng.normal(0, 1.5), w, h]
                dets.append({"image_id": im["id"], "category_id": c, "bbox": box, "score": float(rng.random())})
        for _ in range(3):
            box = [*rng.uniform(0, 150, 2), *rng.uniform(3, 40, 2)]
            dets.append({"image_id": im["id"], "category_id": int(rng.integers(1, n_cats + 1)), "bbox": box,
                         "score": float(rng.random())})  # fmt: skip
    return {"images": images, "categories": cats, "annotations": anns}, dets


def _duplicated(gt, dets, idx):
    """The explicitly resampled set: drawn image k becomes a new image with copies of its GT and detections."""
    images, anns, out = [], [], []
    for j, p in enumerate(idx):
        old, new = gt["images"][p]["id"], 1000 + j
        images.append({**gt["images"][p], "id": new})
        anns += [{**a, "image_id": new} for a in gt["annotations"] if a["image_id"] == old]
        out += [{**d, "image_id": new} for d in dets if d["image_id"] == old]
    for i, a in enumerate(anns):
        a["id"] = i + 1
    return {"images": images, "categories": gt["categories"], "annotations": anns}, out


@pytest.mark.parametrize("protocol", ["coco", "visdrone-coco"])
def test_resampled_ap_equals_direct_evaluation_of_the_duplicated_set(protocol):
    gt, dets = _scene()
    if protocol != "coco":  # ignore regions over a corner of every image
        gt["ignore_regions"] = [{"id": i + 1, "image_id": im["id"], "bbox": [0, 0, 60, 60], "source": "ignored_region"}
                                for i, im in enumerate(gt["images"])]  # fmt: skip
    scorer = bootstrap.Scorer(gt, dets, protocol)
    rng = np.random.default_rng(1)
    for _ in range(3):
        idx = rng.integers(0, len(gt["images"]), len(gt["images"]))  # repeats and omissions
        got = scorer(idx)
        gt2, dets2 = _duplicated(gt, dets, idx)
        if "ignore_regions" in gt:
            pos = {im["id"]: i for i, im in enumerate(gt["images"])}
            gt2["ignore_regions"] = [{**r, "id": k + 1, "image_id": 1000 + j}
                                     for k, (j, p) in enumerate(enumerate(idx))
                                     for r in gt["ignore_regions"] if pos[r["image_id"]] == p]  # fmt: skip
        ref = evaluate_detections(gt2, dets2, protocol)
        assert got["AP"] == pytest.approx(ref["coco"]["AP"], abs=1e-12)
        assert got["AP50"] == pytest.approx(ref["coco"]["AP50"], abs=1e-12)
        for b, v in ref["buckets"].items():
            if v["AP"] is None:
                assert np.isnan(got[f"AP_{b}"])
            else:
                assert got[f"AP_{b}"] == pytest.approx(v["AP"], abs=1e-12)
    full = evaluate_detections(gt, dets, protocol)
    assert scorer()["AP"] == pytest.approx(full["coco"]["AP"], abs=1e-12)


def _paired(gt, base_dets, arm_dets, resamples=200, seeds=1):
    idx = bootstrap.draws(len(gt["images"]), resamples)
    pairs = [(bootstrap.Scores(bootstrap.Scorer(gt, base_dets, "coco"), idx),
              bootstrap.Scores(bootstrap.Scorer(gt, arm_dets, "coco"), idx)) for _ in range(seeds)]  # fmt: skip
    return bootstrap.paired(pairs)


def test_identical_detections_give_no_detectable_difference():
    gt, dets = _scene()
    res = _paired(gt, dets, [dict(d) for d in dets], seeds=2)
    for iv in [*res["per_seed"][0].values(), *res["pooled"].values()]:
        if iv["lo"] is None:
            continue
        assert iv["lo"] <= 0 <= iv["hi"] and iv["diff"] == 0
    assert all("verdict" not in iv for iv in res["per_seed"][0].values())  # one training: no verdict
    assert all(iv["verdict"] == "no detectable difference" for iv in res["pooled"].values() if iv["lo"] is not None)


def test_added_correct_boxes_give_an_interval_above_zero():
    gt, noise = _scene(n_images=30, seed=3)
    rng = np.random.default_rng(4)
    hit = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]),
            "score": float(rng.uniform(0.3, 1))} for a in gt["annotations"]]  # fmt: skip
    base = hit[::2] + noise  # finds every other object, plus the scene's noisy boxes
    arm = base + hit[1::2]  # the same, and correct boxes for the objects the baseline missed
    res = _paired(gt, base, arm)
    for k in ("AP", "AP50"):
        iv = res["pooled"][k]
        assert iv["lo"] > 0 and iv["verdict"] == "better", (k, iv)
        assert iv["covers"] == stats.IMAGES_ONLY  # one seed: the interval speaks of these weights
    worse = _paired(gt, arm, base)["pooled"]["AP50"]
    assert worse["hi"] < 0 and worse["verdict"] == "worse"


def test_image_interval_and_verdict_words():
    iv = stats.image_interval(0.01, np.linspace(-0.01, 0.03, 1001))
    assert iv["lo"] == pytest.approx(-0.009, abs=1e-9) and iv["hi"] == pytest.approx(0.029, abs=1e-9)
    assert stats.verdict(iv["lo"], iv["hi"]) == "no detectable difference"
    assert stats.verdict(0.001, 0.02) == "better" and stats.verdict(-0.02, -0.001) == "worse"
    assert stats.image_interval(float("nan"), np.array([np.nan]))["lo"] is None
    assert stats.seed_image_interval([float("nan")], np.zeros((1, 5)))["verdict"] == "n/a"

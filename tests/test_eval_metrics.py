"""yolo_ema.eval.metrics on hand-made ground truth whose answers are known exactly."""

import copy
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo_ema.eval.metrics import evaluate_detections

BACKENDS = ["faster-coco-eval", "pycocotools"]


def _ann(i, image_id, cat, x, y, w, h, crowd=0):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h], "area": w * h, "iscrowd": crowd}


def make_gt(ignore=None):
    """Two images, two categories; one object per AI-TOD bucket except 'small' (16-32 px), which stays empty."""
    gt = {
        "images": [
            {"id": 1, "file_name": "images/val/a.jpg", "width": 400, "height": 400},
            {"id": 2, "file_name": "images/val/b.jpg", "width": 400, "height": 400},
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
        "annotations": [
            _ann(1, 1, 1, 10, 10, 6, 6),  # very tiny (area 36)
            _ann(2, 1, 2, 50, 50, 12, 12),  # tiny (144)
            _ann(3, 2, 1, 100, 100, 40, 40),  # medium bucket (1600); COCO medium
            _ann(4, 2, 2, 200, 200, 8, 8),  # exactly 8x8: tiny, not very tiny (buckets are half-open)
        ],
    }
    if ignore is not None:
        gt["ignore_regions"] = ignore
    return gt


def perfect(gt, score=0.9):
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": score}
        for a in gt["annotations"]
        if not a["iscrowd"]
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_detector_scores_one_everywhere_populated(backend):
    gt = make_gt()
    r = evaluate_detections(gt, perfect(gt), "coco", backend=backend)
    for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AR10", "AR100", "AR_small", "AR_medium"):
        assert r["coco"][k] == pytest.approx(1.0), k
    # No object above 96^2: COCO's -1 becomes None, never 0 or NaN.
    assert r["coco"]["AP_large"] is None and r["coco"]["AR_large"] is None
    # AR1: one detection per image and class; every (image, class) pair holds one object -> 1.0.
    assert r["coco"]["AR1"] == pytest.approx(1.0)
    b = r["buckets"]
    assert {k: v["n_gt"] for k, v in b.items()} == {"very_tiny": 1, "tiny": 2, "small": 0, "medium": 1}
    for k in ("very_tiny", "tiny", "medium"):
        assert b[k]["AP"] == pytest.approx(1.0) and b[k]["AR"] == pytest.approx(1.0)
    assert b["small"] == {"AP": None, "AP50": None, "AR": None, "n_gt": 0}
    assert [row["AP"] for row in r["per_class"]] == [pytest.approx(1.0)] * 2
    assert r["n_images"] == 2 and r["n_gt"] == 4 and r["n_dets"] == 4 and "visdrone" not in r


def test_gt_dict_is_not_modified():
    gt = make_gt()
    before = copy.deepcopy(gt)
    evaluate_detections(gt, perfect(gt))
    assert gt == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_shifted_box_lowers_only_its_bucket(backend):
    gt = make_gt()
    base = evaluate_detections(gt, perfect(gt), "coco", backend=backend)
    dets = perfect(gt)
    dets[1]["bbox"][0] += 2  # the 12x12 'tiny' person: IoU 10*12/(14*12) = 0.714 -> matched at IoU 0.50..0.70 only
    r = evaluate_detections(gt, dets, "coco", backend=backend)
    assert r["buckets"]["very_tiny"] == base["buckets"]["very_tiny"]
    assert r["buckets"]["medium"] == base["buckets"]["medium"]
    # tiny bucket: car has no tiny object (-1, excluded); person has two, the shifted one is matched at IoU
    # 0.50..0.70 (5 of 10 thresholds) and missed above -> recall 1.0 or 0.5 per threshold.
    assert r["buckets"]["tiny"]["AR"] == pytest.approx((5 * 1.0 + 5 * 0.5) / 10)
    assert r["buckets"]["tiny"]["AP50"] == pytest.approx(1.0)
    assert r["buckets"]["tiny"]["AP"] < 1.0
    assert r["per_class"][0]["AP"] == pytest.approx(1.0)  # car untouched
    assert r["per_class"][1]["AP"] < 1.0


def test_missed_very_tiny_object_changes_recall_of_its_bucket_only():
    gt = make_gt()
    dets = perfect(gt)[1:]  # drop the 6x6 car
    r = evaluate_detections(gt, dets, "coco")
    assert r["buckets"]["very_tiny"]["AR"] == 0.0 and r["buckets"]["very_tiny"]["AP"] == 0.0
    assert r["buckets"]["tiny"]["AR"] == pytest.approx(1.0)
    assert r["buckets"]["medium"]["AR"] == pytest.approx(1.0)


def test_no_detections_gives_zero_not_error():
    r = evaluate_detections(make_gt(), [], "coco")
    assert r["coco"]["AP"] == 0.0 and r["buckets"]["tiny"]["AR"] == 0.0 and r["buckets"]["small"]["AP"] is None
    assert r["n_dets"] == 0


def test_crowd_region_is_not_a_false_positive():
    gt = make_gt()
    gt["annotations"].append(_ann(5, 1, 1, 300, 300, 50, 50, crowd=1))
    dets = perfect(gt) + [{"image_id": 1, "category_id": 1, "bbox": [310, 310, 20, 20], "score": 0.99}]
    r = evaluate_detections(gt, dets, "coco")
    assert r["coco"]["AP"] == pytest.approx(1.0)
    assert r["n_gt"] == 4  # crowd boxes are not counted as objects


IGNORE = [
    {"id": 1, "image_id": 1, "bbox": [250, 250, 100, 100], "source": "ignored_region"},
    {"id": 2, "image_id": 2, "bbox": [0, 300, 50, 50], "source": "others"},
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_detection_in_ignored_region_changes_nothing_under_visdrone(backend):
    gt = make_gt(IGNORE)
    clean = evaluate_detections(gt, perfect(gt), "visdrone", backend=backend)
    # A confident car fully inside the ignored region (category 0): dropped, as if never given.
    region_det = {"image_id": 1, "category_id": 1, "bbox": [260, 260, 20, 20], "score": 0.99}
    r = evaluate_detections(gt, perfect(gt) + [region_det], "visdrone", backend=backend)
    assert r["visdrone"] == {**clean["visdrone"], "n_dets_dropped": 1}
    assert r["visdrone"]["AP"] == pytest.approx(1.0)
    assert r["buckets"] == clean["buckets"] and r["per_class"] == clean["per_class"]
    # Under plain COCO the same detection is a false positive ranked first: car AP drops.
    assert r["coco"]["AP"] < clean["coco"]["AP"] == pytest.approx(1.0)


def test_others_box_is_not_an_ignored_region():
    # A confident car 60% inside an 'others' box is kept (the toolkit drops in category-0 regions only) and is a
    # false positive ranked first among cars: car rec [0, 1/2, 1], prec [0, 1/2, 2/3] -> VOC AP 2/3 at every IoU;
    # person AP 1; both classes are in 2 images -> AP = (2 * 2/3 + 2 * 1) / 4 = 5/6.
    gt = make_gt(IGNORE)
    extra = [{"image_id": 2, "category_id": 1, "bbox": [20, 300, 50, 10], "score": 0.99}]
    r = evaluate_detections(gt, perfect(gt) + extra, "visdrone")
    assert r["visdrone"]["n_dets_dropped"] == 0 and r["visdrone"]["AP"] == pytest.approx(5 / 6)


def test_gt_in_ignored_region_is_not_a_miss():
    # Region [0 0 13 100] -> max(1, .) gives [1 1 13 100], painting columns 1..14 (inclusive end); the 6x6 car at
    # (10, 10) counts columns and rows 11..16: 4 columns x 6 rows = 24 of 36 pixels -> 0.67 >= 0.5 -> dropped.
    ignore = [{"id": 1, "image_id": 1, "bbox": [0, 0, 13, 100], "source": "ignored_region"}]
    gt = make_gt(ignore)
    dets = perfect(gt)[1:]  # the car inside the ignored region is not detected
    r = evaluate_detections(gt, dets, "visdrone")
    assert r["visdrone"]["n_gt_dropped"] == 1 and r["visdrone"]["n_gt"] == 3
    assert r["visdrone"]["AR500"] == pytest.approx(1.0) and r["visdrone"]["AP"] == pytest.approx(1.0)
    assert r["buckets"]["very_tiny"]["AP"] is None  # its only object was dropped
    assert r["coco"]["AR100"] < 1.0  # plain COCO counts the miss


def test_gt_less_than_half_in_ignored_region_still_counts():
    # Region [0 0 11 100] -> [1 1 11 100] paints columns 1..12; of the car's counted columns 11..16 that is 11 and 12:
    # 2 x 6 = 12 of 36 pixels -> 0.33 < 0.5 -> kept, and its miss counts.
    ignore = [{"id": 1, "image_id": 1, "bbox": [0, 0, 11, 100], "source": "ignored_region"}]
    gt = make_gt(ignore)
    r = evaluate_detections(gt, perfect(gt)[1:], "visdrone")
    assert r["visdrone"]["n_gt_dropped"] == 0 and r["visdrone"]["AR500"] < 1.0


def test_visdrone_coco_variant_is_separate():
    gt = make_gt(IGNORE)
    r = evaluate_detections(gt, perfect(gt), "visdrone-coco")
    assert r["protocol"] == "visdrone-coco" and "visdrone" not in r
    assert r["visdrone_coco"]["AP"] == pytest.approx(1.0)


def test_auto_protocol_follows_ignore_regions_key():
    assert evaluate_detections(make_gt(), [])["protocol"] == "coco"
    r = evaluate_detections(make_gt([]), [])
    assert r["protocol"] == "visdrone" and set(r["visdrone"]) >= {"AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500"}


def test_visdrone_ar_by_max_dets():
    """One image with 12 cars, all found: AR1 = 1/12, AR10 = 10/12, AR100 = AR500 = 1."""
    gt = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 1000, "height": 100}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [_ann(i + 1, 1, 1, 50 * i, 10, 20, 20) for i in range(12)],
        "ignore_regions": [],
    }
    r = evaluate_detections(gt, perfect(gt), "visdrone")["visdrone"]
    assert r["AR1"] == pytest.approx(1 / 12) and r["AR10"] == pytest.approx(10 / 12)
    assert r["AR100"] == pytest.approx(1.0) and r["AR500"] == pytest.approx(1.0)


def test_more_than_500_detections_are_truncated_by_score():
    gt = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 1000, "height": 1000}],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "van"}],
        "annotations": [_ann(1, 1, 1, 500, 500, 20, 20)],
    }
    # 500 confident false positives of another class, spread over the image, and the true one with a low score.
    junk = [
        {"image_id": 1, "category_id": 2, "bbox": [(i % 40) * 24, (i // 40) * 24, 5, 5], "score": 0.5}
        for i in range(500)
    ]
    hit = {"image_id": 1, "category_id": 1, "bbox": [500, 500, 20, 20], "score": 0.1}
    r = evaluate_detections(gt, junk + [hit], "coco")
    assert r["n_dets_in"] == 501 and r["n_dets"] == 500
    assert r["coco"]["AR100"] == 0.0  # the true detection was cut by the per-image cap
    hit["score"] = 0.9
    r = evaluate_detections(gt, junk + [hit], "coco")
    assert r["coco"]["AR100"] == pytest.approx(1.0) and r["per_class"][1]["AP"] is None  # 'van' has no GT


@pytest.mark.parametrize(
    "det, culprit",
    [
        ({"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, "image_id 99"),
        ({"image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1}, "category_id 7"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 1}, "bbox"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}, "lacks"),
    ],
)
def test_bad_detection_names_the_culprit(det, culprit):
    with pytest.raises(ValueError, match=culprit):
        evaluate_detections(make_gt(), [det])


def test_bad_inputs():
    with pytest.raises(FileNotFoundError, match="nope.json"):
        evaluate_detections("nope.json", [])
    with pytest.raises(ValueError, match="protocol"):
        evaluate_detections(make_gt(), [], "voc")
    gt = make_gt()
    gt["annotations"][0]["category_id"] = 5
    with pytest.raises(ValueError, match="category_id 5"):
        evaluate_detections(gt, [])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_backends_agree(seed):
    """faster-coco-eval and pycocotools give the same numbers on random jittered detections."""
    rng = random.Random(seed)
    gt = make_gt([{"id": 1, "image_id": 2, "bbox": [90, 90, 30, 30], "source": "ignored_region"}])
    dets = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        for _ in range(rng.randint(0, 3)):
            j = lambda s: s * rng.uniform(-0.3, 0.3)  # noqa: E731
            dets.append(
                {
                    "image_id": a["image_id"],
                    "category_id": rng.choice([1, 2]),
                    "bbox": [x + j(w), y + j(h), w * rng.uniform(0.7, 1.3), h * rng.uniform(0.7, 1.3)],
                    "score": rng.random(),
                }
            )
    a = evaluate_detections(gt, dets, "visdrone", backend="faster-coco-eval")
    b = evaluate_detections(gt, dets, "visdrone", backend="pycocotools")

    def close(x, y):
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        if isinstance(x, list):
            return len(x) == len(y) and all(close(u, v) for u, v in zip(x, y))
        if isinstance(x, float) and isinstance(y, float):
            return abs(x - y) < 1e-9
        return x == y

    a.pop("backend"), b.pop("backend")
    assert close(a, b), (a, b)

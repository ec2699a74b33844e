"""Prediction + evaluation end to end on a tiny hand-drawn dataset with randomly initialised models (no downloads).

Random weights give arbitrary boxes, so these tests check structure only: keys, ranges, caps, category ids.
"""

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from yolo_ema.eval import cli as eval_cli
from yolo_ema.eval.predict import class_to_category, results_to_coco

CATS = [{"id": 3, "name": "car"}, {"id": 7, "name": "person"}]  # non-contiguous ids: class i -> CATS[i]["id"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 images 128x128 with filled rectangles, a COCO GT with one VisDrone-style ignored region."""
    import cv2

    root = tmp_path_factory.mktemp("evalds")
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(0)
    gt = {"images": [], "annotations": [], "categories": CATS, "ignore_regions": []}
    for i in range(4):
        img = np.full((128, 128, 3), 90, np.uint8)
        for _ in range(3):
            w, h = (int(v) for v in rng.integers(4, 40, 2))
            x, y = (int(v) for v in rng.integers(0, 88, 2))
            c = int(rng.integers(0, 2))
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (255, 60, 0) if c else (0, 220, 255), -1)
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": CATS[c]["id"],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        cv2.imwrite(str(root / "images" / "val" / f"im{i}.jpg"), img)
        gt["images"].append({"id": i + 1, "file_name": f"images/val/im{i}.jpg", "width": 128, "height": 128})
    gt["ignore_regions"].append({"id": 1, "image_id": 1, "bbox": [0, 100, 128, 28], "source": "ignored_region"})
    (root / "annotations" / "val.json").write_text(json.dumps(gt))
    return root


@pytest.fixture(scope="module")
def model_pt(dataset, tmp_path_factory):
    """A randomly initialised yolov8n with the dataset's 2 classes, saved as a checkpoint."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    m = YOLO("yolov8n.yaml")
    m.model = DetectionModel("yolov8n.yaml", nc=2, verbose=False)
    m.model.names = {0: "car", 1: "person"}
    path = tmp_path_factory.mktemp("models") / "rand8n.pt"
    m.save(path)
    return path


def _check_structure(r, max_det, n_images=4):
    assert r["n_images"] == n_images and r["n_gt"] == 12
    for k, v in r["coco"].items():
        assert v is None or 0.0 <= v <= 1.0, k
    assert set(r["buckets"]) == {"very_tiny", "tiny", "small", "medium"}
    assert [p["id"] for p in r["per_class"]] == [3, 7]
    dets = r["detections"]
    assert {d["category_id"] for d in dets} <= {3, 7}
    assert max(Counter(d["image_id"] for d in dets).values()) <= max_det
    assert r["n_dets"] == len(dets)


def test_class_mapping_and_conversion():
    gt = {"categories": list(reversed(CATS))}
    assert class_to_category(gt, {0: "car", 1: "person"}) == [3, 7]
    with pytest.raises(ValueError, match="80 classes"):
        class_to_category(gt, {i: str(i) for i in range(80)})
    with pytest.warns(UserWarning, match="differ"):
        class_to_category(gt, ["person", "car"])
    out = results_to_coco([[1, 2, 11, 22]], [0.5], [1], 9, [3, 7])
    assert out == [{"image_id": 9, "category_id": 7, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.5}]
    with pytest.raises(ValueError, match="class 2"):
        results_to_coco([[0, 0, 1, 1]], [0.5], [2], 1, [3, 7])


def test_evaluate_checkpoint_end_to_end(dataset, model_pt):
    from yolo_ema.eval import evaluate

    r = evaluate(str(model_pt), dataset, imgsz=128, max_det=5, return_detections=True)
    _check_structure(r, max_det=5)
    assert r["protocol"] == "visdrone"  # the GT has ignore_regions
    assert set(r["visdrone"]) >= {"AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500", "n_gt_dropped"}
    assert r["run"]["model"] == "rand8n.pt" and r["run"]["max_det"] == 5 and r["run"]["conf"] == 0.001
    json.dumps(r)  # serialisable as is (None, never NaN)


def test_evaluate_yaml_and_object(dataset):
    """A YAML path is built with the GT's classes; a YOLO object is used as given."""
    from ultralytics import YOLO

    from yolo_ema.eval import evaluate

    r = evaluate("yolov8n.yaml", dataset, imgsz=128, protocol="coco", return_detections=True)
    _check_structure(r, max_det=500)
    assert "visdrone" not in r
    with pytest.raises(ValueError, match="80 classes"):
        evaluate(YOLO("yolov8n.yaml"), dataset, imgsz=128)


def test_evaluate_ema_model(dataset):
    from yolo_ema.eval import evaluate

    r = evaluate(REPO / "cfg" / "yolov8-ema.yaml", dataset, imgsz=128, return_detections=True)
    _check_structure(r, max_det=500)


def test_missing_things_are_named(dataset, tmp_path):
    from yolo_ema.eval import evaluate

    with pytest.raises(FileNotFoundError, match="'test'"):
        evaluate("yolov8n.yaml", dataset, split="test")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        evaluate(tmp_path / "nope.pt", dataset)
    broken = tmp_path / "broken"
    (broken / "annotations").mkdir(parents=True)
    gt = json.loads((dataset / "annotations" / "val.json").read_text())
    (broken / "annotations" / "val.json").write_text(json.dumps(gt))
    with pytest.raises(FileNotFoundError, match="images/val/im0.jpg"):
        evaluate("yolov8n.yaml", broken, imgsz=128)


def test_sahi_missing_message(dataset, monkeypatch):
    from yolo_ema.eval.slicing import sliced_predict

    monkeypatch.setitem(sys.modules, "sahi", None)
    gt = json.loads((dataset / "annotations" / "val.json").read_text())
    with pytest.raises(ImportError, match=r"pip install yolo-ema\[sahi\]"):
        sliced_predict("yolov8n.yaml", gt, dataset)


def _cli(argv):
    import argparse

    p = argparse.ArgumentParser()
    eval_cli.add_arguments(p)
    return eval_cli.run(p.parse_args(argv))


def test_plan_runs():
    assert eval_cli.plan_runs(["a/m.pt"], None, False) == [("m.pt", "a/m.pt", None)]
    assert eval_cli.plan_runs(["m.pt"], 640, True) == [("m.pt", "m.pt", None), ("m.pt [slice 640]", "m.pt", 640)]
    assert [r[0] for r in eval_cli.plan_runs(["x/m.pt", "y/m.pt"], None, False)] == ["m.pt", "m.pt #2"]
    with pytest.raises(ValueError, match="--slice"):
        eval_cli.plan_runs(["m.pt"], None, True)


def test_cli_compare_full_vs_sliced(dataset, model_pt, tmp_path, capsys):
    pytest.importorskip("sahi", reason="sliced evaluation needs the optional 'sahi' extra")
    out = tmp_path / "out"
    argv = ["--model", str(model_pt), "--data", str(dataset), "--imgsz", "64", "--slice", "64", "--overlap", "0.2"]
    rc = _cli(argv + ["--compare-full", "--out", str(out), "--max-det", "50", "--save-dets"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "rand8n.pt [slice 64]" in text and "VD-AP" in text and "very_tiny" in text
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert [r["label"] for r in runs] == ["rand8n.pt", "rand8n.pt [slice 64]"]
    assert runs[1]["run"]["slice"] == 64 and runs[0]["run"]["slice"] is None
    for r in runs:
        assert r["n_dets"] <= 50 * 4
    assert len(list(out.glob("detections_*.json"))) == 2


def test_cli_error_exit_code(tmp_path, capsys):
    assert _cli(["--model", "m.pt", "--data", str(tmp_path / "none")]) == 2
    assert "dataset directory not found" in capsys.readouterr().err

"""Prediction + evaluation end to end on tiny hand-drawn datasets (no downloads).

A stand-in model that finds the drawn rectangles in the very tensor Ultralytics feeds it (letterboxed image or sahi
window) must score AP ~ 1 through the full-image and the sliced paths: a wrong letterbox scale/offset or a wrong
window offset moves every box. Randomly initialised models check the rest: keys, ranges, caps, category ids.
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


# Class colours (BGR as cv2 draws them) on a grey background; each class is told apart by R - B in the RGB input.
COLOURS = [(0, 220, 255), (255, 60, 0)]  # BGR; in the RGB input class 0 has R - B = 1, class 1 B - R = 1


def draw_dataset(
    root: Path, width: int, height: int, per_image: list[int], sides: tuple[int, int], ext: str, seed: int
):
    """Images of filled class-coloured rectangles (3 px apart and from the border) and their COCO GT; returns the GT."""
    import cv2

    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": CATS}
    for i, n in enumerate(per_image):
        img = np.full((height, width, 3), 90, np.uint8)
        boxes = []
        while len(boxes) < n:
            w, h = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
            x, y = int(rng.integers(3, width - w - 3)), int(rng.integers(3, height - h - 3))
            if any(
                x < bx + bw + 3 and bx < x + w + 3 and y < by + bh + 3 and by < y + h + 3 for bx, by, bw, bh in boxes
            ):
                continue  # keep rectangles apart: each is one object to find
            boxes.append((x, y, w, h))
            c = int(rng.integers(0, 2))
            img[y : y + h, x : x + w] = COLOURS[c]
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": CATS[c]["id"],
                 "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
        cv2.imwrite(str(root / "images" / "val" / f"im{i}.{ext}"), img)
        gt["images"].append({"id": i + 1, "file_name": f"images/val/im{i}.{ext}", "width": width, "height": height})
    return gt


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 JPEG images 128x128 with 3 rectangles of 4-40 px each, a COCO GT with one VisDrone-style ignored region."""
    root = tmp_path_factory.mktemp("evalds")
    gt = draw_dataset(root, 128, 128, [3, 3, 3, 3], (4, 36), "jpg", seed=0)
    gt["ignore_regions"] = [{"id": 1, "image_id": 1, "bbox": [0, 100, 128, 28], "source": "ignored_region"}]
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


# --- a model stand-in that sees the ground truth in its input ----------------------------------------------------------

W, H = 150, 60  # wide images: a letterbox to a square size scales them and pads top and bottom


def rectangle_finder():
    """A yolov8n DetectionModel (stride, names, fuse) whose forward finds the coloured rectangles in its input.

    Input (B, 3, h, w) RGB in [0, 1], as Ultralytics' predictor and sahi's windows give it; output (B, 4 + nc, N) like
    Detect at inference: boxes cx, cy, w, h in input pixels, then class scores. Each rectangle is a connected region
    of its class's colour; its extent is measured to a fraction of a pixel from the colour profile across its edges
    (a linear resize keeps the area under the profile). Score grows with the box's smaller side in input pixels
    (upscaled windows beat the downscaled whole image); a box touching the input border (an object cut by a window)
    scores 0.02.
    """
    import cv2
    import torch
    from ultralytics.nn.tasks import DetectionModel

    def extent(profile: np.ndarray, start: int) -> tuple[float, float]:
        """(centre, length) of a 1-D coverage profile whose first sample is pixel ``start`` (pixel i spans [i, i+1])."""
        length = float(profile.sum())
        return start + float((profile * (np.arange(len(profile)) + 0.5)).sum()) / length, length

    class RectangleFinder(DetectionModel):
        finding = False  # off while DetectionModel.__init__ runs its stride-probing forward

        def forward(self, x, *args, **kwargs):
            if not self.finding:
                return super().forward(x, *args, **kwargs)
            out = torch.zeros(x.shape[0], 4 + 2, 64)  # (B, 4 + nc, N): unused slots score 0
            for b, img in enumerate(x.float().cpu().numpy()):  # img: (3, h, w) RGB
                h, w = img.shape[1:]
                k = 0
                for cls, sign in ((0, 1.0), (1, -1.0)):
                    cover = np.clip(sign * (img[0] - img[2]), 0, 1)  # (h, w): 1 inside, 0 on background and padding
                    n, _, stats, _ = cv2.connectedComponentsWithStats((cover > 0.5).astype(np.uint8), connectivity=4)
                    for x0, y0, bw, bh, _area in stats[1:]:  # row 0 is the background
                        xa, ya, xb, yb = max(x0 - 2, 0), max(y0 - 2, 0), min(x0 + bw + 2, w), min(y0 + bh + 2, h)
                        win = cover[ya:yb, xa:xb]
                        cx, cw = extent(win.max(0), xa)
                        cy, ch = extent(win.max(1), ya)
                        border = x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h
                        out[b, :4, k] = torch.tensor([cx, cy, cw, ch])
                        out[b, 4 + cls, k] = 0.02 if border else 0.9 * min(cw, ch) / (min(cw, ch) + 4)
                        k += 1
            return out

    m = RectangleFinder("yolov8n.yaml", nc=2, verbose=False)
    m.names, m.finding = {0: "car", 1: "person"}, True
    return m


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory):
    """4 PNG images 150x60 (exact colours), 3-4 rectangles of 8-14 px each."""
    root = tmp_path_factory.mktemp("rects")
    gt = draw_dataset(root, W, H, [3, 4, 3, 4], (8, 14), "png", seed=3)
    (root / "annotations" / "val.json").write_text(json.dumps(gt))
    return root


@pytest.fixture(scope="module")
def finder():
    from ultralytics import YOLO

    yolo = YOLO("yolov8n.yaml")
    yolo.model = rectangle_finder()
    return yolo


def _assert_perfect(r, n_gt=14):
    c = r["coco"]
    assert r["n_gt"] == n_gt
    assert c["AP50"] == 1.0 and c["AP75"] == 1.0 and c["AR100"] == 1.0, c
    assert c["AP"] > 0.95, c  # 0.95-IoU matches may miss by a fraction of a pixel after resizing


# 150x60 letterboxed to 256x128 (x1.71, 13 px padding top and bottom) and to 192x96 (x1.28, 9 px top, 10 bottom).
# Upscaled only: a linear downscale samples rather than averages, moving small edges by up to half a pixel.
@pytest.mark.parametrize("imgsz", [256, 192])
def test_full_image_prediction_of_a_perfect_model_scores_ap_1(rectangles, finder, imgsz):
    from yolo_ema.eval import evaluate

    r = evaluate(finder, rectangles, imgsz=imgsz, protocol="coco", return_detections=True)
    _assert_perfect(r)
    assert all(d["score"] > 0.5 for d in r["detections"])  # no box touches the letterboxed input's border


@pytest.mark.parametrize("full_image_pass", [True, False])
def test_sliced_prediction_of_a_perfect_model_scores_ap_1(rectangles, finder, full_image_pass):
    """48 px windows overlapping by 0.35 (16.8 px > the largest rectangle: each lies whole in some window), each
    upscaled to 96; windows cut some rectangles, whose partial boxes score lowest and so cost no AP."""
    pytest.importorskip("sahi", reason="sliced evaluation needs the optional 'sahi' extra")
    from yolo_ema.eval.gt import load_gt
    from yolo_ema.eval.metrics import evaluate_detections
    from yolo_ema.eval.slicing import sliced_predict

    gt = load_gt(rectangles / "annotations" / "val.json")
    dets = sliced_predict(
        finder, gt, rectangles, slice_size=48, overlap=0.35, imgsz=96, full_image_pass=full_image_pass
    )
    _assert_perfect(evaluate_detections(gt, dets, "coco"))
    whole = [d for d in dets if d["score"] > 0.5]
    assert len(whole) == 14  # one box per rectangle: the window and whole-image copies were merged

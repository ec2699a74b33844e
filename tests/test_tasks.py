"""EMA configs for every Ultralytics task (segment, pose, obb, classify) in the YOLOv8 and YOLO11 families.

Each config builds at every scale with its baseline's layers (EMA rows where the header says), takes its baseline's
weights across the inserted rows, and trains an epoch on a tiny generated dataset of its task, predicts, and exports
to dynamic ONNX whose raw outputs match PyTorch at two input sizes.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolo_ema.configs import config_dir, ultralytics_models_dir

FAMILIES = {"yolov8": "v8/yolov8", "yolo11": "11/yolo11"}  # family -> Ultralytics baseline stem under cfg/models
TASKS = {"seg": "segment", "pose": "pose", "obb": "obb", "cls": "classify"}
HEADS = {"seg": "Segment", "pose": "Pose", "obb": "OBB", "cls": "Classify"}
SIZE = 64  # px, generated images


def _cfg(family: str, suffix: str, scale: str = "n") -> str:
    """The name users type (found by the plugin from any folder): ``yolov8n-seg-ema.yaml``."""
    return f"{family}{scale}-{suffix}-ema.yaml"


def _baseline(family: str, suffix: str) -> Path:
    return ultralytics_models_dir() / f"{FAMILIES[family]}-{suffix}.yaml"


def _parse(path_or_dict, scale: str):
    """Build the layers of a model YAML at ``scale`` on the meta device (structure only, no memory, no forward)."""
    from ultralytics.nn.tasks import parse_model, yaml_model_load

    d = yaml_model_load(path_or_dict) if not isinstance(path_or_dict, dict) else deepcopy(path_or_dict)
    d["scale"] = scale
    with torch.device("meta"):
        layers, _ = parse_model(d, 3, verbose=False)
    return layers


def _shapes(layer) -> dict:
    return {k: tuple(v.shape) for k, v in layer.state_dict().items()}


# --- structure: every config, every scale ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("suffix", TASKS)
def test_task_config_builds_at_every_scale_with_its_baselines_layers(family, suffix):
    from yolo_ema.nn.ema import EMA

    base = yaml.safe_load(_baseline(family, suffix).read_text())
    for scale in "nsmlx":
        ema_layers, base_layers = _parse(_cfg(family, suffix, scale), scale), _parse(deepcopy(base), scale)
        kept = [m for m in ema_layers if not isinstance(m, EMA)]
        inserted = [m for m in ema_layers if isinstance(m, EMA)]
        assert [type(m) for m in kept] == [type(m) for m in base_layers], f"{family}{scale}-{suffix}"
        for a, b in zip(kept, base_layers):  # same channels and repeats as the baseline, layer by layer
            assert _shapes(a) == _shapes(b), f"{family}{scale}-{suffix} layer {a.i} ({a.type})"
        head = ema_layers[-1]
        assert type(head).__name__ == HEADS[suffix]
        froms = head.f if isinstance(head.f, list) else [head.i + head.f]
        assert froms == [m.i for m in inserted], "the head reads exactly the EMA rows"
        for m in inserted:  # each EMA reads the row before it and keeps its channel count
            src = ema_layers[m.i - 1]  # C2f, C3k2 or C2PSA: cv2 makes the output
            assert m.f == -1 and m.channels == src.cv2.conv.out_channels
            assert m.groups == (32 if suffix == "cls" else 8)
        if suffix == "cls":  # the last backbone stage: the block Classify pooled in the baseline
            assert len(inserted) == 1 and type(ema_layers[-3]) is type(base_layers[-2])
        else:
            assert len(inserted) == 3


def test_task_config_headers_say_why():
    for family in FAMILIES:
        for suffix in TASKS:
            text = (config_dir() / f"{family}-{suffix}-ema.yaml").read_text()
            assert "# Why here: " in text, f"{family}-{suffix}-ema.yaml"


# --- pretrained baseline weights across the inserted rows --------------------------------------------------------------


@pytest.mark.parametrize("family,suffix", [("yolov8", "seg"), ("yolo11", "pose"), ("yolov8", "obb"), ("yolo11", "cls")])
def test_baseline_checkpoint_loads_across_inserted_rows(family, suffix, tmp_path):
    """Every tensor of a baseline checkpoint lands, value for value, in the layer it belongs to in the EMA model."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    baseline = YOLO(f"{family}n-{suffix}.yaml")
    ckpt = tmp_path / "baseline.pt"
    baseline.save(ckpt)
    src = torch.load(ckpt, weights_only=False)["model"].float().state_dict()

    model = YOLO(_cfg(family, suffix))
    rows = model.model.yaml["backbone"] + model.model.yaml["head"]
    new_index = [i for i, r in enumerate(rows) if r[2] != "EMA"]  # baseline row k is row new_index[k] here
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    model.load(str(ckpt))
    dst = model.model.state_dict()

    moved = 0
    for name, value in src.items():
        k, rest = name.split(".", 2)[1:]
        target = f"model.{new_index[int(k)]}.{rest}"
        assert target in dst, f"{name} has no place in the EMA model"
        assert torch.equal(dst[target].float(), value), f"{name} -> {target} not transferred"
        moved += 1
    assert moved == len(src) and moved > 100
    ema_keys = [k for k in dst if int(k.split(".")[1]) not in new_index]
    assert ema_keys and all(torch.equal(dst[k], before[k]) for k in ema_keys), "EMA layers start fresh"


# --- one epoch, predict, dynamic ONNX export on a generated dataset of each task ----------------------------------------


def _scene(rng) -> np.ndarray:
    return cv2.GaussianBlur(rng.integers(30, 90, (SIZE, SIZE, 3), dtype=np.uint8), (3, 3), 0)


def _rotated_rect(rng) -> tuple[np.ndarray, int]:
    """Corners (4, 2) in px of a rotated rectangle inside the image, and its class."""
    cx, cy = rng.uniform(20, SIZE - 20, 2)
    w, h = rng.uniform(10, 24, 2)
    angle = rng.uniform(0, 180)
    corners = cv2.boxPoints(((cx, cy), (w, h), angle))
    return np.clip(corners, 0, SIZE - 1), int(rng.integers(0, 2))


COLOURS = ((40, 40, 230), (40, 220, 40))  # BGR per class


def write_task_dataset(root: Path, suffix: str, n: int = 4, seed: int = 0) -> str:
    """A tiny dataset of ``suffix``'s task in Ultralytics' format; returns what ``data=`` takes."""
    rng = np.random.default_rng(seed)
    if suffix == "cls":  # ImageFolder: {split}/{class}/*.png
        for split in ("train", "val"):
            for c, name in enumerate(("red", "green")):
                (root / split / name).mkdir(parents=True)
                for k in range(n // 2):
                    img = _scene(rng)
                    cv2.circle(img, tuple(int(v) for v in rng.integers(16, SIZE - 16, 2)), 10, COLOURS[c], -1)
                    cv2.imwrite(str(root / split / name / f"{k}.png"), img)
        return str(root)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k in range(n):
        img, lines = _scene(rng), []
        for _ in range(2):
            corners, c = _rotated_rect(rng)
            cv2.fillPoly(img, [corners.astype(np.int32)], COLOURS[c])
            xy = corners / SIZE  # (4, 2) normalized
            if suffix == "seg":  # polygon
                lines.append(f"{c} " + " ".join(f"{v:.5f}" for v in xy.ravel()))
            elif suffix == "obb":  # four corners
                lines.append(f"{c} " + " ".join(f"{v:.5f}" for v in xy.ravel()))
            else:  # pose: box + the four corners as visible keypoints
                (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
                kpts = " ".join(f"{x:.5f} {y:.5f} 2" for x, y in xy)
                lines.append(f"{c} {(x0 + x1) / 2:.5f} {(y0 + y1) / 2:.5f} {x1 - x0:.5f} {y1 - y0:.5f} {kpts}")
        cv2.imwrite(str(root / "images" / f"{k}.png"), img)
        (root / "labels" / f"{k}.txt").write_text("\n".join(lines) + "\n")
    extra = "kpt_shape: [4, 3]\nflip_idx: [1, 0, 3, 2]\n" if suffix == "pose" else ""
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames:\n  0: red\n  1: green\n{extra}")
    return str(data)


def _flat(out) -> list:
    """The tensors of a model output in order (nested tuples/lists flattened)."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def onnx_parity(pt: Path, onnx_file: str, shapes: tuple) -> list:
    """Max |onnxruntime - PyTorch| / max(1, max |PyTorch|) per output, for each input shape."""
    import onnxruntime as ort
    from ultralytics import YOLO

    ref = YOLO(str(pt)).model.float().eval().fuse()
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(1)
    errors = []
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        with torch.inference_mode():
            y = ref(torch.from_numpy(x))
        expected = _flat(y[0] if isinstance(y, (list, tuple)) else y)  # the eval output's first part: what ONNX gives
        got = session.run(None, {name: x})
        assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected], f"output shapes at {shape}"
        errors.append(
            [float(np.abs(g - e.numpy()).max() / max(1.0, float(e.abs().max()))) for g, e in zip(got, expected)]
        )
    return errors


TRAINED = [("yolov8", "seg"), ("yolo11", "pose"), ("yolo11", "obb"), ("yolov8", "cls")]


@pytest.mark.slow
@pytest.mark.parametrize("family,suffix", TRAINED)
def test_task_trains_predicts_and_exports(family, suffix, tmp_path):
    from ultralytics import YOLO

    data = write_task_dataset(tmp_path / "data", suffix)
    model = YOLO(_cfg(family, suffix))
    model.train(
        data=data, epochs=1, imgsz=SIZE, batch=4, workers=0, device="cpu", amp=False, plots=False, mosaic=0.0,
        project=str(tmp_path / "runs"), name="run", exist_ok=True, verbose=False,
    )  # fmt: skip
    best = tmp_path / "runs" / "run" / "weights" / "best.pt"
    assert best.is_file()
    trained = YOLO(str(best))
    assert trained.task == TASKS[suffix] and any(type(m).__name__ == "EMA" for m in trained.model.model)

    img = str(next((tmp_path / "data").rglob("*.png")))
    r = trained.predict(img, imgsz=SIZE, conf=0.0, max_det=5, device="cpu", verbose=False)[0]
    if suffix == "cls":
        assert r.probs is not None and r.probs.data.shape == (2,)
        assert float(r.probs.data.sum()) == pytest.approx(1.0, abs=1e-4)
    elif suffix == "seg":
        assert len(r.boxes) and r.masks.data.shape[0] == len(r.boxes) and r.masks.data.shape[1:] == (SIZE, SIZE)
    elif suffix == "pose":
        assert len(r.boxes) and r.keypoints.data.shape == (len(r.boxes), 4, 3)
    else:
        assert len(r.obb) and r.obb.xywhr.shape == (len(r.obb), 5)

    onnx_file = trained.export(format="onnx", dynamic=True, imgsz=SIZE)
    errors = onnx_parity(best, onnx_file, ((1, 3, SIZE, SIZE), (2, 3, SIZE + 32, SIZE + 32)))
    assert max(max(e) for e in errors) < 1e-4, errors

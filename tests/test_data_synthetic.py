"""The synthetic set: VisDrone source layout, deterministic bytes, small objects and VisDrone's awkward cases."""

import hashlib

import numpy as np

from yolo_ema.data import synthetic, visdrone
from yolo_ema.data.imagesize import read_size
from yolo_ema.data.visdrone_format import parse


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def test_layout_and_determinism(tmp_path):
    a = synthetic.generate(tmp_path / "a", seed=3, images=8, size=(160, 128))
    b = synthetic.generate(tmp_path / "b", seed=3, images=8, size=(160, 128))
    c = synthetic.generate(tmp_path / "c", seed=4, images=8, size=(160, 128))
    assert _digest(a) == _digest(b) and _digest(a) != _digest(c)
    imgs = sorted(p.name for p in a.glob("VisDrone2019-DET-*/images/*.jpg"))
    assert len(imgs) == 8 and len(list(a.glob("VisDrone2019-DET-*/annotations/*.txt"))) == 8
    assert len(list(a.glob("VisDrone2019-DET-train/images/*.jpg"))) == 6
    assert len(list(a.glob("VisDrone2019-DET-val/images/*.jpg"))) == 2
    assert read_size(next(a.glob("VisDrone2019-DET-train/images/*.jpg"))) == (160, 128)
    before = _digest(a)
    synthetic.generate(a, seed=3, images=8, size=(160, 128))  # re-run: nothing changes
    assert _digest(a) == before


def test_objects_are_small_and_cover_visdrone_cases(tmp_path):
    root = synthetic.generate(tmp_path / "s", seed=0, images=24, size=640)
    rows = []
    for f in sorted(root.glob("VisDrone2019-DET-*/annotations/*.txt")):
        good, errors = parse(f.read_bytes(), f.name)
        assert errors == []
        rows += good
    objects = [r for r in rows if r.category != 0]
    longest = np.array([max(r.width, r.height) for r in objects])
    assert (longest < 32).mean() > 0.8 and (longest < 16).mean() > 0.4
    cats = {r.category for r in rows}
    assert cats >= set(range(0, 12))  # every class, ignored regions (0) and others (11)
    assert any(r.score == 0 and r.category != 0 for r in rows)  # score-0 objects
    crossing = [r for r in rows if r.left < 0 or r.top < 0 or r.left + r.width > 640 or r.top + r.height > 640]
    assert crossing and all(r.truncation == 1 for r in crossing)
    assert all(r.score == 0 and r.truncation == 0 and r.occlusion == 0 for r in rows if r.category == 0)


def test_prepare_visdrone_turns_it_into_training_data(tmp_path):
    root = synthetic.generate(tmp_path / "s", seed=1, images=12, size=320)
    report = visdrone.prepare(root, tmp_path / "out", progress=False)
    t = report["totals"]
    assert t["images"] == 12 and t["boxes"] > 100 and t["boxes_clipped"] > 0
    assert t["malformed_rows"] == 0 and t["corrupt_images"] == 0
    assert t["rows"] == t["boxes"] + t["ignored_regions"] + t["others"] + t["score0"]
    assert sorted(report["splits"]) == ["test", "train", "val"]

"""`prepare visdrone` on small hand-made VisDrone trees: exact labels, COCO JSON, report, guarantees on SRC and OUT."""

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from yolo_ema.data import visdrone
from yolo_ema.data.layout import PrepareError


def jpeg(w, h, color=(90, 120, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def write_split(root: Path, folder: str, images: dict, annotations: dict) -> None:
    """images: {file name: bytes}; annotations: {stem: text}."""
    (root / folder / "images").mkdir(parents=True, exist_ok=True)
    (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (root / folder / "images" / name).write_bytes(data)
    for stem, text in annotations.items():
        (root / folder / "annotations" / f"{stem}.txt").write_text(text)


def tree_digest(root: Path) -> dict:
    """{relative path: (sha1, mode)} of every file and folder under root (to prove a tree was not touched)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            out[rel] = (hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir", p.stat().st_mode)
    return out


def out_tree(root: Path) -> dict:
    """sha1 of every file under OUT (data.yaml without the lines naming OUT and SRC)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "data.yaml":  # drop the lines naming OUT and SRC
                data = b"".join(x for x in data.splitlines(True) if not x.startswith((b"path:", b"# source:")))
            out[p.relative_to(root).as_posix()] = hashlib.sha1(data).hexdigest()
    return out


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    write_split(
        root,
        "VisDrone2019-DET-train",
        {
            "a.jpg": jpeg(200, 100),
            "b.jpg": jpeg(64, 48),
            "noann.jpg": jpeg(32, 32),
            "empty.jpg": b"",
            "trunc.jpg": jpeg(100, 80)[:300],
            "png.jpg": _png(40, 40),
            "notes.txt": b"not an image, ignored",
        },
        {
            "a": "10,20,30,40,1,1,0,0\n0,0,100,50,0,0,0,0\n5,5,10,10,1,11,0,0\n50,50,10,10,0,4,0,0\n"
            "-10,90,30,20,1,10,1,0\n1,2,3\n300,300,5,5,1,4,0,0\n",
            "b": "0,0,64,48,1,4,0,2,\n",
            "orphan": "1,1,2,2,1,1,0,0\n",
            "trunc": "1,1,2,2,1,1,0,0\n",
        },
    )
    write_split(root, "VisDrone2019-DET-val", {"v.jpg": jpeg(100, 100)}, {"v": "10,10,20,20,1,3,0,0\n"})
    return root


def _png(w, h) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, "PNG")
    return buf.getvalue()


def test_prepare_writes_exact_labels_coco_json_yaml_and_report(src, tmp_path):
    out = tmp_path / "out"
    before = tree_digest(src)
    report = visdrone.prepare(src, out, progress=False)
    assert tree_digest(src) == before  # SRC untouched

    assert sorted(os.listdir(out / "images" / "train")) == ["a.jpg", "b.jpg", "noann.jpg"]
    assert sorted(os.listdir(out / "labels" / "train")) == ["a.txt", "b.txt", "noann.txt"]
    assert (out / "labels/train/a.txt").read_text() == (
        "0 0.125000 0.400000 0.150000 0.400000\n9 0.050000 0.950000 0.100000 0.100000\n"
    )
    assert (out / "labels/train/b.txt").read_text() == "3 0.500000 0.500000 1.000000 1.000000\n"
    assert (out / "labels/train/noann.txt").read_text() == ""
    assert (out / "labels/val/v.txt").read_text() == "2 0.200000 0.200000 0.200000 0.200000\n"
    # images are links to (or copies of) the source, the source entry stays
    assert (out / "images/train/a.jpg").read_bytes() == (src / "VisDrone2019-DET-train/images/a.jpg").read_bytes()
    assert (src / "VisDrone2019-DET-train/images/a.jpg").exists()

    data = yaml.safe_load((out / "data.yaml").read_text())
    names = ["pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"]
    assert data == {"path": str(out.resolve()), "train": "images/train", "val": "images/val", "names": dict(enumerate(names))}  # fmt: skip

    gt = json.loads((out / "annotations/train.json").read_text())
    assert [c["id"] for c in gt["categories"]] == list(range(1, 11))
    assert gt["categories"][0]["name"] == "pedestrian" and gt["categories"][9]["name"] == "motor"
    assert gt["images"] == [
        {"id": 1, "file_name": "images/train/a.jpg", "width": 200, "height": 100},
        {"id": 2, "file_name": "images/train/b.jpg", "width": 64, "height": 48},
        {"id": 3, "file_name": "images/train/noann.jpg", "width": 32, "height": 32},
    ]
    assert gt["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0,
         "truncation": 0, "occlusion": 0},
        {"id": 2, "image_id": 1, "category_id": 10, "bbox": [0, 90, 20, 10], "area": 200, "iscrowd": 0,
         "truncation": 1, "occlusion": 0},
        {"id": 3, "image_id": 2, "category_id": 4, "bbox": [0, 0, 64, 48], "area": 3072, "iscrowd": 0,
         "truncation": 0, "occlusion": 2},
    ]  # fmt: skip
    assert gt["ignore_regions"] == [
        {"id": 1, "image_id": 1, "category_id": 0, "bbox": [0, 0, 100, 50], "source": "ignored_region"},
        {"id": 2, "image_id": 1, "category_id": 11, "bbox": [5, 5, 10, 10], "source": "others"},
        {"id": 3, "image_id": 1, "category_id": 4, "bbox": [50, 50, 10, 10], "source": "score0"},
    ]

    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report and report["complete"] is True
    t = report["splits"]["train"]
    assert (t["images"], t["rows"], t["boxes"], t["ignored_regions"], t["others"], t["score0"]) == (3, 8, 3, 1, 1, 1)
    assert (t["boxes_clipped"], t["boxes_outside_image"], t["malformed_rows"]) == (1, 1, 2)
    assert t["rows"] == t["boxes"] + t["ignored_regions"] + t["others"] + t["score0"] + t["malformed_rows"]
    assert report["malformed_rows"] == [
        "VisDrone2019-DET-train/annotations/a.txt:6: expected 8 comma-separated fields, got 3",
        "VisDrone2019-DET-train/annotations/a.txt:7: box lies outside the 200x100 image",
    ]
    assert report["corrupt_images"] == [
        "VisDrone2019-DET-train/images/empty.jpg: empty file (0 bytes)",
        "VisDrone2019-DET-train/images/png.jpg: content is PNG but the extension is .jpg",
        "VisDrone2019-DET-train/images/trunc.jpg: truncated JPEG (no end marker and the pixels do not decode)",
    ]
    assert report["annotations_without_image"] == ["VisDrone2019-DET-train/annotations/orphan.txt"]
    assert report["images_without_annotations"] == ["VisDrone2019-DET-train/images/noann.jpg"]
    assert report["totals"]["images"] == 4 and report["totals"]["boxes"] == 4
    assert report["warnings"] == []


def test_rerun_is_idempotent_and_repairs_damage(src, tmp_path):
    out = tmp_path / "out"
    first = visdrone.prepare(src, out, progress=False)
    snap = out_tree(out)
    label = out / "labels/train/a.txt"
    mtime = label.stat().st_mtime_ns
    assert visdrone.prepare(src, out, progress=False) == first
    assert out_tree(out) == snap
    assert label.stat().st_mtime_ns == mtime  # unchanged files are not rewritten
    # damage OUT: edit a label, delete an image, leave stray files and a stale Ultralytics cache
    label.write_text("garbage\n")
    (out / "images/train/b.jpg").unlink()
    (out / "images/train/stray.jpg").write_bytes(b"x")
    (out / "labels/train/.yolo-ema-tmp.1.a.txt").write_text("half")
    (out / "labels/train.cache").write_bytes(b"stale")
    assert visdrone.prepare(src, out, progress=False) == first
    assert out_tree(out) == snap
    assert not (out / "labels/train.cache").exists()


def test_zip_source_is_extracted_under_out_and_gives_the_same_result(src, tmp_path):
    zsrc = tmp_path / "zsrc"
    zsrc.mkdir()
    for folder in ("VisDrone2019-DET-train", "VisDrone2019-DET-val"):
        with zipfile.ZipFile(zsrc / f"{folder}.zip", "w") as zf:
            for p in sorted((src / folder).rglob("*")):
                zf.write(p, p.relative_to(src).as_posix())
    before = tree_digest(zsrc)
    a = visdrone.prepare(src, tmp_path / "a", progress=False)
    b = visdrone.prepare(zsrc, tmp_path / "b", progress=False)
    assert tree_digest(zsrc) == before
    assert (tmp_path / "b/.extracted/VisDrone2019-DET-train/images/a.jpg").is_file()
    assert b["totals"] == a["totals"] and b["malformed_rows"] == a["malformed_rows"]
    ta = {k: v for k, v in out_tree(tmp_path / "a").items() if k != "report.json"}
    tb = {k: v for k, v in out_tree(tmp_path / "b").items() if not k.startswith(".extracted") and k != "report.json"}
    assert ta == tb


def test_only_requested_splits_and_test_dev_maps_to_test(src, tmp_path):
    write_split(src, "VisDrone2019-DET-test-dev", {"t.jpg": jpeg(50, 50)}, {"t": "1,1,10,10,1,9,0,0\n"})
    report = visdrone.prepare(src, tmp_path / "o", splits=["test"], progress=False)
    assert list(report["splits"]) == ["test"]
    assert (tmp_path / "o/labels/test/t.txt").read_text() == "8 0.120000 0.120000 0.200000 0.200000\n"
    assert report["warnings"] == ["no train split: Ultralytics training needs one", "no val split: Ultralytics training needs one"]  # fmt: skip


def test_missing_source_and_overlapping_out_fail_with_clear_errors(src, tmp_path):
    with pytest.raises(PrepareError, match="does not exist"):
        visdrone.prepare(tmp_path / "nope", tmp_path / "o", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrepareError, match=r"no VisDrone-DET split found .*VisDrone2019-DET-train/"):
        visdrone.prepare(empty, tmp_path / "o", progress=False)
    before = tree_digest(src)
    with pytest.raises(PrepareError, match="overlaps source folder"):
        visdrone.prepare(src, src / "VisDrone2019-DET-train" / "out", progress=False)
    assert tree_digest(src) == before


def test_out_next_to_the_official_folders_leaves_them_untouched(src):
    before = tree_digest(src)
    report = visdrone.prepare(src, src, progress=False)
    after = {k: v for k, v in tree_digest(src).items() if k.startswith("VisDrone2019-DET")}
    assert after == before and report["totals"]["images"] == 4


def test_data_yaml_round_trips_awkward_paths_and_names(tmp_path):
    from yolo_ema.data import layout

    out = tmp_path / "a: b #c 'é\" [x]"
    out.mkdir()
    names = ["a: b", "#not a comment", "é", "- dash", "yes"]
    path = layout.write_data_yaml(out, ["val"], names, "first line\nsource: /x: y")
    text = path.read_text()
    assert text.startswith("# first line\n# source: /x: y\n")
    assert yaml.safe_load(text) == {"path": str(out), "val": "images/val", "names": dict(enumerate(names))}

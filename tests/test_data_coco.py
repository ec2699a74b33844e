"""`prepare coco` on a tiny COCO-format tree: class mapping, crowd handling, bad entries, zips, idempotence."""

import json
import zipfile

import pytest
import yaml
from test_data_visdrone import _png, jpeg, out_tree, tree_digest

from yolo_ema.data import coco
from yolo_ema.data.layout import PrepareError

CATS = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 90, "name": "toothbrush"}]


def _ann(i, image_id, cat, bbox, crowd=0, **kw):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": 7.0, "iscrowd": crowd, **kw}


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "val2017/1.jpg").write_bytes(jpeg(100, 50))
    (root / "val2017/2.jpg").write_bytes(jpeg(40, 40))
    (root / "val2017/4.jpg").write_bytes(_png(30, 30))  # wrong extension
    (root / "val2017/5.jpg").write_bytes(jpeg(60, 60))  # size differs from the JSON
    val = {
        "info": {"description": "tiny"},
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "2.jpg", "width": 40, "height": 40},
            {"id": 3, "file_name": "3.jpg", "width": 40, "height": 40},  # missing on disk
            {"id": 4, "file_name": "4.jpg", "width": 30, "height": 30},
            {"id": 5, "file_name": "5.jpg", "width": 64, "height": 64},
        ],
        "categories": CATS,
        "annotations": [
            _ann(10, 1, 90, [10, 10, 20, 10]),
            _ann(11, 1, 3, [90, 40, 20, 20], segmentation=[[1, 2, 3]]),  # clipped to 90,40,10,10
            _ann(12, 1, 1, [0, 0, 50, 50], crowd=1),  # crowd: evaluation only
            _ann(13, 1, 1, [0, 0, 0, 5]),  # zero width
            _ann(14, 1, 2, [0, 0, 5, 5]),  # unknown category
            _ann(15, 77, 1, [0, 0, 5, 5]),  # unknown image
            _ann(16, 1, 1, [0, 0, "a", 5]),  # not numeric
            _ann(17, 1, 1, [500, 500, 5, 5]),  # outside
            _ann(18, 3, 1, [0, 0, 5, 5]),  # image missing
        ],
    }
    (root / "annotations/instances_val2017.json").write_text(json.dumps(val))
    return root


def test_prepare_coco_labels_gt_and_report(src, tmp_path):
    out = tmp_path / "out"
    before = tree_digest(src)
    report = coco.prepare(src, out, progress=False)
    assert tree_digest(src) == before
    assert sorted(p.name for p in (out / "images/val").iterdir()) == ["1.jpg", "2.jpg"]
    assert (out / "labels/val/1.txt").read_text() == (
        "2 0.200000 0.300000 0.200000 0.200000\n1 0.950000 0.900000 0.100000 0.200000\n"
    )
    assert (out / "labels/val/2.txt").read_text() == ""
    gt = json.loads((out / "annotations/val.json").read_text())
    assert gt["categories"] == CATS
    assert gt["images"] == [
        {"id": 1, "file_name": "images/val/1.jpg", "width": 100, "height": 50},
        {"id": 2, "file_name": "images/val/2.jpg", "width": 40, "height": 40},
    ]
    assert [(a["id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in gt["annotations"]] == [
        (10, 90, [10, 10, 20, 10], 0),
        (11, 3, [90, 40, 10, 10], 0),
        (12, 1, [0, 0, 50, 50], 1),
    ]
    assert gt["annotations"][0]["area"] == 7.0  # original (segmentation) area kept for COCO size buckets
    assert (out / "annotations/instances_val2017.json").read_bytes() == (
        src / "annotations/instances_val2017.json"
    ).read_bytes()
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": str(out.resolve()), "val": "images/val", "names": {0: "person", 1: "car", 2: "toothbrush"}}
    s = report["splits"]["val"]
    assert (s["images"], s["boxes"], s["crowd"], s["boxes_clipped"], s["boxes_outside_image"]) == (2, 2, 1, 1, 1)
    name = "annotations/instances_val2017.json"
    assert report["malformed_rows"] == [
        f"{name}:annotations[3] (id 13): bbox width and height must be > 0, got 0.0x5.0",
        f"{name}:annotations[4] (id 14): unknown category_id 2",
        f"{name}:annotations[5] (id 15): unknown image_id 77",
        f"{name}:annotations[6] (id 16): bbox is not 4 finite numbers",
        f"{name}: annotation id 17: box lies outside the 100x50 image",
    ]
    assert report["annotations_without_image"] == ["val2017/3.jpg"]
    assert report["corrupt_images"] == [
        "val2017/4.jpg: content is PNG but the extension is .jpg",
        "val2017/5.jpg: size 60x60 on disk, 64x64 in annotations/instances_val2017.json",
    ]
    assert report["images_without_annotations"] == ["val2017/2.jpg"]
    assert report["warnings"] == ["no train split: Ultralytics training needs one"]
    snap = out_tree(out)
    assert coco.prepare(src, out, progress=False) == report and out_tree(out) == snap


def test_prepare_coco_from_the_official_zips(src, tmp_path):
    z = tmp_path / "zips"
    z.mkdir()
    with zipfile.ZipFile(z / "annotations_trainval2017.zip", "w") as zf:
        zf.write(src / "annotations/instances_val2017.json", "annotations/instances_val2017.json")
    with zipfile.ZipFile(z / "val2017.zip", "w") as zf:
        for p in sorted((src / "val2017").iterdir()):
            zf.write(p, f"val2017/{p.name}")
    a = coco.prepare(src, tmp_path / "a", progress=False)
    b = coco.prepare(z, tmp_path / "b", progress=False)
    assert b["totals"] == a["totals"]
    assert (tmp_path / "b/labels/val/1.txt").read_text() == (tmp_path / "a/labels/val/1.txt").read_text()


def test_bad_json_is_a_clear_error(tmp_path):
    root = tmp_path / "c"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "annotations/instances_val2017.json").write_text("{not json")
    with pytest.raises(PrepareError, match=r"annotations/instances_val2017.json: not a readable COCO JSON"):
        coco.prepare(root, tmp_path / "o", progress=False)
    (root / "annotations/instances_val2017.json").write_text('{"images": []}')
    with pytest.raises(PrepareError, match="missing the 'annotations' list"):
        coco.prepare(root, tmp_path / "o", progress=False)

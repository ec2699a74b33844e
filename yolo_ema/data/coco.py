"""Prepare COCO 2017 detection (``instances_{train,val}2017.json`` + image folders, or the official zips).

COCO format (cocodataset.org/#format-data): ``images`` [{id, file_name, width, height}], ``categories`` [{id, name}]
(80 classes, sparse ids 1..90), ``annotations`` [{id, image_id, category_id, bbox [x, y, w, h], area, iscrowd}].
YOLO class i is the i-th category sorted by id. Crowd boxes (iscrowd=1) stay in the evaluation JSON but are not
trained on. The original instances JSON is linked next to the rewritten one. SRC is never modified.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path

from yolo_ema.data import archives, catalogue, fsio, layout
from yolo_ema.data.imagesize import BadImage, read_size
from yolo_ema.data.layout import PrepareError

COUNTS = (
    "images",
    "boxes",
    "crowd",
    "boxes_clipped",
    "boxes_outside_image",
    *layout.PROBLEMS,
)
LISTS = layout.PROBLEMS


def _locate(source: Path, out: Path, entry: dict) -> tuple[Path, Path] | None:
    """(instances JSON, image folder) of one split as the catalogue describes it, from SRC or its zip archives."""
    folder, ann = entry["folder"], source / entry["annotations"]
    if not ann.is_file() and (source / entry["annotations_archive"]).is_file():
        ann = archives.extract(source / entry["annotations_archive"], out / ".extracted") / entry["annotations"]
    if not ann.is_file():
        return None
    img = source / folder
    if not img.is_dir() and (source / entry["archive"]).is_file():
        img = archives.extract(source / entry["archive"], out / ".extracted") / folder
    if not img.is_dir():
        raise PrepareError(f"{ann} found but no image folder {source / folder} (or {folder}.zip)")
    return ann, img


def _load(path: Path, name: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise PrepareError(f"{name}: not a readable COCO JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise PrepareError(f"{name}: missing the {key!r} list")
    return data


def _box(ann) -> list[float] | None:
    b = ann.get("bbox") if isinstance(ann, dict) else None
    if not isinstance(b, list) or len(b) != 4:
        return None
    try:
        b = [float(v) for v in b]
    except (TypeError, ValueError):
        return None
    return b if all(map(isfinite, b)) else None


def _categories(data: dict) -> list[dict]:
    """The well-formed categories (dicts with an int id), sorted by id: YOLO class i is the i-th."""
    return sorted(
        (c for c in data["categories"] if isinstance(c, dict) and isinstance(c.get("id"), int)), key=lambda c: c["id"]
    )


def _images(data: dict, name: str, problems: list[str]) -> dict[int, dict]:
    """``{image id: image entry}`` of the well-formed, unique entries; the others reported in ``problems``."""
    images = {}
    for i, im in enumerate(data["images"]):
        ok = isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str)
        if not ok or os.sep in im["file_name"] or "/" in im["file_name"] or im["id"] in images:
            problems.append(f"{name}:images[{i}]: bad or duplicate image entry")
            continue
        images[im["id"]] = im
    return images


def _boxes_by_image(data: dict, name: str, cls: dict, images: dict, problems: list[str]) -> dict[int, list]:
    """``{image id: [(annotation, [x, y, w, h])]}`` of the valid annotations; the others reported in ``problems``."""
    per_image: dict[int, list] = {}
    for i, a in enumerate(data["annotations"]):
        box = _box(a)
        where = f"{name}:annotations[{i}]" + (f" (id {a.get('id')})" if isinstance(a, dict) else "")
        if box is None:
            problems.append(f"{where}: bbox is not 4 finite numbers")
        elif box[2] <= 0 or box[3] <= 0:
            problems.append(f"{where}: bbox width and height must be > 0, got {box[2]}x{box[3]}")
        elif a.get("category_id") not in cls:
            problems.append(f"{where}: unknown category_id {a.get('category_id')!r}")
        elif a.get("image_id") not in images:
            problems.append(f"{where}: unknown image_id {a.get('image_id')!r}")
        else:
            per_image.setdefault(a["image_id"], []).append((a, box))
    return per_image


def _image_size(path: Path, im: dict, rel_img: str, name: str, lists: dict) -> tuple[int, int] | None:
    """The image's size if it is readable and matches its entry; else None, the problem added to ``lists``."""
    try:
        w, h = read_size(path)
    except FileNotFoundError:
        lists["annotations_without_image"].append(rel_img)
        return None
    except BadImage as e:
        lists["corrupt_images"].append(f"{rel_img}: {e}")
        return None
    except OSError as e:
        lists["corrupt_images"].append(f"{rel_img}: unreadable ({e.strerror or e})")
        return None
    if (w, h) != (im.get("width"), im.get("height")):
        lists["corrupt_images"].append(
            f"{rel_img}: size {w}x{h} on disk, {im.get('width')}x{im.get('height')} in {name}"
        )
        return None
    return w, h


def _convert_boxes(image_id: int, boxes: list, size: tuple[int, int], cls: dict, name: str, s: _Split) -> str:
    """Clip one image's boxes; add them to the ground truth (crowd included) and return the YOLO label text."""
    w, h = size
    lines = []
    for a, (x, y, bw, bh) in boxes:
        x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, w), min(y + bh, h)
        if x2 <= x1 or y2 <= y1:
            s.lists["malformed_rows"].append(f"{name}: annotation id {a.get('id')}: box lies outside the {w}x{h} image")
            continue
        clipped = (x1, y1, x2, y2) != (x, y, x + bw, y + bh)
        crowd = 1 if a.get("iscrowd") else 0
        area = a.get("area")
        if not isinstance(area, (int, float)) or not isfinite(area) or area < 0:
            area = (x2 - x1) * (y2 - y1)
        s.annotations.append(
            {"id": a.get("id", len(s.annotations) + 1), "image_id": image_id, "category_id": a["category_id"],
             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": crowd}
        )  # fmt: skip
        if crowd:
            s.counts["crowd"] += 1
            continue
        s.counts["boxes"] += 1
        s.counts["boxes_clipped"] += clipped
        cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
        lines.append(f"{cls[a['category_id']]} {cx:.6f} {cy:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
    return "".join(lines)


@dataclass
class _Split:
    """One split's conversion in progress: what it has gathered."""

    lists: dict = field(default_factory=lambda: {k: [] for k in LISTS})
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    images: list = field(default_factory=list)  # COCO image entries written
    annotations: list = field(default_factory=list)


def prepare_split(split: str, ann_path: Path, img_dir: Path, source: Path, out: Path, progress: bool = True):
    """Convert one split; return (counts and lists, rewritten COCO ground truth, class names)."""
    name = layout.rel(ann_path, source)
    data = _load(ann_path, name)
    cats = _categories(data)
    cls = {c["id"]: i for i, c in enumerate(cats)}
    s = _Split()
    images = _images(data, name, s.lists["malformed_rows"])
    per_image = _boxes_by_image(data, name, cls, images, s.lists["malformed_rows"])
    files = layout.SplitFiles.open(out, split)
    order = sorted(images)
    with layout.gc_paused():
        for image_id in layout.progress(order, len(order), f"coco {split}", progress):
            im = images[image_id]
            fname = im["file_name"]
            rel_img = layout.rel(img_dir / fname, source)
            size = _image_size(img_dir / fname, im, rel_img, name, s.lists)
            if size is None:
                continue
            labels = _convert_boxes(image_id, per_image.get(image_id, ()), size, cls, name, s)
            if not labels:
                s.lists["images_without_annotations"].append(rel_img)
            s.images.append(
                {"id": image_id, "file_name": f"images/{split}/{fname}", "width": size[0], "height": size[1]}
            )
            files.add(str(img_dir / fname), fname, labels)
    files.close(out, split)
    s.counts["boxes_outside_image"] = sum("lies outside" in m for m in s.lists["malformed_rows"])
    for k in LISTS:
        s.counts[k] = len(s.lists[k])
    s.counts["images"] = len(s.images)
    gt = {
        "info": data.get("info", {}),
        "licenses": data.get("licenses", []),
        "images": s.images,
        "categories": [{k: v for k, v in cat.items() if k != "keypoints"} for cat in cats],
        "annotations": s.annotations,
    }
    return {"counts": s.counts, **s.lists}, gt, [cat.get("name", str(cat["id"])) for cat in cats]


def prepare(source: str | os.PathLike, out: str | os.PathLike, splits=None, progress: bool = True) -> dict:
    """Prepare COCO 2017 from ``source`` into ``out``; return the report (also written to OUT/report.json)."""
    source, out = Path(source).resolve(), Path(out).resolve()
    if not source.is_dir():
        raise PrepareError(f"source folder {source} does not exist")
    split_entries = catalogue.dataset("coco")["splits"]
    # before OUT is created: a refused OUT leaves SRC as it was
    layout.refuse_overlap(out, [source / f for f in (*(e["folder"] for e in split_entries.values()), "annotations")])
    layout.start(out)
    found = {}
    for split, entry in split_entries.items():
        if not splits or split in splits:
            loc = _locate(source, out, entry)
            if loc:
                found[split] = loc
    if not found:
        raise PrepareError(f"no COCO split found in {source}: expected annotations/instances_{{train,val}}2017.json")
    layout.refuse_overlap(out, [img for _ann, img in found.values()], after_start=True)
    report = layout.new_report("coco", source, COUNTS)
    names = None
    for split, (ann, img) in found.items():
        res, gt, split_names = prepare_split(split, ann, img, source, out, progress)
        if names is not None and split_names != names:
            raise PrepareError(f"{layout.rel(ann, source)}: categories differ from the other split's")
        names = split_names
        fsio.write_json(out / "annotations" / f"{split}.json", gt, sync=False)
        fsio.link_or_copy(str(ann), str(out / "annotations" / ann.name))
        layout.add_split(report, split, layout.rel(img, source), res)
    layout.write_data_yaml(
        out, list(found), names, "COCO 2017 detection, prepared by `yolo-ema prepare coco`\nsource: " + str(source)
    )
    layout.describe_outputs(report, found)
    report["outputs"]["original_annotations"] = {s: f"annotations/{a.name}" for s, (a, _) in found.items()}
    return layout.finish(out, report)

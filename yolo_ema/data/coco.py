"""Prepare COCO 2017 detection (``instances_{train,val}2017.json`` + image folders, or the official zips).

COCO format (cocodataset.org/#format-data): ``images`` [{id, file_name, width, height}], ``categories`` [{id, name}]
(80 classes, sparse ids 1..90), ``annotations`` [{id, image_id, category_id, bbox [x, y, w, h], area, iscrowd}].
YOLO class i is the i-th category sorted by id. Crowd boxes (iscrowd=1) stay in the evaluation JSON but are not
trained on. The original instances JSON is linked next to the rewritten one. SRC is never modified.
"""

from __future__ import annotations

import json
import os
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


def prepare_split(split: str, ann_path: Path, img_dir: Path, source: Path, out: Path, progress: bool = True):
    """Convert one split; return (counts and lists, rewritten COCO ground truth)."""
    name = layout.rel(ann_path, source)
    data = _load(ann_path, name)
    cats = sorted(
        (c for c in data["categories"] if isinstance(c, dict) and isinstance(c.get("id"), int)), key=lambda c: c["id"]
    )
    cls = {c["id"]: i for i, c in enumerate(cats)}
    c = dict.fromkeys(COUNTS, 0)
    lists = {k: [] for k in LISTS}
    images = {}
    for i, im in enumerate(data["images"]):
        ok = isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str)
        if not ok or os.sep in im["file_name"] or "/" in im["file_name"] or im["id"] in images:
            lists["malformed_rows"].append(f"{name}:images[{i}]: bad or duplicate image entry")
            continue
        images[im["id"]] = im
    per_image: dict[int, list] = {}
    for i, a in enumerate(data["annotations"]):
        box = _box(a)
        where = f"{name}:annotations[{i}]" + (f" (id {a.get('id')})" if isinstance(a, dict) else "")
        if box is None:
            lists["malformed_rows"].append(f"{where}: bbox is not 4 finite numbers")
        elif box[2] <= 0 or box[3] <= 0:
            lists["malformed_rows"].append(f"{where}: bbox width and height must be > 0, got {box[2]}x{box[3]}")
        elif a.get("category_id") not in cls:
            lists["malformed_rows"].append(f"{where}: unknown category_id {a.get('category_id')!r}")
        elif a.get("image_id") not in images:
            lists["malformed_rows"].append(f"{where}: unknown image_id {a.get('image_id')!r}")
        else:
            per_image.setdefault(a["image_id"], []).append((a, box))
    img_out, lbl_out = layout.split_dirs(out, split)
    keep_img, keep_lbl, changed = set(), set(), False
    out_images, out_anns = [], []
    order = sorted(images)
    for image_id in layout.progress(order, len(order), f"coco {split}", progress):
        im = images[image_id]
        fname = im["file_name"]
        path = img_dir / fname
        rel_img = layout.rel(path, source)
        try:
            w, h = read_size(path)
        except FileNotFoundError:
            lists["annotations_without_image"].append(rel_img)
            continue
        except BadImage as e:
            lists["corrupt_images"].append(f"{rel_img}: {e}")
            continue
        except OSError as e:
            lists["corrupt_images"].append(f"{rel_img}: unreadable ({e.strerror or e})")
            continue
        if (w, h) != (im.get("width"), im.get("height")):
            lists["corrupt_images"].append(
                f"{rel_img}: size {w}x{h} on disk, {im.get('width')}x{im.get('height')} in {name}"
            )
            continue
        lines = []
        for a, (x, y, bw, bh) in per_image.get(image_id, ()):
            x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, w), min(y + bh, h)
            if x2 <= x1 or y2 <= y1:
                lists["malformed_rows"].append(
                    f"{name}: annotation id {a.get('id')}: box lies outside the {w}x{h} image"
                )
                continue
            clipped = (x1, y1, x2, y2) != (x, y, x + bw, y + bh)
            crowd = 1 if a.get("iscrowd") else 0
            area = a.get("area")
            if not isinstance(area, (int, float)) or not isfinite(area) or area < 0:
                area = (x2 - x1) * (y2 - y1)
            out_anns.append(
                {
                    "id": a.get("id", len(out_anns) + 1),
                    "image_id": image_id,
                    "category_id": a["category_id"],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": area,
                    "iscrowd": crowd,
                }
            )
            if crowd:
                c["crowd"] += 1
                continue
            c["boxes"] += 1
            c["boxes_clipped"] += clipped
            cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
            lines.append(f"{cls[a['category_id']]} {cx:.6f} {cy:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
        if not lines:
            lists["images_without_annotations"].append(rel_img)
        out_images.append({"id": image_id, "file_name": f"images/{split}/{fname}", "width": w, "height": h})
        stem = os.path.splitext(fname)[0]
        changed |= fsio.write_text(lbl_out / f"{stem}.txt", "".join(lines), sync=False)
        changed |= fsio.link_or_copy(str(path), str(img_out / fname))
        keep_img.add(fname)
        keep_lbl.add(f"{stem}.txt")
    c["boxes_outside_image"] = sum("lies outside" in m for m in lists["malformed_rows"])
    changed |= bool(fsio.prune(img_out, keep_img)) | bool(fsio.prune(lbl_out, keep_lbl))
    if changed:
        layout.drop_cache(out, split)
    for k in LISTS:
        c[k] = len(lists[k])
    c["images"] = len(out_images)
    gt = {
        "info": data.get("info", {}),
        "licenses": data.get("licenses", []),
        "images": out_images,
        "categories": [{k: v for k, v in cat.items() if k != "keypoints"} for cat in cats],
        "annotations": out_anns,
    }
    return {"counts": c, **lists}, gt, [cat.get("name", str(cat["id"])) for cat in cats]


def prepare(source: str | os.PathLike, out: str | os.PathLike, splits=None, progress: bool = True) -> dict:
    """Prepare COCO 2017 from ``source`` into ``out``; return the report (also written to OUT/report.json)."""
    source, out = Path(source).resolve(), Path(out).resolve()
    if not source.is_dir():
        raise PrepareError(f"source folder {source} does not exist")
    split_entries = catalogue.dataset("coco")["splits"]
    for folder in (
        *(e["folder"] for e in split_entries.values()),
        "annotations",
    ):  # before OUT is created: a refused OUT leaves SRC as it was
        if (source / folder).is_dir() and fsio.inside(out, source / folder):
            raise PrepareError(f"output folder {out} overlaps source folder {source / folder}; choose another --out")
    layout.start(out)
    found = {}
    for split, entry in split_entries.items():
        if not splits or split in splits:
            loc = _locate(source, out, entry)
            if loc:
                found[split] = loc
    if not found:
        raise PrepareError(f"no COCO split found in {source}: expected annotations/instances_{{train,val}}2017.json")
    for _ann, img in found.values():
        if fsio.inside(out, img) or any(fsio.inside(img, out / s) for s in ("images", "labels", "annotations")):
            raise PrepareError(f"output folder {out} overlaps source folder {img}; choose another --out")
    report = {"dataset": "coco", "source": str(source), "splits": {}, "totals": dict.fromkeys(COUNTS, 0)}
    report.update({k: [] for k in LISTS})
    names = None
    for split, (ann, img) in found.items():
        res, gt, split_names = prepare_split(split, ann, img, source, out, progress)
        if names is not None and split_names != names:
            raise PrepareError(f"{layout.rel(ann, source)}: categories differ from the other split's")
        names = split_names
        fsio.write_json(out / "annotations" / f"{split}.json", gt, sync=False)
        fsio.link_or_copy(str(ann), str(out / "annotations" / ann.name))
        report["splits"][split] = {"source_folder": layout.rel(img, source), **res["counts"]}
        for k, v in res["counts"].items():
            report["totals"][k] += v
        for k in LISTS:
            report[k] += res[k]
    report["warnings"] = [f"no {s} split: Ultralytics training needs one" for s in ("train", "val") if s not in found]
    layout.write_data_yaml(
        out, list(found), names, "COCO 2017 detection, prepared by `yolo-ema prepare coco`\nsource: " + str(source)
    )
    report["outputs"] = {
        "data_yaml": "data.yaml",
        "images": {s: f"images/{s}" for s in found},
        "labels": {s: f"labels/{s}" for s in found},
        "annotations": {s: f"annotations/{s}.json" for s in found},
        "original_annotations": {s: f"annotations/{a.name}" for s, (a, _) in found.items()},
    }
    return layout.finish(out, report)

"""Prepare VisDrone2019-DET (official folders or zips) for Ultralytics training and VisDrone-protocol evaluation.

SRC holds ``VisDrone2019-DET-{train,val,test-dev}/{images,annotations}`` (or the zip archives of those names). SRC
is never modified: images are hard-linked (copied across filesystems) and zips are extracted under OUT/.extracted.
Category c in 1..10 becomes YOLO class c-1; ignored regions (0), 'others' (11) and score-0 objects are kept only in the
COCO ground truth (``ignore_regions``). See yolo_ema/data/visdrone_format.py for the annotation format.
"""

from __future__ import annotations

import os
from pathlib import Path

from yolo_ema.data import archives, catalogue, fsio, layout
from yolo_ema.data.imagesize import IMG_EXT, BadImage, read_size
from yolo_ema.data.layout import PrepareError
from yolo_ema.data.visdrone_format import convert, parse

COUNTS = (
    "images",
    "rows",
    "boxes",
    "ignored_regions",
    "others",
    "score0",
    "boxes_clipped",
    "boxes_outside_image",
    *layout.PROBLEMS,
)
LISTS = layout.PROBLEMS


def find_splits(source: Path, out: Path, splits=None) -> dict[str, Path]:
    """Map each split present to its folder: ``SRC/<folder>``, else ``SRC/<folder>.zip`` extracted under OUT.

    Problems are later named relative to the folder's parent (``VisDrone2019-DET-train/annotations/x.txt:3``), the
    same whether the split came from a folder or from its zip.
    """
    found = {}
    for split, folder in catalogue.split_folders("visdrone").items():
        if splits and split not in splits:
            continue
        d = source / folder
        if (d / "images").is_dir():
            found[split] = d
        elif (source / f"{folder}.zip").is_file():
            found[split] = archives.extract(source / f"{folder}.zip", out / ".extracted") / folder
            if not (found[split] / "images").is_dir():
                raise PrepareError(f"{source / f'{folder}.zip'}: has no {folder}/images folder")
    if not found:
        want = ", ".join(
            f"{f}/ (or {f}.zip)" for s, f in catalogue.split_folders("visdrone").items() if not splits or s in splits
        )
        raise PrepareError(f"no VisDrone-DET split found in {source}: expected {want}")
    for d in found.values():
        if fsio.inside(out, d) or any(fsio.inside(d, out / sub) for sub in ("images", "labels", "annotations")):
            raise PrepareError(f"output folder {out} overlaps source folder {d}; choose another --out")
    return found


def _scan(folder: Path, exts) -> dict[str, os.DirEntry]:
    try:
        return {e.name: e for e in os.scandir(folder) if os.path.splitext(e.name)[1].lower() in exts and e.is_file()}
    except FileNotFoundError:
        return {}


def prepare_split(split: str, src: Path, source_root: Path, out: Path, progress: bool = True) -> tuple[dict, dict]:
    """Convert one split, image by image; return (counts and problem lists, COCO ground truth).

    Labels and image links that are already right are not rewritten.
    """
    img_out, lbl_out = layout.split_dirs(out, split)
    images = _scan(src / "images", IMG_EXT)
    anns = {os.path.splitext(n)[0]: e for n, e in _scan(src / "annotations", {".txt"}).items()}
    c = dict.fromkeys(COUNTS, 0)
    lists = {k: [] for k in LISTS}
    seen, keep_img, keep_lbl, changed = set(), set(), set(), False
    gt_images, gt_anns, gt_ignores = [], [], []
    for fname in layout.progress(sorted(images), len(images), f"visdrone {split}", progress):
        entry = images[fname]
        stem = os.path.splitext(fname)[0]
        if stem in seen:
            lists["corrupt_images"].append(f"{layout.rel(Path(entry.path), source_root)}: another image has the same name stem {stem!r}")  # fmt: skip
            continue
        seen.add(stem)
        try:
            w, h = read_size(entry.path)
        except (BadImage, OSError) as e:
            why = e if isinstance(e, BadImage) else f"unreadable ({e.strerror or e})"
            lists["corrupt_images"].append(f"{layout.rel(Path(entry.path), source_root)}: {why}")
            continue
        ann = anns.get(stem)
        rows, errors, name = [], [], ""
        if ann is None:
            lists["images_without_annotations"].append(layout.rel(Path(entry.path), source_root))
        else:
            name = layout.rel(Path(ann.path), source_root)
            with open(ann.path, "rb") as f:
                rows, errors = parse(f.read(), name)
        conv = convert(rows, w, h, name)
        c["rows"] += len(rows) + len(errors)
        lists["malformed_rows"] += sorted(errors + conv.errors, key=_line_key)
        c["boxes_clipped"] += conv.clipped
        c["boxes_outside_image"] += len(conv.errors)
        image_id = len(gt_images) + 1
        gt_images.append({"id": image_id, "file_name": f"images/{split}/{fname}", "width": w, "height": h})
        for cat, (x, y, bw, bh), trunc, occ in conv.boxes:
            gt_anns.append(
                {"id": len(gt_anns) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, bw, bh],
                 "area": bw * bh, "iscrowd": 0, "truncation": trunc, "occlusion": occ}
            )  # fmt: skip
        for (x, y, bw, bh), source, cat in conv.ignores:
            c[_IGNORE_COUNT[source]] += 1
            gt_ignores.append(
                {"id": len(gt_ignores) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, bw, bh],
                 "source": source}
            )  # fmt: skip
        changed |= fsio.write_text(os.path.join(lbl_out, stem + ".txt"), conv.labels, sync=False)
        changed |= fsio.link_or_copy(entry.path, os.path.join(img_out, fname), entry.stat())
        keep_img.add(fname)
        keep_lbl.add(stem + ".txt")
    lists["annotations_without_image"] = sorted(
        layout.rel(Path(anns[s].path), source_root) for s in anns if s not in seen
    )
    changed |= bool(fsio.prune(img_out, keep_img)) | bool(fsio.prune(lbl_out, keep_lbl))
    if changed:
        layout.drop_cache(out, split)
    c["boxes"] = len(gt_anns)
    for k in LISTS:
        c[k] = len(lists[k])
    c["images"] = len(gt_images)
    gt = {
        "info": {"description": f"VisDrone2019-DET {split} ground truth (yolo-ema prepare visdrone)"},
        "images": gt_images,
        "categories": [
            {"id": i + 1, "name": n, "supercategory": "visdrone"}
            for i, n in enumerate(catalogue.class_names("visdrone"))
        ],
        "annotations": gt_anns,
        "ignore_regions": gt_ignores,
    }
    return {"counts": c, **lists}, gt


_IGNORE_COUNT = {"ignored_region": "ignored_regions", "others": "others", "score0": "score0"}


def _line_key(msg: str):
    path, _, rest = msg.partition(":")
    line = rest.partition(":")[0]
    return (path, int(line) if line.isdigit() else 0)


def prepare(
    source: str | os.PathLike, out: str | os.PathLike, splits=None, progress: bool = True, write_yaml: bool = True
) -> dict:
    """Prepare VisDrone-DET from ``source`` into ``out``; return the report (also written to OUT/report.json).

    Idempotent: a re-run rewrites nothing that is already right, and a run killed at any point can simply be re-run.
    """
    source, out = Path(source).resolve(), Path(out).resolve()
    if not source.is_dir():
        raise PrepareError(f"source folder {source} does not exist")
    for folder in catalogue.split_folders(
        "visdrone"
    ).values():  # checked before OUT is created, so a refused OUT leaves no trace in SRC
        if (source / folder).is_dir() and fsio.inside(out, source / folder):
            raise PrepareError(f"output folder {out} overlaps source folder {source / folder}; choose another --out")
    layout.start(out)
    found = find_splits(source, out, splits)
    report = {"dataset": "visdrone", "source": str(source), "splits": {}, "totals": dict.fromkeys(COUNTS, 0)}
    report.update({k: [] for k in LISTS})
    for split, src in found.items():
        res, gt = prepare_split(split, src, src.parent, out, progress)
        fsio.write_json(out / "annotations" / f"{split}.json", gt, sync=False)
        origin = src.name if (source / src.name).is_dir() else f"{src.name}.zip"
        report["splits"][split] = {"source_folder": origin, **res["counts"]}
        for k, v in res["counts"].items():
            report["totals"][k] += v
        for k in LISTS:
            report[k] += res[k]
    report["warnings"] = [f"no {s} split: Ultralytics training needs one" for s in ("train", "val") if s not in found]
    if write_yaml:
        header = "VisDrone2019-DET, prepared by `yolo-ema prepare visdrone`\nsource: " + str(source)
        layout.write_data_yaml(out, list(found), catalogue.class_names("visdrone"), header)
    report["outputs"] = {
        "data_yaml": "data.yaml",
        "images": {s: f"images/{s}" for s in found},
        "labels": {s: f"labels/{s}" for s in found},
        "annotations": {s: f"annotations/{s}.json" for s in found},
    }
    return layout.finish(out, report)

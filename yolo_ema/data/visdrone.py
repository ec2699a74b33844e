"""Prepare VisDrone2019-DET (official folders or zips) for Ultralytics training and VisDrone-protocol evaluation.

SRC holds ``VisDrone2019-DET-{train,val,test-dev}/{images,annotations}`` (or the zip archives of those names). SRC
is never modified: images are hard-linked (copied across filesystems) and zips are extracted under OUT/.extracted.
Category c in 1..10 becomes YOLO class c-1; ignored regions (0), 'others' (11) and score-0 objects are kept only in the
COCO ground truth (``ignore_regions``). See yolo_ema/data/visdrone_format.py for the annotation format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from yolo_ema.data import archives, fsio, layout, visdrone_batch
from yolo_ema.data.imagesize import IMG_EXT, BadImage, read_size
from yolo_ema.data.layout import PrepareError
from yolo_ema.data.visdrone_format import NAMES

SPLITS = {"train": "VisDrone2019-DET-train", "val": "VisDrone2019-DET-val", "test": "VisDrone2019-DET-test-dev"}
COUNTS = (
    "images",
    "rows",
    "boxes",
    "ignored_regions",
    "others",
    "score0",
    "boxes_clipped",
    "boxes_outside_image",
    "malformed_rows",
    "corrupt_images",
    "annotations_without_image",
    "images_without_annotations",
)
LISTS = ("malformed_rows", "corrupt_images", "annotations_without_image", "images_without_annotations")


def find_splits(source: Path, out: Path, splits=None) -> dict[str, Path]:
    """Map each split present to its folder: ``SRC/<folder>``, else ``SRC/<folder>.zip`` extracted under OUT.

    Problems are later named relative to the folder's parent (``VisDrone2019-DET-train/annotations/x.txt:3``), the
    same whether the split came from a folder or from its zip.
    """
    found = {}
    for split, folder in SPLITS.items():
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
        want = ", ".join(f"{f}/ (or {f}.zip)" for s, f in SPLITS.items() if not splits or s in splits)
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


def prepare_split(split: str, src: Path, source_root: Path, out: Path, progress: bool = True) -> tuple[dict, str]:
    """Convert one split; return (counts and problem lists, COCO ground truth as JSON text).

    Pass 1 reads every image header and annotation file (progress bar), pass 2 parses and converts the whole split at
    once (visdrone_batch), pass 3 writes labels and links images, skipping what is already right.
    """
    img_out, lbl_out = layout.split_dirs(out, split)
    images = _scan(src / "images", IMG_EXT)
    anns = {os.path.splitext(n)[0]: e for n, e in _scan(src / "annotations", {".txt"}).items()}
    c = dict.fromkeys(COUNTS, 0)
    lists = {k: [] for k in LISTS}
    ok, seen = [], set()  # ok: (file name, stem, dir entry, width, height)
    datas, names = [], []
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
        if ann is None:
            lists["images_without_annotations"].append(layout.rel(Path(entry.path), source_root))
            datas.append(None)
            names.append("")
        else:
            with open(ann.path, "rb") as f:
                datas.append(f.read())
            names.append(layout.rel(Path(ann.path), source_root))
        ok.append((fname, stem, entry, w, h))
    widths = np.array([o[3] for o in ok], np.int64)
    heights = np.array([o[4] for o in ok], np.int64)
    parsed = visdrone_batch.parse_split(datas, names)
    conv = visdrone_batch.convert_split(parsed, widths, heights, names)
    changed = False
    for (fname, stem, entry, _, _), labels in zip(ok, conv.labels):
        changed |= fsio.write_text(os.path.join(lbl_out, stem + ".txt"), labels, sync=False)
        changed |= fsio.link_or_copy(entry.path, os.path.join(img_out, fname), entry.stat())
    lists["malformed_rows"] = sorted(parsed.errors + conv.errors, key=_line_key)
    lists["annotations_without_image"] = sorted(
        layout.rel(Path(anns[s].path), source_root) for s in anns if s not in seen
    )
    keep_img = {o[0] for o in ok}
    keep_lbl = {o[1] + ".txt" for o in ok}
    changed |= bool(fsio.prune(img_out, keep_img)) | bool(fsio.prune(lbl_out, keep_lbl))
    if changed:
        layout.drop_cache(out, split)
    src_counts = np.bincount(conv.ignores["source"], minlength=3) if len(conv.ignores["source"]) else [0, 0, 0]
    c["ignored_regions"], c["others"], c["score0"] = (int(n) for n in src_counts)
    c["rows"] = len(parsed.values) + len(parsed.errors)
    c["boxes"] = len(conv.boxes["file"])
    c["boxes_clipped"] = conv.clipped
    c["boxes_outside_image"] = len(conv.errors)
    for k in LISTS:
        c[k] = len(lists[k])
    c["images"] = len(ok)
    return {"counts": c, **lists}, _coco_json(split, ok, conv)


_ANN = (
    '{"id":%d,"image_id":%d,"category_id":%d,"bbox":[%r,%r,%r,%r],"area":%r,"iscrowd":0,"truncation":%r,"occlusion":%r}'
)
_IGN = '{"id":%d,"image_id":%d,"category_id":%d,"bbox":[%r,%r,%r,%r],"source":"%s"}'


def _rows(fmt: str, cols: list) -> str:
    """Comma-joined JSON objects, one ``fmt`` per row, formatted in one call (columns hold JSON-ready numbers)."""
    n = len(cols[0])
    if not n:
        return ""
    flat = [v for row in zip(*cols) for v in row]
    return ",".join([fmt] * n) % tuple(flat)


def _coco_json(split: str, ok: list, conv) -> str:
    """COCO ground truth as compact JSON text, built row by row (json.dumps of dicts is the slow part otherwise)."""
    from yolo_ema.data.visdrone_batch import SOURCES, json_numbers

    dumps = json.dumps
    images = [
        f'{{"id":{i},"file_name":{dumps(f"images/{split}/{o[0]}")},"width":{o[3]},"height":{o[4]}}}'
        for i, o in enumerate(ok, 1)
    ]
    b, g = conv.boxes, conv.ignores
    ann_cols = [range(1, len(b["file"]) + 1), (b["file"] + 1).tolist(), b["category"].astype(np.int64).tolist()]
    ann_cols += [json_numbers(b[k]) for k in ("x", "y", "w", "h")]
    ann_cols += [json_numbers(b["w"] * b["h"]), json_numbers(b["truncation"]), json_numbers(b["occlusion"])]
    ign_cols = [range(1, len(g["file"]) + 1), (g["file"] + 1).tolist(), g["category"].astype(np.int64).tolist()]
    ign_cols += [json_numbers(g[k]) for k in ("x", "y", "w", "h")] + [[SOURCES[s] for s in g["source"].tolist()]]
    anns = _rows(_ANN, ann_cols)
    ignores = _rows(_IGN, ign_cols)
    info = {"description": f"VisDrone2019-DET {split} ground truth (yolo-ema prepare visdrone)"}
    cats = [{"id": i + 1, "name": n, "supercategory": "visdrone"} for i, n in enumerate(NAMES)]
    sep = (",", ":")
    return (
        f'{{"info":{dumps(info, separators=sep)},"images":[{",".join(images)}],'
        f'"categories":{dumps(cats, separators=sep)},"annotations":[{anns}],"ignore_regions":[{ignores}]}}\n'
    )


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
    for folder in SPLITS.values():  # checked before OUT is created, so a refused OUT leaves no trace in SRC
        if (source / folder).is_dir() and fsio.inside(out, source / folder):
            raise PrepareError(f"output folder {out} overlaps source folder {source / folder}; choose another --out")
    layout.start(out)
    found = find_splits(source, out, splits)
    report = {"dataset": "visdrone", "source": str(source), "splits": {}, "totals": dict.fromkeys(COUNTS, 0)}
    report.update({k: [] for k in LISTS})
    for split, src in found.items():
        res, coco = prepare_split(split, src, src.parent, out, progress)
        fsio.makedirs(out / "annotations")
        fsio.write_text(out / "annotations" / f"{split}.json", coco, sync=False)
        origin = src.name if (source / src.name).is_dir() else f"{src.name}.zip"
        report["splits"][split] = {"source_folder": origin, **res["counts"]}
        for k, v in res["counts"].items():
            report["totals"][k] += v
        for k in LISTS:
            report[k] += res[k]
    report["warnings"] = [f"no {s} split: Ultralytics training needs one" for s in ("train", "val") if s not in found]
    if write_yaml:
        header = "VisDrone2019-DET, prepared by `yolo-ema prepare visdrone`\nsource: " + str(source)
        layout.write_data_yaml(out, list(found), list(NAMES), header)
    report["outputs"] = {
        "data_yaml": "data.yaml",
        "images": {s: f"images/{s}" for s in found},
        "labels": {s: f"labels/{s}" for s in found},
        "annotations": {s: f"annotations/{s}.json" for s in found},
    }
    return layout.finish(out, report)

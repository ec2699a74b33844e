"""Prepare VisDrone2019-DET (official folders or zips) for Ultralytics training and VisDrone-protocol evaluation.

SRC holds ``VisDrone2019-DET-{train,val,test-dev}/{images,annotations}`` (or the zip archives of those names). SRC
is never modified: images are hard-linked (copied across filesystems) and zips are extracted under OUT/.extracted.
Category c in 1..10 becomes YOLO class c-1; ignored regions (0), 'others' (11) and score-0 objects are kept only in the
COCO ground truth (``ignore_regions``). See yolo_ema/data/visdrone_format.py for the annotation format.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from yolo_ema.data import archives, catalogue, fsio, layout
from yolo_ema.data.imagesize import IMG_EXT, BadImage, read_size
from yolo_ema.data.layout import PrepareError
from yolo_ema.data.visdrone_format import convert, ignore_source, parse

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
    layout.refuse_overlap(out, found.values(), after_start=True)
    return found


def _scan(folder: Path, exts) -> dict[str, os.DirEntry]:
    try:
        return {e.name: e for e in os.scandir(folder) if os.path.splitext(e.name)[1].lower() in exts and e.is_file()}
    except FileNotFoundError:
        return {}


class GroundTruth:
    """The COCO ground truth of one split, built image by image as ``prepare visdrone`` writes it.

    ``boxes`` and ``ignores`` are :class:`visdrone_format.Converted`'s: ``(category, [x, y, w, h], truncation,
    occlusion)`` and ``([x, y, w, h], source, category)``; ids count from 1 in the order added.
    """

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.ignore_regions: list[dict] = []

    def add_image(self, file_name: str, width: int, height: int, boxes, ignores) -> int:
        """Add one image with its boxes and ignore regions; return its image id."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        anns, regions = self.annotations, self.ignore_regions
        for cat, (x, y, bw, bh), trunc, occ in boxes:
            anns.append(
                {"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, bw, bh],
                 "area": bw * bh, "iscrowd": 0, "truncation": trunc, "occlusion": occ}
            )  # fmt: skip
        for (x, y, bw, bh), source, cat in ignores:
            regions.append(
                {"id": len(regions) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, bw, bh],
                 "source": source}
            )  # fmt: skip
        return image_id

    def add_rows(self, file_name: str, width: int, height: int, rows) -> int:
        """Add one image from rows ``[x, y, w, h, score, category(, truncation, occlusion)]`` taken as they are, not
        clipped (as the official toolkit scores its files); return its image id."""
        boxes, ignores = [], []
        for r in rows:
            x, y, bw, bh, score, cat = r[:6]
            cat = int(cat)
            source = ignore_source(cat, score)
            if source:
                ignores.append(([x, y, bw, bh], source, cat))
            else:
                boxes.append((cat, [x, y, bw, bh], *(r[6:8] if len(r) >= 8 else (None, None))))
        return self.add_image(file_name, width, height, boxes, ignores)

    def as_dict(self, description: str) -> dict:
        """The COCO JSON object: info, images, the catalogue's categories, annotations, ignore_regions."""
        return {
            "info": {"description": description},
            "images": self.images,
            "categories": [
                {"id": i + 1, "name": n, "supercategory": "visdrone"}
                for i, n in enumerate(catalogue.class_names("visdrone"))
            ],
            "annotations": self.annotations,
            "ignore_regions": self.ignore_regions,
        }


def _namer(folder: Path, root: Path):
    """``name -> layout.rel(folder / name, root)``, the folder's part computed once (relpath per file is slow)."""
    prefix = layout.rel(folder, root)
    sep = os.sep if prefix == str(folder) else "/"  # rel falls back to the absolute path where none is relative
    return lambda name: f"{prefix}{sep}{name}"


@dataclass
class _Split:
    """One split's conversion in progress: where it reads and writes, and what it has gathered."""

    split: str
    files: layout.SplitFiles
    image_name: Callable[[str], str]  # file name -> name in problem messages
    ann_name: Callable[[str], str]
    lists: dict = field(default_factory=lambda: {k: [] for k in LISTS})
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    gt: GroundTruth = field(default_factory=GroundTruth)
    seen: set = field(default_factory=set)  # name stems converted


def prepare_split(split: str, src: Path, source_root: Path, out: Path, progress: bool = True) -> tuple[dict, dict]:
    """Convert one split, image by image; return (counts and problem lists, COCO ground truth).

    Labels and image links that are already right are not rewritten.
    """
    files = layout.SplitFiles.open(out, split)
    images = _scan(src / "images", IMG_EXT)
    anns = {os.path.splitext(n)[0]: e for n, e in _scan(src / "annotations", {".txt"}).items()}
    s = _Split(split, files, _namer(src / "images", source_root), _namer(src / "annotations", source_root))
    with layout.gc_paused():
        for fname in layout.progress(sorted(images), len(images), f"visdrone {split}", progress):
            _convert_image(s, images[fname], anns)
    s.lists["annotations_without_image"] = sorted(s.ann_name(anns[k].name) for k in anns if k not in s.seen)
    files.close(out, split)
    return _totals(s), s.gt.as_dict(f"VisDrone2019-DET {split} ground truth (yolo-ema prepare visdrone)")


def _convert_image(s: _Split, entry: os.DirEntry, anns: dict[str, os.DirEntry]) -> None:
    """Convert one image: its label file, its link, its ground truth; or a problem naming it."""
    fname = entry.name
    stem = os.path.splitext(fname)[0]
    if stem in s.seen:
        s.lists["corrupt_images"].append(f"{s.image_name(fname)}: another image has the same name stem {stem!r}")
        return
    s.seen.add(stem)
    try:
        w, h = read_size(entry.path)
    except (BadImage, OSError) as e:
        why = e if isinstance(e, BadImage) else f"unreadable ({e.strerror or e})"
        s.lists["corrupt_images"].append(f"{s.image_name(fname)}: {why}")
        return
    ann = anns.get(stem)
    rows, errors, name = [], [], ""
    if ann is None:
        s.lists["images_without_annotations"].append(s.image_name(fname))
    else:
        name = s.ann_name(ann.name)
        with open(ann.path, "rb") as f:
            rows, errors = parse(f.read(), name)
    conv = convert(rows, w, h, name)
    s.counts["rows"] += len(rows) + len(errors)
    s.lists["malformed_rows"] += sorted(errors + conv.errors, key=_line_key)
    s.counts["boxes_clipped"] += conv.clipped
    s.counts["boxes_outside_image"] += len(conv.errors)
    s.gt.add_image(f"images/{s.split}/{fname}", w, h, conv.boxes, conv.ignores)
    s.files.add(entry.path, fname, conv.labels)


def _totals(s: _Split) -> dict:
    """``{"counts": {...}, <problem list>: [...]}`` of a converted split."""
    c = s.counts
    for source, n in Counter(r["source"] for r in s.gt.ignore_regions).items():
        c[_IGNORE_COUNT[source]] += n
    c["boxes"] = len(s.gt.annotations)
    for k in LISTS:
        c[k] = len(s.lists[k])
    c["images"] = len(s.gt.images)
    return {"counts": c, **s.lists}


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
    # checked before OUT is created, so a refused OUT leaves no trace in SRC
    layout.refuse_overlap(out, [source / f for f in catalogue.split_folders("visdrone").values()])
    layout.start(out)
    found = find_splits(source, out, splits)
    report = layout.new_report("visdrone", source, COUNTS)
    for split, src in found.items():
        res, gt = prepare_split(split, src, src.parent, out, progress)
        fsio.write_json(out / "annotations" / f"{split}.json", gt, sync=False)
        layout.add_split(report, split, src.name if (source / src.name).is_dir() else f"{src.name}.zip", res)
    if write_yaml:
        header = "VisDrone2019-DET, prepared by `yolo-ema prepare visdrone`\nsource: " + str(source)
        layout.write_data_yaml(out, list(found), catalogue.class_names("visdrone"), header)
    layout.describe_outputs(report, found)
    return layout.finish(out, report)

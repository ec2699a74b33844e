"""The prepared OUT layout shared by every dataset, and the files that describe it.

OUT/images/<split>/<file>     hard links to (or copies of) the source images
OUT/labels/<split>/<stem>.txt YOLO labels: ``cls cx cy w h``, normalised, 6 decimals
OUT/annotations/<split>.json  COCO-format ground truth for evaluation
OUT/data.yaml                 Ultralytics data YAML
OUT/report.json               counts and problems; written last, so its presence marks a complete run
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass, field
from pathlib import Path

from yolo_ema.data import fsio

REPORT = "report.json"
# Problems every preparation reports by name (file:line or file: reason), and counts, in report.json
PROBLEMS = ("malformed_rows", "corrupt_images", "annotations_without_image", "images_without_annotations")


class PrepareError(RuntimeError):
    """Preparation cannot go on; the message names the culprit (file, folder or value)."""


def start(out: Path) -> None:
    """Create OUT and drop the completion marker, so an interrupted run never looks complete."""
    fsio.makedirs(out)
    try:
        (out / REPORT).unlink(missing_ok=True)
    except OSError as e:
        raise fsio.OutputError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    for sub in ("", "annotations"):
        fsio.remove_temps(out / sub)


def refuse_overlap(out: Path, folders, after_start: bool = False) -> None:
    """Raise PrepareError if OUT lies inside one of the source ``folders`` (those that exist), or, ``after_start``,
    if a source folder lies inside OUT's images/, labels/ or annotations/."""
    for folder in folders:
        if after_start:
            inside = fsio.inside(out, folder) or any(fsio.inside(folder, out / s) for s in ("images", "labels", "annotations"))  # fmt: skip
        else:
            inside = folder.is_dir() and fsio.inside(out, folder)
        if inside:
            raise PrepareError(f"output folder {out} overlaps source folder {folder}; choose another --out")


def new_report(dataset: str, source: Path, counts) -> dict:
    """report.json before any split: per-split counts, their totals and every problem list, all empty."""
    report = {"dataset": dataset, "source": str(source), "splits": {}, "totals": dict.fromkeys(counts, 0)}
    report.update({k: [] for k in PROBLEMS})
    return report


def add_split(report: dict, split: str, source_folder: str, result: dict) -> None:
    """Add one split's ``{"counts": {...}, <problem list>: [...]}`` to the report."""
    report["splits"][split] = {"source_folder": source_folder, **result["counts"]}
    for k, v in result["counts"].items():
        report["totals"][k] += v
    for k in PROBLEMS:
        report[k] += result[k]


def describe_outputs(report: dict, splits) -> None:
    """The report's warnings (a missing train or val split) and the output paths of ``splits``."""
    report["warnings"] = [f"no {s} split: Ultralytics training needs one" for s in ("train", "val") if s not in splits]
    report["outputs"] = {
        "data_yaml": "data.yaml",
        "images": {s: f"images/{s}" for s in splits},
        "labels": {s: f"labels/{s}" for s in splits},
        "annotations": {s: f"annotations/{s}.json" for s in splits},
    }


@dataclass
class SplitFiles:
    """A split's output folders and the files this run wrote into them; the rest is pruned by :meth:`close`."""

    img_out: str
    lbl_out: str
    keep_img: set = field(default_factory=set)
    keep_lbl: set = field(default_factory=set)
    changed: bool = False  # a label or image link was (re)written

    @classmethod
    def open(cls, out: Path, split: str) -> SplitFiles:
        """``OUT/images/<split>`` and ``OUT/labels/<split>``, created if missing."""
        return cls(str(fsio.makedirs(out / "images" / split)), str(fsio.makedirs(out / "labels" / split)))

    def add(self, image: str, fname: str, labels: str) -> None:
        """Write image ``fname``'s YOLO label text and link (or copy) the source ``image`` under that name."""
        stem = os.path.splitext(fname)[0]
        self.changed |= fsio.write_text(os.path.join(self.lbl_out, stem + ".txt"), labels, sync=False)
        self.changed |= fsio.link_or_copy(image, os.path.join(self.img_out, fname))  # stats the source only if needed
        self.keep_img.add(fname)
        self.keep_lbl.add(stem + ".txt")

    def close(self, out: Path, split: str) -> None:
        """Remove what this run did not write; drop Ultralytics' label cache if anything changed."""
        self.changed |= bool(fsio.prune(self.img_out, self.keep_img)) | bool(fsio.prune(self.lbl_out, self.keep_lbl))
        if self.changed:
            drop_cache(out, split)


def drop_cache(out: Path, split: str) -> None:
    """Remove Ultralytics' label cache for a split whose labels changed (it keys on file sizes only)."""
    (out / "labels" / f"{split}.cache").unlink(missing_ok=True)


def write_data_yaml(out: Path, splits: list[str], names: list[str], header: str) -> Path:
    """Ultralytics data YAML: absolute ``path``, split folders relative to it, ``names`` as {index: name}."""
    import yaml

    data = {"path": str(out), **{s: f"images/{s}" for s in ("train", "val", "test") if s in splits}}
    data["names"] = dict(enumerate(names))
    text = "".join(f"# {h}\n" for h in header.splitlines())
    text += yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    path = out / "data.yaml"
    fsio.write_text(path, text, sync=False)
    return path


def finish(out: Path, report: dict) -> dict:
    """Write report.json last (atomically): from now on OUT is a complete, consistent preparation."""
    report["complete"] = True
    fsio.sync_all()  # labels, links and JSON were written without per-file fsync: all on disk before the marker
    fsio.write_json(out / REPORT, report, indent=1)
    return report


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a split's ground truth is built.

    The ground truth is hundreds of thousands of small dicts and lists, all alive until written, none in a cycle:
    each collection the allocations trigger walks them all and frees nothing. Measured on 3,000 VisDrone-sized
    images (parse, convert and ground truth, in one process, 8 alternating runs): 0.8 s of CPU instead of 1.0 s.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", mininterval=0.5, dynamic_ncols=True)


def rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return str(path)

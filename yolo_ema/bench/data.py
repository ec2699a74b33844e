"""Where the benchmark's data comes from: the embedded synthetic set, a catalogue dataset, or a prepared folder.

A prepared folder is what ``yolo-ema prepare`` writes (``data.yaml``, ``annotations/<split>.json``, and
``report.json`` with ``complete: true`` once finished). The synthetic set is generated deterministically and prepared
through the real VisDrone path, cached under ``CACHE/synthetic-<images>x<size>-seed<seed>{-src,}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from yolo_ema.bench.runner import BenchmarkError

PRESETS = ("synthetic", "visdrone", "coco")


def complete(prepared: Path) -> bool:
    """True if ``prepared`` holds a finished preparation (report.json with complete: true, and data.yaml)."""
    try:
        rep = json.loads((prepared / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(rep.get("complete")) and (prepared / "data.yaml").is_file()


def synthetic(cache: Path, images: int, size: int, seed: int = 0, log: Callable = print) -> Path:
    """Generate (once) and prepare (once) the synthetic set; return the prepared folder."""
    from yolo_ema.data import synthetic as gen
    from yolo_ema.data import visdrone

    stem = f"synthetic-{images}x{size}-seed{seed}"
    src, prepared = Path(cache) / f"{stem}-src", Path(cache) / stem
    if complete(prepared):
        log(f"data: synthetic set cached in {prepared}")
        return prepared.resolve()
    log(f"data: generating {images} synthetic {size}x{size} images (seed {seed}) into {src}")
    gen.generate(src, seed=seed, images=images, size=size, progress=True)
    log(f"data: preparing them through the VisDrone path into {prepared}")
    visdrone.prepare(src, prepared, progress=True)
    return prepared.resolve()


def catalogue_dataset(name: str, prepared: Path, source: Path | None, log: Callable = print) -> Path:
    """A prepared catalogue dataset (``visdrone`` | ``coco``); prepares it from ``source`` when given and needed."""
    from yolo_ema.data import catalogue

    entry = catalogue.dataset(name)  # KeyError naming the known datasets if absent
    if complete(prepared):
        log(f"data: prepared {entry.get('title', name)} in {prepared}")
        return prepared.resolve()
    if source is None:
        raise BenchmarkError(
            f"no finished {name} preparation in {prepared} (report.json missing or incomplete); run "
            f"`yolo-ema prepare {name} --source SRC --out {prepared}` first, or pass --source SRC "
            f"(and --data-dir) to prepare it now"
        )
    log(f"data: preparing {name} from {source} into {prepared}")
    if name == "visdrone":
        from yolo_ema.data import visdrone as prep
    else:
        from yolo_ema.data import coco as prep
    prep.prepare(source, prepared, progress=True)
    return prepared.resolve()


def folder(path: Path, split: str) -> Path:
    """A prepared folder given by path; checked for data.yaml and the evaluation split's ground truth."""
    path = Path(path)
    if not path.is_dir():
        raise BenchmarkError(f"--data {path}: not a folder, and not one of {', '.join(PRESETS)}")
    for need in ("data.yaml", f"annotations/{split}.json"):
        if not (path / need).is_file():
            raise BenchmarkError(f"--data {path}: {need} missing; prepare it with `yolo-ema prepare ... --out {path}`")
    return path.resolve()

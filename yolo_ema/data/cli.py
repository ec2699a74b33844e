"""`yolo-ema prepare synthetic | visdrone | coco`: make a dataset ready for `yolo train` and for evaluation.

Module-level imports are stdlib only; the work is imported inside ``run`` (no torch, no Ultralytics at all).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _size(text: str):
    try:
        if "x" in text.lower():
            w, h = text.lower().split("x")
            return int(w), int(h)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    p = sub.add_parser(
        "synthetic",
        help="write the embedded small-object set in VisDrone source format",
        description="Write a synthetic small-object set as VisDrone2019-DET source folders "
        "(then run `yolo-ema prepare visdrone --source OUT`).",
    )
    p.add_argument("--out", required=True, type=Path, help="folder to write the VisDrone-format source tree to")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    p.add_argument("--images", type=int, default=None, help="images in total (default: datasets.yaml)")
    p.add_argument("--size", type=_size, default=None, help="image size N (square) or WxH (default: datasets.yaml)")
    for name, what in (("visdrone", "VisDrone2019-DET folders or zips"), ("coco", "COCO 2017 instances JSON + images")):
        p = sub.add_parser(name, help=f"prepare {what}", description=f"Prepare {what} for training and evaluation.")
        p.add_argument("--source", type=Path, default=None, help=f"folder holding the {what} (never modified)")
        p.add_argument("--out", required=True, type=Path, help="output folder (images, labels, annotations, data.yaml)")
        p.add_argument("--splits", nargs="+", default=None, help="only these splits (train val test)")
        p.add_argument(
            "--download",
            action="store_true",
            help="fetch missing official archives into OUT/downloads (verified against datasets.yaml)",
        )
    for p in sub.choices.values():
        p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _download(name: str, args) -> Path:
    from yolo_ema.data import catalogue

    entry = catalogue.dataset(name)
    dest = args.out / "downloads"
    source = args.source or dest
    for arc in entry.get("archives") or []:
        if (source / arc["name"]).is_file():
            catalogue.verify(source / arc["name"], arc)
            continue
        print(f"downloading {arc['url']}", file=sys.stderr)
        catalogue.download(arc, dest, progress=args.progress)
    if args.source and args.source.resolve() != dest.resolve():
        # Archives fetched now live in OUT/downloads; link them beside nothing in SRC (SRC is not modified).
        return _merged_source(args.source, dest, entry)
    return source


def _merged_source(source: Path, downloads: Path, entry: dict) -> Path:
    """A view folder (under OUT) pointing at SRC's entries plus the downloaded archives, via symlinks."""
    import os

    view = downloads.parent / ".source-view"
    view.mkdir(parents=True, exist_ok=True)
    for d in (source, downloads):
        for e in os.scandir(d):
            link = view / e.name
            if not link.exists():
                os.symlink(os.path.abspath(e.path), link)
    return view


def run(args) -> int:
    from yolo_ema.data import fsio
    from yolo_ema.data.archives import ArchiveError
    from yolo_ema.data.catalogue import DownloadError
    from yolo_ema.data.layout import PrepareError

    t0 = time.perf_counter()
    try:
        if args.dataset == "synthetic":
            from yolo_ema.data import synthetic

            kw = {k: v for k, v in (("images", args.images), ("size", args.size)) if v is not None}
            out = synthetic.generate(args.out, seed=args.seed, progress=args.progress, **kw)
            print(f"synthetic VisDrone-format source written to {out}")
            print(f"next: yolo-ema prepare visdrone --source {out} --out <OUT>")
            return 0
        if args.download:
            source = _download(args.dataset, args)
        elif args.source is None:
            print(f"error: --source is required for {args.dataset} (or use --download)", file=sys.stderr)
            return 2
        else:
            source = args.source
        if args.dataset == "visdrone":
            from yolo_ema.data.visdrone import prepare
        else:
            from yolo_ema.data.coco import prepare
        report = prepare(source, args.out, splits=args.splits, progress=args.progress)
    except (PrepareError, fsio.OutputError, ArchiveError, DownloadError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the output disappeared or filled up mid-run
        # name the output: for a full disk during a copy, OSError.filename is the (intact) source file
        files = ", ".join(str(f) for f in (e.filename, e.filename2) if f)
        print(
            f"error: writing {args.out} failed: {e.strerror or e}" + (f" ({files})" if files else ""), file=sys.stderr
        )
        return 1
    _summary(report, args.out, time.perf_counter() - t0)
    return 0


def _summary(report: dict, out: Path, seconds: float) -> None:
    t = report["totals"]
    rate = t["images"] / seconds if seconds > 0 else 0.0
    print(f"{report['dataset']}: {t['images']} images, {t['boxes']} boxes in {seconds:.1f} s ({rate:.0f} images/s)")
    for split, s in report["splits"].items():
        extra = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("source_folder", "images") and v)
        print(f"  {split}: {s['images']} images ({extra})")
    for key in ("malformed_rows", "corrupt_images", "annotations_without_image"):
        items = report.get(key) or []
        for msg in items[:10]:
            print(f"  {key.replace('_', ' ')}: {msg}")
        if len(items) > 10:
            print(f"  ... {len(items) - 10} more {key.replace('_', ' ')} in report.json")
    for w in report.get("warnings", []):
        print(f"  warning: {w}")
    print(f"data: {Path(out).resolve() / 'data.yaml'}   report: {Path(out).resolve() / 'report.json'}")

"""Conversion rate: `yolo-ema prepare visdrone` vs Ultralytics' bare VisDrone conversion loop, on the same files.

The bare loop is the one in Ultralytics' VisDrone.yaml (``visdrone2yolo``), re-implemented step for step: per split,
put each image into images/<split> (Ultralytics renames it out of the download; here it is hard-linked so the source
stays intact: one directory-entry syscall either way), then per annotation file open the image with Pillow for its
size, read the file, split rows, skip score-0 rows, convert with int() and write the label file. It writes no COCO
JSON, no report, checks nothing and does not clip. Ours does the whole preparation (header + integrity check, parse
and validate, clip, labels, COCO ground truth with ignore regions, report, atomic writes, images linked).

Both run as whole processes (interpreter start and imports included: what a user waits for), in pairs on a warm
page cache (the order alternating from pair to pair), each into a fresh output folder; outputs are removed only at
the end, so that no run creates its files among just-deleted ones (ext4 then scans past the recently freed inodes).
Printed: the median wall and CPU (user + system) times, the per-pair time ratio ours/bare with its median and a 95%
interval (t on the log ratios), and the load average before and after.

    python scripts/bench_prepare.py                          # synthetic VisDrone-sized source (1360x765, ~55 boxes)
    python scripts/bench_prepare.py --source /data/VisDrone  # the real VisDrone2019-DET folders
"""

from __future__ import annotations

import argparse
import io
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare_loop(source: Path, out: Path, folders: dict[str, str]) -> int:
    """Ultralytics' visdrone2yolo work, faithfully (images linked instead of moved). Returns images converted.

    ``folders``: {split: official folder}; passed in, so the bare process imports nothing of yolo-ema.
    """
    from PIL import Image

    n = 0
    for split, folder in folders.items():
        source_dir = source / folder
        images_dir, labels_dir = out / "images" / split, out / "labels" / split
        labels_dir.mkdir(parents=True, exist_ok=True)
        if (source_images_dir := source_dir / "images").exists():
            images_dir.mkdir(parents=True, exist_ok=True)
            for img in source_images_dir.glob("*.jpg"):
                os.link(img, images_dir / img.name)  # Ultralytics: img.rename(images_dir / img.name)
        for f in (source_dir / "annotations").glob("*.txt"):
            img_size = Image.open(images_dir / f.with_suffix(".jpg").name).size
            dw, dh = 1.0 / img_size[0], 1.0 / img_size[1]
            lines = []
            with open(f, encoding="utf-8") as file:
                for row in [x.split(",") for x in file.read().strip().splitlines()]:
                    if row[4] != "0":
                        x, y, w, h = map(int, row[:4])
                        cls = int(row[5]) - 1
                        x_center, y_center = (x + w / 2) * dw, (y + h / 2) * dh
                        w_norm, h_norm = w * dw, h * dh
                        lines.append(f"{cls} {x_center:.6f} {y_center:.6f} {w_norm:.6f} {h_norm:.6f}\n")
            (labels_dir / f.name).write_text("".join(lines), encoding="utf-8")
            n += 1
    return n


def split_folders() -> dict[str, str]:
    from yolo_ema.data.catalogue import split_folders

    return split_folders("visdrone")


def commands(source: Path, out: Path, splits) -> dict[str, list[str]]:
    """The two whole-process commands: the bare loop (this script, --bare) and `yolo-ema prepare visdrone`."""
    pairs = [f"{s}={split_folders()[s]}" for s in splits]
    return {
        "bare": [sys.executable, __file__, "--bare", str(source), str(out), *pairs],
        "ours": [sys.executable, "-m", "yolo_ema.cli", "prepare", "visdrone", "--source", str(source), "--out", str(out),
                 "--splits", *splits, "--no-progress"],
    }  # fmt: skip


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU user + system) seconds of one whole-process run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """(median, low, high): the median ratio and a 95% t interval of the geometric mean of paired ratios."""
    from scipy import stats

    logs = [math.log(r) for r in ratios]
    n = len(logs)
    if n < 2:
        return ratios[0], float("nan"), float("nan")
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    mean = statistics.fmean(logs)
    return statistics.median(ratios), math.exp(mean - half), math.exp(mean + half)


def make_source(root: Path, images: int, size: tuple[int, int], objects: tuple[int, int], scenes: int = 16) -> Path:
    """A VisDrone-format train split of ``images`` VisDrone-sized JPEGs (``scenes`` distinct renders, cycled)."""
    import numpy as np

    from yolo_ema.data import synthetic

    train = split_folders()["train"]
    img_dir, ann_dir = root / train / "images", root / train / "annotations"
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    rendered = []
    for s in range(scenes):
        img, text = synthetic.render(np.random.default_rng([99, s]), size[0], size[1], objects)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        rendered.append((buf.getvalue(), text))
    for i in range(images):
        data, text = rendered[i % scenes]
        (img_dir / f"{i:07d}_00000_d_0000001.jpg").write_bytes(data)
        (ann_dir / f"{i:07d}_00000_d_0000001.txt").write_text(text)
    return root


def main() -> int:
    if sys.argv[1:2] == ["--bare"]:  # one bare-loop process: --bare SRC OUT SPLIT=FOLDER...
        bare_loop(Path(sys.argv[2]), Path(sys.argv[3]), dict(a.split("=", 1) for a in sys.argv[4:]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, help="VisDrone2019-DET folders (default: a generated VisDrone-sized set)")
    ap.add_argument("--images", type=int, default=2000, help="generated images (default 2000)")
    ap.add_argument("--size", default="1360x765", help="generated image size WxH (VisDrone's most common)")
    ap.add_argument("--objects", default="40,70", help="objects per generated image, min,max (VisDrone: ~53)")
    ap.add_argument("--splits", nargs="+", default=None, help="splits to convert (default: all present)")
    ap.add_argument("--repeat", type=int, default=5, help="timed pairs (order alternating)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-prepare-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.source:
            source = args.source.resolve()
        else:
            w, h = map(int, args.size.lower().split("x"))
            lo, hi = map(int, args.objects.split(","))
            t = time.perf_counter()
            source = make_source(work / "src", args.images, (w, h), (lo, hi))
            print(f"generated {args.images} images {w}x{h} in {time.perf_counter() - t:.1f} s under {source}")
        folders = split_folders()
        splits = args.splits or [s for s, f in folders.items() if (source / f / "annotations").is_dir()]
        files = [f for s in splits for f in (source / folders[s] / "annotations").glob("*.txt")]
        rows = sum(f.read_bytes().count(b"\n") for f in files)
        for name in ("bare", "ours"):  # warm the page cache
            timed(commands(source, work / "warm" / name, splits)[name])
        load = os.getloadavg()
        times = {"bare": [], "ours": []}
        for i in range(args.repeat):
            for name in ("bare", "ours") if i % 2 == 0 else ("ours", "bare"):
                times[name].append(timed(commands(source, work / f"run{i}" / name, splits)[name]))
        timed(commands(source, work / "again", splits)["ours"])
        rerun, _ = timed(commands(source, work / "again", splits)["ours"])
        n = len(files)
        print(f"splits {' '.join(splits)}: {n} images, {rows} annotation rows ({rows / max(1, n):.0f}/image)")
        for name, label in (("bare", "Ultralytics bare loop"), ("ours", "yolo-ema prepare")):
            wall, cpu = (statistics.median(t[k] for t in times[name]) for k in (0, 1))
            print(f"{label:22s} : {wall:6.2f} s wall ({n / wall:5.0f} images/s), {cpu:6.2f} s CPU, medians")
        for k, what in ((0, "wall"), (1, "CPU")):
            med, lo, hi = ratio_interval([o[k] / b[k] for o, b in zip(times["ours"], times["bare"])])
            print(
                f"time ratio ours/bare, {what:4s}: {med:5.2f} median, 95% interval {lo:.2f}-{hi:.2f} ({args.repeat} pairs)"
            )
        print(f"yolo-ema re-run (no-op): {rerun:6.2f} s")
        print(f"load average before / after: {' '.join(f'{v:.2f}' for v in load)} / "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")  # fmt: skip
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

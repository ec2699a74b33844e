"""The format matrix: shipped configs x export formats, each export loaded and compared with PyTorch.

    python -m yolo_ema.export.matrix --configs yolov8n-se yolov8n-ema yolo11n-c3k2-ema --imgsz 64 --out matrix.md
    python -m yolo_ema.export.matrix --all --imgsz 64 --out matrix.md     # every shipped config at scale n

Each config is built at its YAML scale with untrained weights (class-logit biases raised by 10 for detection, so
NMS has boxes to compare), saved, exported through :func:`yolo_ema.export.exporting.export`, then checked:
detection exports with :func:`yolo_ema.export.parity.check_parity` (raw head and post-NMS boxes), other tasks
with the raw output of :class:`yolo_ema.export.backends.Runner`, CoreML with the program structure and the traced
graph (:mod:`yolo_ema.export.coreml`). A failing export is reported with the converter's own message.
"""

from __future__ import annotations

import argparse
import tempfile
import traceback
from pathlib import Path

from yolo_ema.export.exporting import FORMATS


def _build(cfg: str, folder: Path) -> Path:
    """Untrained ``cfg`` saved as a checkpoint (detection heads' class biases +10)."""
    from ultralytics import YOLO

    m = YOLO(f"{cfg}.yaml")
    head = m.model.model[-1]
    if type(head).__name__ == "Detect":
        for seq in head.cv3:
            seq[-1].bias.data += 10.0
    path = folder / f"{cfg}.pt"
    m.save(str(path))
    return path


def _raw_gap(pt: Path, exported: Path, imgsz: int) -> float:
    """Max |export - PyTorch| of the first output on one random image (non-detection tasks)."""
    import numpy as np
    import torch
    from ultralytics import YOLO

    from yolo_ema.export.backends import Runner
    from yolo_ema.export.coreml import first_tensor

    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    ref = YOLO(str(pt)).model.float().eval().fuse()
    with torch.inference_mode():
        y = ref(torch.from_numpy(x))
    y = first_tensor(y).numpy()
    return float(np.abs(Runner(exported)(x) - y).max())


def check_one(pt: Path, fmt: str, imgsz: int, folder: Path) -> tuple[bool, str]:
    """Export ``pt`` to ``fmt`` and check it; (ok, short note)."""
    from ultralytics import YOLO

    from yolo_ema.export.exporting import default_output, export
    from yolo_ema.export.graph import check_standard

    out = default_output(folder / pt.name, fmt)
    try:
        res = export(pt, fmt, imgsz=imgsz, output=out)
        check_standard(res.path)
    except Exception as e:  # noqa: BLE001 - the converter's message is the result
        return False, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    task = YOLO(str(pt)).task
    if fmt == "coreml":
        from yolo_ema.export.coreml import describe, structure_problems, traced_gap
        from yolo_ema.export.graph import torchscript_ops

        ts = export(pt, "torchscript", imgsz=imgsz, output=folder / f"{pt.stem}-trace.torchscript").path
        gap, shape = traced_gap(ts, YOLO(str(pt)).model.float().eval().fuse(), imgsz)
        problems = structure_problems(describe(res.path), torchscript_ops(ts), shape)
        return (not problems and gap <= 1e-3), "; ".join(problems) or f"converts; traced graph gap {gap:.0e}"
    if task != "detect":
        gap = _raw_gap(pt, res.path, imgsz)
        return gap <= 1e-3, f"raw output gap {gap:.0e}"
    from yolo_ema.export.parity import check_parity, synthetic_images

    rep = check_parity(pt, res.path, synthetic_images(2, size=imgsz), sizes=(imgsz,), batches=(1,))
    if not rep.ok:
        return False, rep.failures[0][:200]
    r = rep.rows[0]
    return True, f"raw {r.raw_box_rel:.0e}/{r.raw_score:.0e}, {r.det.matched} boxes matched"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m yolo_ema.export.matrix", description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--configs", nargs="+", help="config names with scale, e.g. yolov8n-ema")
    which.add_argument("--all", action="store_true", help="every shipped config at scale n")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--out", help="also write the markdown table here")
    args = p.parse_args(argv)
    if args.all:
        from yolo_ema.configs import _scaled, shipped_names

        args.configs = [_scaled(name).removesuffix(".yaml") for name in shipped_names()]
    rows = ["| config | " + " | ".join(args.formats) + " |", "|---" * (len(args.formats) + 1) + "|"]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="yolo-ema-matrix-") as tmp:
        for cfg in args.configs:
            folder = Path(tmp) / cfg
            folder.mkdir()
            try:
                pt = _build(cfg, folder)
            except Exception:  # noqa: BLE001 - report and go on with the next config
                print(traceback.format_exc())
                rows.append(f"| {cfg} | " + " | ".join("❌ does not build" for _ in args.formats) + " |")
                continue
            cells = []
            for fmt in args.formats:
                ok, note = check_one(pt, fmt, args.imgsz, folder)
                failed += not ok
                print(f"{cfg:<22} {fmt:<12} {'OK  ' if ok else 'FAIL'} {note}", flush=True)
                cells.append("✅" if ok else f"❌ {note}")
            rows.append(f"| {cfg} | " + " | ".join(cells) + " |")
    table = "\n".join(rows)
    print(table)
    if args.out:
        from yolo_ema.data import fsio

        fsio.write_text(args.out, table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``yolo-ema export``: export a trained model with Ultralytics, check its operators, and optionally verify parity.

Examples::

    yolo-ema export --model runs/detect/train/weights/best.pt --format onnx --dynamic --imgsz 640 \\
        --check --data data.yaml --sizes 320,640 --batches 1,2
    yolo-ema export --model best.pt --exported best.onnx --check --images some/images/   # check an existing export

Exit status: 0 when the export (and, with ``--check``, parity) succeeded; 1 when parity failed or the graph holds
non-standard operators; 2 for bad arguments or missing inputs. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from yolo_ema.export.exporting import FORMATS

# the packages each format needs beyond the core dependencies (pip install 'yolo-ema[test]' has them all)
NEEDS = {"openvino": ("openvino",), "ncnn": ("ncnn", "pnnx"), "mnn": ("MNN",), "coreml": ("coremltools",)}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="trained weights (.pt), e.g. runs/detect/train/weights/best.pt")
    p.add_argument("--format", default="onnx", choices=FORMATS, help="export format (default onnx)")
    p.add_argument("--imgsz", type=int, default=640, help="export input size (default 640)")
    p.add_argument("--batch", type=int, default=1, help="export batch size (static unless --dynamic)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width axes")
    p.add_argument("--half", action="store_true", help="FP16 (CPU: ONNX and OpenVINO; TorchScript FP16 needs a GPU)")
    p.add_argument(
        "--simplify", action=argparse.BooleanOptionalAction, default=True, help="onnxslim the ONNX graph (default on)"
    )
    p.add_argument("--output", help="where to write the export (default: beside the weights, Ultralytics' name)")
    p.add_argument("--exported", help="skip exporting; check this existing export of --model instead (implies --check)")
    g = p.add_argument_group("parity check")
    g.add_argument("--check", action="store_true", help="compare the export with PyTorch and fail loudly on mismatch")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--data", help="data YAML: images from its val split, and mAP50-95 of both models compared")
    src.add_argument("--images", help="folder (or file) of images to check on (default: generated scenes)")
    g.add_argument("--n-images", type=int, default=4, help="images per check (default 4)")
    g.add_argument("--sizes", type=_int_list, help="image sizes, e.g. 320,640 (default: imgsz/2,imgsz if dynamic)")
    g.add_argument("--batches", type=_int_list, help="batch sizes, e.g. 1,2 (default: 1,2 if dynamic, else --batch)")
    g.add_argument("--conf", type=float, default=0.25, help="confidence threshold for the detection check")
    g.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold for the detection check")
    g.add_argument(
        "--tol",
        type=float,
        help="raw-head tolerance, fraction of full scale (default 2e-4 for FP32, 5e-2 for FP16 artifacts)",
    )
    g.add_argument("--px-tol", type=float, default=1.0, help="max box coordinate difference in pixels (default 1)")
    g.add_argument("--map-tol", type=float, default=0.5, help="max mAP50-95 difference in points with --data")


def default_sizes(imgsz: int, dynamic: bool) -> tuple[int, ...]:
    """Dynamic exports: half the export size (a multiple of 32, at least 32) and the export size; else the latter."""
    if not dynamic:
        return (imgsz,)
    half = max(32, (imgsz // 2) // 32 * 32)
    return tuple(sorted({half, imgsz}))


def _fail(msg: str, code: int) -> int:
    print(f"yolo-ema export: {msg}", file=sys.stderr)
    return code


def _meta_imgsz(meta: dict) -> tuple[int, int]:
    """(H, W) from Ultralytics' ``imgsz`` metadata string, e.g. ``'[64, 64]'``."""
    import ast

    h, w = ast.literal_eval(meta["imgsz"])
    return int(h), int(w)


def _check_coreml(model: Path, exported: Path, imgsz: int, batch: int, tol: float = 1e-3) -> int:
    """CoreML on any OS: the program's structure against the fused model, and the traced graph against eager."""
    import tempfile

    from ultralytics import YOLO

    from yolo_ema.export.coreml import describe, structure_problems, traced_gap
    from yolo_ema.export.exporting import export
    from yolo_ema.export.graph import torchscript_ops

    summary = describe(exported)
    net = YOLO(str(model)).model.float().eval().fuse()
    with tempfile.TemporaryDirectory(prefix="yolo-ema-coreml-trace-") as tmp:
        ts = export(model, "torchscript", imgsz=imgsz, batch=batch, output=Path(tmp) / "traced.torchscript").path
        gap, out_shape = traced_gap(ts, net, imgsz, batch)
        problems = structure_problems(summary, torchscript_ops(ts), out_shape)
    if gap > tol:
        problems.append(f"the traced graph differs from eager PyTorch by {gap:.2e} > {tol:.0e} on other inputs")
    ops = ", ".join(f"{k} {n}" for k, n in summary.ops.most_common() if k != "const")
    print(f"CoreML program: input {summary.inputs} ({summary.input_kind}), outputs {summary.outputs}")
    print(f"  MIL ops: {ops}")
    print(f"  traced graph vs eager PyTorch on 3 other inputs: max |d| {gap:.2e} (tolerance {tol:.0e})")
    print("  prediction needs macOS (coremltools' MLModel.predict); not run")
    if problems:
        return _fail(f"CoreML CHECK FAILED for {exported}:\n  " + "\n  ".join(problems), 1)
    print("COREML CHECK OK")
    return 0


class _Stop(Exception):
    """Ends :func:`run` with ``code`` after printing ``msg`` to stderr."""

    def __init__(self, msg: str, code: int) -> None:
        super().__init__(msg)
        self.code = code


def _check_inputs(args: argparse.Namespace) -> Path:
    """The weights' path, after checking every input the arguments name (exit 2 on a missing one)."""
    model = Path(args.model)
    if not model.is_file():
        raise _Stop(f"error: --model {model} not found", 2)
    missing = [m for m in NEEDS.get(args.format, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise _Stop(f"error: --format {args.format} needs {', '.join(missing)} (pip install 'yolo-ema[test]')", 2)
    if args.data and not Path(args.data).is_file():
        raise _Stop(f"error: --data {args.data} not found", 2)
    if args.images and not Path(args.images).exists():
        raise _Stop(f"error: --images {args.images} not found", 2)
    return model


def _existing(args: argparse.Namespace) -> tuple[Path, bool]:
    """(--exported, dynamic); its format, and for a static export its batch and size, overwrite ``args``."""
    exported = Path(args.exported)
    if not exported.exists():
        raise _Stop(f"error: --exported {exported} not found", 2)
    from yolo_ema.export.backends import Runner, export_kind

    args.format = export_kind(exported)
    shape = (None,) * 4 if args.format == "coreml" else Runner(exported).input_shape  # decides default sizes
    if args.format == "coreml":
        from yolo_ema.export.coreml import user_metadata

        meta = user_metadata(exported)
        shape = (None, 3, None, None) if meta["args"].get("dynamic") else (int(meta["batch"]), 3, *_meta_imgsz(meta))
    dynamic = shape[2] is None
    if not dynamic:
        args.batch, args.imgsz = shape[0] or args.batch, shape[2]
    args.check = True
    return exported, dynamic


def _export(args: argparse.Namespace, model: Path) -> tuple[Path, bool]:
    """Export ``model`` as the arguments say; (path, dynamic)."""
    from yolo_ema.export.exporting import export

    try:
        res = export(
            model, args.format, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic, half=args.half,
            simplify=args.simplify, output=args.output,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as e:
        raise _Stop(f"error: {e}", 2) from None
    shape = "(N, 3, H, W) dynamic" if res.dynamic else f"({res.batch}, 3, {res.imgsz}, {res.imgsz})"
    print(f"exported {model} -> {res.path} [{res.format}, {res.precision}, input {shape}] in {res.seconds:.1f}s")
    if args.half and res.precision != "fp16":
        print(f"note: --half on CPU leaves {res.format} in FP32 (Ultralytics casts TorchScript to FP16 only on CUDA)")
    return res.path, res.dynamic


def _parity(args: argparse.Namespace, model: Path, exported: Path, dynamic: bool) -> int:
    """Raw head, boxes after NMS and (with --data) mAP of ``exported`` against PyTorch; prints the table."""
    from yolo_ema.export.parity import check_parity, load_images

    sizes = args.sizes or default_sizes(args.imgsz, dynamic)
    batches = args.batches or ((1, 2) if dynamic else (args.batch,))
    try:
        images = load_images(data=args.data, images=args.images, n=max(args.n_images, max(batches)))
    except (FileNotFoundError, ValueError) as e:
        return _fail(f"error: {e}", 2)
    report = check_parity(
        model, exported, images, sizes=sizes, batches=batches, conf=args.conf, iou=args.iou, tol=args.tol,
        px_tol=args.px_tol, data=args.data, map_tol=args.map_tol,
    )  # fmt: skip
    print(report.table())
    if not report.ok:
        detail = "\n  ".join(report.failures or [f"nothing checked: {'; '.join(report.skipped)}"])
        return _fail(f"PARITY FAILED for {exported}:\n  {detail}", 1)
    return 0


def run(args: argparse.Namespace) -> int:
    """Export (or take --exported), check its operators, then with --check its parity; the exit status."""
    from yolo_ema.export.graph import NonStandardGraphError, check_standard

    try:
        model = _check_inputs(args)
        exported, dynamic = _existing(args) if args.exported else _export(args, model)
    except _Stop as e:
        return _fail(str(e), e.code)
    try:
        ops = check_standard(exported)
    except NonStandardGraphError as e:
        return _fail(f"FAILED: {e}", 1)
    kinds = sorted({op if isinstance(op, str) else op[-1] for op in ops})
    if kinds:
        print(f"standard operators only: {len(kinds)} kinds, {sum(ops.values())} nodes: {', '.join(kinds)}")
    if not args.check:
        return 0
    if args.format == "coreml":
        return _check_coreml(model, exported, args.imgsz, args.batch)
    return _parity(args, model, exported, dynamic)

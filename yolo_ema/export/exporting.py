"""Export a trained model through Ultralytics' own exporter and move the artifact into place atomically.

``YOLO.export`` writes next to the weights it loaded, in place. We link (or copy) the weights into a private
temporary folder beside the destination, export there, and ``os.replace`` the finished file (or OpenVINO folder)
onto its final name, so a crashed or failed export never leaves a half-written model where a good one was.

Precision: Ultralytics 8.4 maps the deprecated ``half=True`` onto ``quantize=16``. On CPU (8.4.190,
``Exporter.export_onnx``) ONNX is exported in FP32 and converted afterwards with
``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)`` (FP16 weights and compute,
FP32 inputs/outputs); TorchScript FP16 needs a CUDA device (Ultralytics raises "FP16 TorchScript export is only
supported on GPU" on CPU, and :func:`export` lets that ValueError through); OpenVINO stores FP16-compressed
weights (``compress_to_fp16``) and the CPU plugin still computes in its default precision; NCNN (pnnx ``fp16``), MNN
(``--fp16``) and CoreML (ML program ``compute_precision``) follow ``quantize``. :func:`export` reports the precision
written (read from the artifact for ONNX, TorchScript and OpenVINO, from Ultralytics' metadata for the others).

MNN: its converter module (``MNN.tools.mnnconvert``) imports a telemetry logger that runs
``pip install -U aliyun-log-python-sdk`` when that package is missing, and that SDK pins ``protobuf<6``, which breaks
``onnx`` in the same environment. :func:`export` runs the MNN export with ``PIP_NO_INDEX=1`` so that install finds
nothing and the converter runs without its logger.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from yolo_ema.data import fsio

FORMATS = ("onnx", "torchscript", "openvino", "ncnn", "mnn", "coreml")
_DIR_SUFFIX = {"openvino": "_openvino_model", "ncnn": "_ncnn_model"}


@dataclass
class ExportResult:
    """What was exported, where, and in which precision (``fp16``/``fp32`` as written, not as requested)."""

    path: Path
    format: str
    imgsz: int
    batch: int
    dynamic: bool
    half_requested: bool
    precision: str
    seconds: float


def artifact_precision(path: Path, fmt: str) -> str:
    """``fp16`` when the exported weights are stored in half precision, else ``fp32``."""
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        f16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
        return "fp16" if f16 else "fp32"
    if fmt == "torchscript":
        import torch

        module = torch.jit.load(str(path), map_location="cpu")
        return "fp16" if any(p.dtype == torch.float16 for p in module.parameters()) else "fp32"
    if fmt == "openvino":
        xml = next(Path(path).glob("*.xml"))
        return "fp16" if 'element_type="f16"' in xml.read_text(errors="replace") else "fp32"
    return "fp16" if _metadata(Path(path), fmt).get("args", {}).get("quantize") == 16 else "fp32"


def _metadata(path: Path, fmt: str) -> dict:
    """Ultralytics' export metadata: ``metadata.yaml`` (NCNN), the ``bizCode`` JSON (MNN), the user fields (CoreML)."""
    import json

    import yaml

    if fmt == "ncnn":
        return yaml.safe_load((path / "metadata.yaml").read_text()) or {}
    if fmt == "mnn":
        from yolo_ema.export.backends import Runner

        return json.loads(Runner(path).net.get_info().get("bizCode") or "{}")
    if fmt == "coreml":
        from yolo_ema.export.coreml import user_metadata

        return user_metadata(path)
    raise ValueError(f"no metadata reader for format {fmt!r}")


def _move_into_place(src: Path, dst: Path, scratch: Path) -> None:
    """Atomically replace ``dst`` by ``src`` (a file, or a folder swapped in with two renames)."""
    if src.is_dir():
        old = scratch / "previous"
        if dst.exists():
            os.replace(dst, old)
        os.replace(src, dst)
    else:
        fsio.publish(src, dst)  # flushed to disk, then renamed over the old file


def default_output(model: Path, fmt: str) -> Path:
    """Where Ultralytics would put the export of ``model``: ``best.onnx``, ``best.torchscript``, ``best.mnn``,
    ``best.mlpackage/``, ``best_openvino_model/``, ``best_ncnn_model/``."""
    if fmt in _DIR_SUFFIX:
        return model.with_name(f"{model.stem}{_DIR_SUFFIX[fmt]}")
    return model.with_suffix(".mlpackage" if fmt == "coreml" else f".{fmt}")


@contextlib.contextmanager
def _pip_offline(on: bool):
    """``PIP_NO_INDEX=1`` while the block runs (see the module docstring, MNN), restored afterwards."""
    old = os.environ.get("PIP_NO_INDEX")
    if on:
        os.environ["PIP_NO_INDEX"] = "1"
    try:
        yield
    finally:
        if on and old is None:
            os.environ.pop("PIP_NO_INDEX", None)
        elif on:
            os.environ["PIP_NO_INDEX"] = old


def export(
    model: str | Path,
    format: str = "onnx",
    imgsz: int = 640,
    batch: int = 1,
    dynamic: bool = False,
    half: bool = False,
    simplify: bool = True,
    output: str | Path | None = None,
) -> ExportResult:
    """Export ``model`` (a trained ``.pt``) with ``YOLO(model).export`` on CPU and return the artifact.

    Args:
        model: Ultralytics checkpoint (EMA layers load through the yolo-ema plugin).
        format: one of :data:`FORMATS`.
        imgsz, batch: export input shape (the shape of the dummy trace input; fixed unless ``dynamic``).
        dynamic: dynamic batch, height and width axes.
        half: request FP16 (``quantize=16``); see the module docstring for what CPU allows.
        simplify: run onnxslim on ONNX exports (Ultralytics' default is on).
        output: destination path; default beside ``model`` (:func:`default_output`).
    """
    model = Path(model)
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ValueError(f"export format {format!r} is not one of {FORMATS}")
    if not model.is_file():
        raise FileNotFoundError(f"model weights not found: {model}")
    if model.suffix != ".pt":
        raise ValueError(f"{model}: export needs PyTorch weights (.pt), got {model.suffix!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    dst = Path(output) if output else default_output(model, fmt)
    want = default_output(Path("model.pt"), fmt).name.removeprefix("model")
    if not dst.name.endswith(want):
        raise ValueError(f"--output {dst}: a {fmt} export must be named *{want} (how Ultralytics recognises it)")
    dst.parent.mkdir(parents=True, exist_ok=True)

    from ultralytics import YOLO

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.tmp-") as tmp:
        scratch = Path(tmp)
        local = scratch / model.name
        fsio.link_or_copy(str(model), str(local))
        kwargs = dict(format=fmt, imgsz=imgsz, batch=batch, dynamic=dynamic, device="cpu", verbose=False)
        if fmt == "onnx":
            kwargs["simplify"] = simplify
        if half:
            kwargs["quantize"] = 16
        with _pip_offline(fmt == "mnn"):
            produced = Path(YOLO(str(local)).export(**kwargs))
        if not produced.exists():
            raise RuntimeError(f"Ultralytics export of {model} to {fmt} reported {produced}, which does not exist")
        precision = artifact_precision(produced, fmt)
        _move_into_place(produced, dst, scratch)
    return ExportResult(dst, fmt, imgsz, batch, dynamic, half, precision, time.perf_counter() - t0)

"""Run an exported model on a raw input tensor and return its first output (Detect's ``output0``, (B, 4+nc, A)).

Used by the raw-head parity check: the same preprocessed float32 batch goes to PyTorch and to the exported model.
Every runtime is pinned to FP32 arithmetic so the check measures the export, not a runtime's precision shortcut:
OpenVINO ``INFERENCE_PRECISION_HINT=f32`` (CPUs with bf16/AMX lower precision otherwise), NCNN without its FP16/BF16
storage and arithmetic (on by default where the CPU has them), MNN at ``precision=high``. Ultralytics' own backends
(``YOLO(export).predict``) keep their defaults; the post-NMS check goes through them.

:func:`ort_session` is the one onnxruntime session builder of the package (parity here, latency in the benchmark).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KINDS = ("onnx", "torchscript", "openvino", "ncnn", "mnn", "coreml")


def ort_session(path, threads: int | None = None, log_level: int = 3, spinning: bool = True):
    """An onnxruntime CPU ``InferenceSession`` of ``path`` (file path or serialized bytes).

    Args:
        path: ONNX file (``str``/``Path``) or the model's bytes.
        threads: intra-op threads (inter-op 1), or None for onnxruntime's default.
        log_level: onnxruntime log severity (3 = errors only).
        spinning: False makes idle intra-op threads sleep instead of spin-waiting (what timing on a shared CPU needs).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = log_level
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = path if isinstance(path, (bytes, bytearray)) else str(path)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def export_kind(path: str | Path) -> str:
    """The format of an exported artifact from its name: one of :data:`KINDS` (ValueError otherwise)."""
    p = Path(path)
    if p.suffix in (".onnx", ".torchscript", ".mnn"):
        return p.suffix[1:]
    if p.suffix == ".mlpackage":
        return "coreml"
    if p.is_dir() and any(p.glob("*.ncnn.param")):
        return "ncnn"
    if p.is_dir() and any(p.glob("*.xml")):
        return "openvino"
    raise ValueError(f"{p}: not an ONNX, TorchScript, OpenVINO, NCNN, MNN or CoreML export")


def one_file(path: Path, pattern: str) -> Path:
    """The single file matching ``pattern`` in folder ``path`` (FileNotFoundError naming what was found)."""
    found = sorted(path.glob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(f"{path}: expected one {pattern}, found {[f.name for f in found]}")
    return found[0]


def _metadata_shape(path: Path) -> tuple:
    """(B, 3, H, W) of a static export from Ultralytics' ``metadata.yaml``/``bizCode``; None entries when dynamic."""
    import yaml

    meta = path / "metadata.yaml" if path.is_dir() else None
    data = yaml.safe_load(meta.read_text()) if meta is not None and meta.is_file() else {}
    return _shape_from_meta(data or {})


def _shape_from_meta(meta: dict) -> tuple:
    if meta.get("args", {}).get("dynamic") or "imgsz" not in meta:
        return (None, 3, None, None)
    return (meta.get("batch", 1), 3, *meta["imgsz"])


class Runner:
    """Callable ``runner(x: float32 (B, 3, H, W)) -> np.ndarray`` for one exported artifact.

    ``input_shape`` gives the exported input shape with ``None`` for dynamic axes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.kind = export_kind(self.path)
        if self.kind == "coreml":
            raise ValueError(f"{self.path}: CoreML predicts on macOS only; check it with yolo_ema.export.coreml")
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such export")
        getattr(self, f"_init_{self.kind}")()

    def _init_onnx(self):
        self.session = ort_session(self.path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)

    def _init_torchscript(self):
        import json

        import torch

        extra = {"config.txt": ""}
        self.module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra)
        self.module.eval()
        meta = json.loads(extra["config.txt"] or "{}")
        b, s = meta.get("batch", 1), meta.get("imgsz", [None, None])
        dynamic = meta.get("args", {}).get("dynamic", False)
        self.input_shape = (None, 3, None, None) if dynamic else (b, 3, *s)

    def _init_openvino(self):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(one_file(self.path, "*.xml")))
        pshape = model.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in pshape)
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def _init_ncnn(self):
        import ncnn

        param = one_file(self.path, "*.ncnn.param")
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = False
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = False
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(param.with_suffix(".bin"))) != 0:
            raise RuntimeError(f"{self.path}: ncnn cannot load {param.name} (see ncnn's message above)")
        self.ncnn = ncnn
        b, c, h, w = _metadata_shape(self.path)
        self.input_shape = (None, c, h, w)  # one sample per extractor call: any batch

    def _init_mnn(self):
        import json

        from ultralytics.utils.files import import_execstack

        mnn = import_execstack("MNN", "_mnncengine*.so", "_tools*.so")
        rt = mnn.nn.create_runtime_manager(({"precision": "high", "backend": "CPU", "numThread": 1},))
        self.net = mnn.nn.load_module_from_file(str(self.path), [], [], runtime_manager=rt, rearrange=True)
        self.mnn = mnn
        try:
            meta = json.loads(self.net.get_info().get("bizCode", "{}"))
        except json.JSONDecodeError:
            meta = {}
        self.input_shape = _shape_from_meta(meta)

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """True when an input of ``shape`` fits the exported (possibly static) input shape."""
        return all(e is None or e == s for e, s in zip(self.input_shape, shape))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.accepts(x.shape):
            raise ValueError(
                f"{self.path}: input shape {tuple(x.shape)} does not fit exported shape {self.input_shape}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(getattr(self, f"_run_{self.kind}")(x), dtype=np.float32)

    def _run_onnx(self, x):
        return self.session.run(None, {self.input_name: x.astype(self.input_dtype)})[0]

    def _run_torchscript(self, x):
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(x))
        return (out[0] if isinstance(out, (list, tuple)) else out).float().numpy()

    def _run_openvino(self, x):
        return next(iter(self.compiled(x).values()))

    def _run_ncnn(self, x):
        first = sorted(self.net.output_names())[0]
        outs = []
        for sample in x:  # (3, H, W)
            with self.net.create_extractor() as ex:
                ex.input(self.net.input_names()[0], self.ncnn.Mat(sample))
                ret, mat = ex.extract(first)
                if ret != 0:
                    raise RuntimeError(f"{self.path}: ncnn extract of {first!r} failed with code {ret}")
                outs.append(np.array(mat))
        return np.stack(outs)

    def _run_mnn(self, x):
        out = self.net.onForward([self.mnn.expr.const(x.ctypes.data, x.shape)])
        if not out:
            raise RuntimeError(f"{self.path}: MNN returned no output")
        return out[0].read().copy()

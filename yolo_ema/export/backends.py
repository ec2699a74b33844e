"""Run an exported model on a raw input tensor and return its first output (Detect's ``output0``, (B, 4+nc, A)).

Used by the raw-head parity check: the same preprocessed float32 batch goes to PyTorch and to the exported model.
OpenVINO is compiled with ``INFERENCE_PRECISION_HINT=f32`` so CPUs with bf16/AMX do not silently lower precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Runner:
    """Callable ``runner(x: float32 (B, 3, H, W)) -> np.ndarray`` for one exported artifact.

    ``input_shape`` gives the exported input shape with ``None`` for dynamic axes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix == ".onnx":
            self._init_onnx()
        elif self.path.suffix == ".torchscript":
            self._init_torchscript()
        elif self.path.is_dir():
            self._init_openvino()
        else:
            raise ValueError(f"{self.path}: not an ONNX, TorchScript or OpenVINO export")

    def _init_onnx(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.kind = "onnx"

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
        self.kind = "torchscript"

    def _init_openvino(self):
        import openvino as ov

        xmls = sorted(self.path.glob("*.xml"))
        if len(xmls) != 1:
            raise FileNotFoundError(f"{self.path}: expected one OpenVINO .xml, found {[x.name for x in xmls]}")
        core = ov.Core()
        model = core.read_model(str(xmls[0]))
        pshape = model.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in pshape)
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self.kind = "openvino"

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """True when an input of ``shape`` fits the exported (possibly static) input shape."""
        return all(e is None or e == s for e, s in zip(self.input_shape, shape))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.accepts(x.shape):
            raise ValueError(
                f"{self.path}: input shape {tuple(x.shape)} does not fit exported shape {self.input_shape}"
            )
        if self.kind == "onnx":
            out = self.session.run(None, {self.input_name: x.astype(self.input_dtype)})[0]
        elif self.kind == "torchscript":
            import torch

            with torch.inference_mode():
                out = self.module(torch.from_numpy(x))
            out = (out[0] if isinstance(out, (list, tuple)) else out).float().numpy()
        else:
            out = next(iter(self.compiled(x).values()))
        return np.asarray(out, dtype=np.float32)

"""CoreML exports checked on any OS: the converted ML program's structure, and the traced graph it came from.

A ``.mlpackage`` only runs on macOS (coremltools' ``predict``). Elsewhere we check what can be checked:

- :func:`describe`: the ML program (``spec.mlProgram``, function ``main``) as coremltools wrote it: the operation
  counts, the input and output shapes of the program, and the declared model inputs/outputs.
- :func:`structure_problems`: each convolution and linear/matmul of the traced graph must appear as a MIL
  ``conv``/``linear`` (or ``matmul``) op, and the program's input/output shapes must be the PyTorch ones.
- :func:`traced_gap`: Ultralytics converts ``torch.jit.trace(model, im, strict=False)``; the graph that trace records
  (Ultralytics' TorchScript export) is loaded back as a PyTorch module and run on *other* inputs than the one traced,
  against the eager model. A shape or branch baked into the trace shows up there.
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CoreMLSummary:
    """The converted program: op counts, program input/output shapes, declared input kind."""

    path: Path
    ops: Counter = field(default_factory=Counter)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_kind: str = ""
    classifier: str = ""  # the predicted-label output of a classifier program (Ultralytics' classify task), else ""


def _load(path: str | Path):
    import coremltools as ct

    return ct.models.MLModel(str(path), skip_model_load=True)  # no CoreML framework needed


def user_metadata(path: str | Path) -> dict:
    """Ultralytics' metadata stored in the package (``args`` parsed into a dict)."""
    meta = dict(_load(path).user_defined_metadata)
    if "args" in meta:
        meta["args"] = ast.literal_eval(meta["args"])
    return meta


def _dims(tensor_type) -> tuple[int, ...]:
    return tuple(d.constant.size if d.HasField("constant") else -1 for d in tensor_type.dimensions)


def describe(path: str | Path) -> CoreMLSummary:
    """Op counts and shapes of the ``main`` function of a converted ML program (-1 for a flexible dimension)."""
    spec = _load(path).get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{path}: not an ML program (got {spec.WhichOneof('Type')})")
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    out = CoreMLSummary(Path(path), Counter(op.type for op in block.operations))
    out.inputs = {i.name: _dims(i.type.tensorType) for i in fn.inputs}
    produced = {o.name: _dims(o.type.tensorType) for op in block.operations for o in op.outputs}
    out.outputs = {name: produced[name] for name in block.outputs}
    out.input_kind = spec.description.input[0].type.WhichOneof("Type")
    out.classifier = spec.description.predictedFeatureName
    return out


TRACED_CONV = ("aten::_convolution", "aten::conv1d", "aten::conv2d")
TRACED_LINEAR = ("aten::linear", "aten::matmul", "aten::addmm")


def structure_problems(summary: CoreMLSummary, traced_ops: Counter, output_shape: tuple[int, ...]) -> list[str]:
    """What in ``summary`` disagrees with the traced graph it was converted from.

    Args:
        summary: :func:`describe` of the program.
        traced_ops: node kinds of the traced graph (:func:`yolo_ema.export.graph.torchscript_ops`).
        output_shape: PyTorch's first output shape for the traced input.
    """
    problems = []
    convs = sum(traced_ops.get(k, 0) for k in TRACED_CONV)
    linears = sum(traced_ops.get(k, 0) for k in TRACED_LINEAR)
    mil_convs = summary.ops["conv"] + summary.ops["conv_transpose"]  # aten::_convolution covers both
    if mil_convs != convs:
        problems.append(f"{mil_convs} MIL conv ops for {convs} convolutions in the traced graph")
    if summary.ops["linear"] + summary.ops["matmul"] != linears:
        problems.append(
            f"{summary.ops['linear']} MIL linear + {summary.ops['matmul']} matmul for {linears} in the traced graph"
        )
    shape = (output_shape[0], 3) if len(summary.inputs) == 1 else None
    if shape is None or next(iter(summary.inputs.values()))[:2] != shape:
        problems.append(f"program inputs {summary.inputs}: expected one ({shape[0] if shape else '?'}, 3, H, W)")
    if summary.classifier:  # label + probabilities dictionary outputs: no tensor shape to compare
        if summary.classifier not in summary.outputs:
            problems.append(f"classifier label output {summary.classifier!r} missing from {list(summary.outputs)}")
    elif list(summary.outputs.values())[:1] != [tuple(output_shape)]:
        problems.append(f"program outputs {summary.outputs} do not start with PyTorch's {tuple(output_shape)}")
    return problems


def first_tensor(y):
    """The first tensor of a model output (nested tuples/lists of heads in eval mode: detections first)."""
    while isinstance(y, (list, tuple)):
        y = y[0]
    return y


def traced_gap(
    torchscript: str | Path, model, imgsz: int, batch: int = 1, seed: int = 0, n: int = 3
) -> tuple[float, tuple[int, ...]]:
    """Max |traced - eager| of the first output over ``n`` random inputs, none of them the traced one.

    ``torchscript``: Ultralytics' TorchScript export of the same weights at the same size, i.e. the graph that
    ``torch.jit.trace(model, im, strict=False)`` records from the exporter's prepared model, which is what its CoreML
    exporter hands to coremltools (the CoreML path differs only in Ultralytics' own ``Attention`` switch).
    Returns the gap and PyTorch's first output shape.
    """
    import torch

    ts = torch.jit.load(str(torchscript), map_location="cpu").eval()
    model = model.float().eval()
    g = torch.Generator().manual_seed(seed)
    gap = 0.0
    with torch.inference_mode():
        for _ in range(n):
            x = torch.rand((batch, 3, imgsz, imgsz), generator=g)
            a, b = model(x), ts(x)
            a, b = first_tensor(a), first_tensor(b)
            gap = max(gap, float((a - b).abs().max()))
    return gap, tuple(a.shape)

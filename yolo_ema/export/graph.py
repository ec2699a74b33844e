"""Operator inventory of exported graphs: standard operators only, so they run on any runtime.

- ONNX: every node must be in the default ``ai.onnx`` domain (empty domain string or ``ai.onnx``) and be a schema
  that ``onnx.defs`` knows at the model's opset; ``ATen``/``PythonOp`` nodes or any custom domain are refused.
- TorchScript: every node kind must be in the ``aten::`` or ``prim::`` namespace and not ``prim::PythonOp``
  (a Python fallback that cannot run outside the interpreter).
- OpenVINO: every op must come from a released ``opsetN`` (no ``PtFrameworkNode``/``FrameworkNode`` extension).
- NCNN: every layer of ``*.ncnn.param`` must be an ncnn layer type; pnnx writes operators it could not lower as
  their PyTorch names (``F.linear``, ``Tensor.reshape``, ``torch.xxx``, ``pnnx.xxx``), which ncnn refuses to load
  (``layer F.linear not exists or registered``).
- MNN is converted from the checked ONNX graph; CoreML programs are checked by :mod:`yolo_ema.export.coreml`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

STANDARD_ONNX_DOMAINS = ("", "ai.onnx")
FORBIDDEN_ONNX_OPS = ("ATen", "PythonOp")
TORCHSCRIPT_NAMESPACES = ("aten::", "prim::")


class NonStandardGraphError(RuntimeError):
    """The exported graph holds an operator outside the standard set (named in the message)."""


def onnx_ops(path: str | Path) -> Counter:
    """Count ``(domain, op_type)`` over all nodes of an ONNX model, subgraphs included (domain '' -> 'ai.onnx')."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: Counter = Counter()

    def walk(graph):
        for node in graph.node:
            counts[(node.domain or "ai.onnx", node.op_type)] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return counts


def check_onnx_standard(path: str | Path) -> Counter:
    """Return :func:`onnx_ops` of ``path``; raise NonStandardGraphError naming any non-standard node."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in STANDARD_ONNX_DOMAINS), default=0)
    counts = onnx_ops(path)
    bad = []
    for (domain, op), n in sorted(counts.items()):
        if domain not in STANDARD_ONNX_DOMAINS or op in FORBIDDEN_ONNX_OPS:
            bad.append(f"{domain}::{op} x{n}")
        elif not onnx.defs.has(op, ""):
            bad.append(f"{op} x{n} (no ai.onnx schema)")
        else:
            try:
                onnx.defs.get_schema(op, opset, "")
            except Exception:  # noqa: BLE001 - onnx raises SchemaError, not exported everywhere
                bad.append(f"{op} x{n} (not in ai.onnx opset {opset})")
    if bad:
        raise NonStandardGraphError(f"{path}: non-standard ONNX operators: {', '.join(bad)}")
    return counts


def torchscript_ops(path: str | Path) -> Counter:
    """Count node kinds of a saved TorchScript module's graph (inlined, so submodule calls are expanded)."""
    import torch

    module = torch.jit.load(str(path), map_location="cpu")
    return Counter(node.kind() for node in module.inlined_graph.nodes())


def check_torchscript_standard(path: str | Path) -> Counter:
    """Return :func:`torchscript_ops`; raise NonStandardGraphError on ``prim::PythonOp`` or a foreign namespace."""
    counts = torchscript_ops(path)
    bad = [
        f"{k} x{n}"
        for k, n in sorted(counts.items())
        if k == "prim::PythonOp" or not k.startswith(TORCHSCRIPT_NAMESPACES)
    ]
    if bad:
        raise NonStandardGraphError(f"{path}: non-standard TorchScript nodes: {', '.join(bad)}")
    return counts


def openvino_ops(xml: str | Path) -> Counter:
    """Count ``(opset, type)`` over the ops of an OpenVINO IR model."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    return Counter((op.get_type_info().version_id, op.get_type_name()) for op in model.get_ops())


def check_openvino_standard(xml: str | Path) -> Counter:
    """Return :func:`openvino_ops`; raise NonStandardGraphError on an op outside the released ``opsetN`` sets."""
    counts = openvino_ops(xml)
    bad = [f"{v}::{t} x{n}" for (v, t), n in sorted(counts.items()) if not str(v).startswith("opset")]
    if bad:
        raise NonStandardGraphError(f"{xml}: non-standard OpenVINO operators: {', '.join(bad)}")
    return counts


def ncnn_layers(param: str | Path) -> Counter:
    """Count layer types of an ncnn ``.param`` file (magic line, counts line, then one layer per line)."""
    lines = Path(param).read_text().splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise ValueError(f"{param}: not an ncnn param file (magic 7767517 missing)")
    return Counter(line.split()[0] for line in lines[2:] if line.strip())


def check_ncnn_standard(param: str | Path) -> Counter:
    """Return :func:`ncnn_layers`; raise NonStandardGraphError on a layer pnnx left as a PyTorch operator."""
    counts = ncnn_layers(param)
    bad = [f"{t} x{n}" for t, n in sorted(counts.items()) if "." in t]
    if bad:
        raise NonStandardGraphError(f"{param}: operators ncnn does not implement (left by pnnx): {', '.join(bad)}")
    return counts


def check_standard(path: str | Path) -> Counter:
    """Dispatch on the exported artifact: ``.onnx``, ``.torchscript``, an OpenVINO or NCNN model folder.

    MNN and CoreML artifacts have no operator check here (see the module docstring): an empty Counter.
    """
    from yolo_ema.export.backends import one_file

    p = Path(path)
    if p.suffix == ".onnx":
        return check_onnx_standard(p)
    if p.suffix == ".torchscript":
        return check_torchscript_standard(p)
    if p.suffix in (".mnn", ".mlpackage"):
        return Counter()
    if p.is_dir() and any(p.glob("*.ncnn.param")):
        return check_ncnn_standard(one_file(p, "*.ncnn.param"))
    if p.is_dir():
        return check_openvino_standard(one_file(p, "*.xml"))
    raise ValueError(f"{p}: not an ONNX, TorchScript, OpenVINO, NCNN, MNN or CoreML export")

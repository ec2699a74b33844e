"""Plugin layers in Ultralytics' YAML parser: builders in its namespace, rows checked before it indexes them.

``ultralytics.nn.tasks.parse_model`` resolves a YAML module name with ``globals()[name]`` and, for a name outside its
known sets, calls the class with the YAML args as written (``c2 = ch[f]`` branch), so a layer never learns its input
channels. Each layer of :data:`yolo_ema.nn.registry.LAYERS` goes into that namespace as a builder class whose
construction reads ``ch[f]`` from the running ``parse_model`` frame; a YAML row then gives only hyperparameters:
``[-1, 1, EMA, [8]]``, ``[-1, 1, CBAM, [7]]``, ``[-1, 1, SimAM, []]``.
"""

from __future__ import annotations

import logging
import os
import sys

from torch import nn

from yolo_ema.nn.registry import LAYERS
from yolo_ema.seam.compat import STATE, IncompatibleUltralyticsError, mark, unwrapped
from yolo_ema.seam.inblock import parse_with_blocks

LOGGER = logging.getLogger("yolo_ema")


def _parser_frame():
    """The frame of the ``parse_model`` call that is building a row right now, or None."""
    tasks = sys.modules.get("ultralytics.nn.tasks")
    code = getattr(unwrapped(getattr(tasks, "parse_model", None)), "__code__", None)
    frame = sys._getframe(1)
    while frame is not None and code is not None:
        if frame.f_code is code:
            return frame
        frame = frame.f_back
    return None


def build_layer(name: str, c1: int, args: tuple, index) -> nn.Module:
    """Build plugin layer ``name`` for YAML row ``index`` reading ``c1`` channels, with the row's ``args``."""
    layer = LAYERS[name]
    args = tuple(args)
    if name == "EMA" and len(args) == 2:  # legacy fork style [channels, factor]: channels come from the graph
        if args[0] != c1:
            LOGGER.warning(
                f"yolo-ema: EMA layer {index}: YAML channels {args[0]} ignored, the layer reads {c1} channels"
            )
        args = args[1:]
    if len(args) > len(layer.hyper):
        raise ValueError(f"{name} layer {index}: expected args {list(layer.hyper)} (or fewer), got {list(args)}")
    what = ", ".join([f"input channels {c1}"] + [f"{k} {v!r}" for k, v in zip(layer.hyper, args)])
    try:
        return layer.cls(c1, *args)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} layer {index} ({what}): {e}") from None


def _builder(name: str) -> type:
    """The class put in the parser namespace for ``name``: constructing it inside a parse builds the real layer."""

    def __new__(cls, *args):
        problem = STATE["problem"]
        if problem:
            raise IncompatibleUltralyticsError(f"yolo-ema cannot build {name} rows: {problem}")
        frame = _parser_frame()
        if frame is None:  # called outside a YAML parse: behave like the layer itself
            return LAYERS[name].cls(*args)
        loc = frame.f_locals
        return build_layer(name, loc["ch"][loc["f"]], args, loc["i"])

    doc = f"Stands for ``{name}`` in Ultralytics' YAML namespace; constructing it returns a real layer (channels read from the parser)."
    return type(name, (nn.Module,), {"__new__": __new__, "__doc__": doc, "__module__": "yolo_ema"})  # yolo_ema.<name>


BUILDERS = {name: _builder(name) for name in LAYERS}


def disabled(name: str) -> type:
    """Placeholder for ``name`` while auto-registration is switched off: building a row says why it cannot."""

    def __new__(cls, *args):
        frame = _parser_frame()
        row = f"{name} layer {frame.f_locals.get('i')} (args {list(args)})" if frame is not None else name
        env = STATE["disabled_env"]
        raise RuntimeError(
            f"{row}: yolo-ema is installed but its automatic registration is switched off ({env}="
            f"{os.environ.get(env)!r}). Unset {env} or call yolo_ema.register() before building the model."
        )

    return type(name, (nn.Module,), {"__new__": __new__, "__module__": "yolo_ema.disabled"})


def check_plugin_from(name: str, f, i: int) -> None:
    """Raise ValueError unless ``from`` value ``f`` of plugin row ``i`` names one earlier layer."""
    if isinstance(f, bool) or not isinstance(f, int):
        raise ValueError(f"{name} layer {i}: 'from' must be one layer index, got {f!r} ({name} reads a single tensor)")
    if not (-i <= f < i or (i == 0 and f == -1)):
        raise ValueError(f"{name} layer {i}: 'from' index {f} does not name an earlier layer (0..{i - 1} or -1..-{i})")


def checked_parse_model(parse_model):
    """Wrap ``parse_model``: plugin rows with a bad ``from`` fail naming the row; in-block rows are upgraded."""

    def checked(d, ch, verbose=True):
        for i, row in enumerate(list(d.get("backbone") or []) + list(d.get("head") or [])):
            if isinstance(row, (list, tuple)) and len(row) >= 3 and row[2] in LAYERS:
                check_plugin_from(row[2], row[0], i)
        return parse_with_blocks(parse_model, d, ch, verbose)

    return mark(checked, parse_model)

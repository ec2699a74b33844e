"""The one table of plugin layers: what a YAML row can name, with its class, hyperparameters, paper and arguments.

Everything that knows the layers reads this table: Ultralytics' parser namespace, safe loading, pretrained transfer
and the NaN guard (:mod:`yolo_ema.seam`), the config generator (:mod:`yolo_ema.configs`), the in-block variants and
the public exports (``yolo_ema.nn``, ``yolo_ema``). Adding a layer is one file in ``yolo_ema/nn/`` (a module whose
class takes the input channels first, ``cls(channels, *hyper)``, and keeps them) and one entry in :data:`LAYERS`.

Classes are named by ``"module:Class"`` and imported on first use, so reading the table imports neither torch nor
Ultralytics (the in-block variants subclass Ultralytics blocks and live in the seam).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache


@cache
def _resolve(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Layer:
    """A layer a YAML row names after the block it follows: ``cls(channels, *hyper)``, channels kept.

    Args:
        path: ``"module:Class"`` of the layer.
        hyper: names of the YAML row's args, in order (constructor arguments after the channels).
        paper: the layer's title and citation, as config headers print it.
        args: YAML args at each placement of the shipped configs (``"neck"``, ``"paper"``, ...).
        note: what a row's args mean, for config headers (``{args}``: the args given); None for the plain wording.
    """

    path: str
    hyper: tuple[str, ...]
    paper: str
    args: dict
    note: str | None = None

    @property
    def cls(self) -> type:
        return _resolve(self.path)

    @property
    def defaults(self) -> dict:
        """Hyperparameter -> default, read from the constructor (the one place a default is written)."""
        params = inspect.signature(self.cls).parameters
        return {k: params[k].default for k in self.hyper}


@dataclass(frozen=True)
class InBlock(Layer):
    """A variant of an Ultralytics block with a plugin layer inside each bottleneck (``C2f_EMA``).

    YAML rows give the parent's own args (``parent_args`` of them), then optionally ``hyper`` (the layer's factor).

    Args:
        parent: the Ultralytics block it extends and is parsed as (``"C2f"``), named by string: nn/ stays torch-only.
        parent_args: how many YAML args the parent takes.
        layer: the plugin layer inside (a :data:`LAYERS` name).
    """

    parent: str = ""
    parent_args: int = 0
    layer: str = "EMA"


EMA_PAPER = "Ouyang et al., ICASSP 2023, arXiv:2305.13563"

LAYERS = {  # YAML name -> layer
    "EMA": Layer(
        "yolo_ema.nn.ema:EMA",
        ("factor",),
        f"EMA attention ({EMA_PAPER})",
        {"neck": (8,), "paper": (32,), "head-but-p5": (32,), "head-input": (32,)},
        "EMA rows give only the factor (groups) {args}",
    ),
    "SE": Layer(
        "yolo_ema.nn.se:SE",
        ("reduction",),
        "SE squeeze-and-excitation (Hu et al., CVPR 2018, arXiv:1709.01507)",
        {"neck": (), "paper": ()},
    ),
    "CBAM": Layer(
        "yolo_ema.nn.cbam:CBAM",
        ("kernel_size", "reduction"),
        "CBAM (Woo et al., ECCV 2018, arXiv:1807.06521)",
        {"neck": (), "paper": ()},
    ),
    "CA": Layer(
        "yolo_ema.nn.ca:CA",
        ("reduction",),
        "CA coordinate attention (Hou et al., CVPR 2021, arXiv:2103.02907)",
        {"neck": (), "paper": ()},
    ),
    "ECA": Layer(
        "yolo_ema.nn.eca:ECA",
        ("k_size", "gamma", "b"),
        "ECA (Wang et al., CVPR 2020, arXiv:1910.03151)",
        {"neck": (), "paper": ()},
    ),
    "SA": Layer(
        "yolo_ema.nn.sa:SA",
        ("groups",),
        "SA shuffle attention (Zhang and Yang, ICASSP 2021, arXiv:2102.00240)",
        {"neck": (16,), "paper": (32,)},
        "SA rows give only the groups G {args} (2G must divide the channels at every scale; the EMA authors' "
        "comparison code uses 32, the SA paper 64)",
    ),
    "SimAM": Layer(
        "yolo_ema.nn.simam:SimAM",
        ("e_lambda",),
        "SimAM (Yang et al., ICML 2021, PMLR 139:11863)",
        {"neck": (), "paper": ()},
    ),
}

INBLOCK = {  # YAML name -> in-block variant (classes in yolo_ema.seam.inblock, imported as yolo_ema.blocks)
    "C2f_EMA": InBlock(
        "yolo_ema.seam.inblock:C2f_EMA",
        ("factor",),
        f"C2f_EMA (C2f with EMA attention, {EMA_PAPER}, on each bottleneck's residual branch before the addition)",
        {"in-block": ()},
        parent="C2f",
        parent_args=4,  # C2f [c2, shortcut, g, e]
    ),
    "C3k2_EMA": InBlock(
        "yolo_ema.seam.inblock:C3k2_EMA",
        ("factor",),
        "C3k2_EMA (C3k2 with EMA attention, "
        f"{EMA_PAPER}, on each bottleneck's residual branch before the addition, also inside C3k)",
        {"in-block": ()},
        parent="C3k2",
        parent_args=6,  # C3k2 [c2, c3k, e, attn, g, shortcut]
    ),
}


def layer_classes() -> tuple:
    """The classes of :data:`LAYERS` (imports them)."""
    return tuple(layer.cls for layer in LAYERS.values())

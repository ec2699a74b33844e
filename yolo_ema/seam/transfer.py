"""Pretrained weights across inserted plugin rows.

``BaseModel.load`` matches tensors by ``model.{i}.`` names, so an inserted row shifts every later index. We align the
source layers with the destination (plugin rows skipped) and pad the source with parameter-free placeholders where
plugin layers were inserted, then let Ultralytics transfer.
"""

from __future__ import annotations

import logging
from copy import deepcopy

from torch import nn
from ultralytics.utils import LOGGER as ULOGGER

from yolo_ema.nn.registry import LAYERS, layer_classes
from yolo_ema.seam.compat import mark

LOGGER = logging.getLogger("yolo_ema")


def is_plugin(m: nn.Module) -> bool:
    """True for an inserted plugin layer (a registry layer class, or a row Ultralytics typed ``yolo_ema.<name>``)."""
    if isinstance(m, layer_classes()):
        return True
    t = getattr(m, "type", None)  # Ultralytics' row type string; torch's Module.type() method where absent
    return isinstance(t, str) and t.startswith("yolo_ema.") and t.rsplit(".", 1)[-1] in LAYERS


def _same_kind(d: nn.Module, s: nn.Module) -> bool:
    """Layers that hold the same tensors: same class name, or ``d`` a yolo-ema subclass of ``s``'s (C2f_EMA)."""
    return type(d).__name__ == type(s).__name__ or isinstance(d, type(s))


def align_layers(dst_layers, src_layers) -> list | None:
    """Map source layers onto destination positions, leaving plugin rows the source lacks unmatched.

    Returns a list as long as ``dst_layers`` whose entries are source indices or None (an inserted plugin layer), or
    None when the two networks do not align layer for layer once plugin rows are set aside.
    """
    mapping, j = [], 0
    for d in dst_layers:
        if j < len(src_layers) and _same_kind(d, src_layers[j]):
            mapping.append(j)
            j += 1
        elif is_plugin(d):
            mapping.append(None)
        else:
            return None
    return mapping if j == len(src_layers) else None


class _Placeholder(nn.Identity):
    """Parameter-free stand-in that keeps source layer indices aligned with the destination's."""


def _aligned_source(src, dst_layers, verbose: bool):
    """``src`` with placeholder layers where ``dst_layers`` has inserted plugin rows; None when they do not align."""
    src_layers = src.model
    mapping = align_layers(list(dst_layers), list(src_layers))
    if mapping is None:
        LOGGER.warning("yolo-ema: source and plugin model layers do not align; transferring by index only")
        return None
    shifted = deepcopy(src)
    shifted.model = nn.Sequential(*(_Placeholder() if k is None else src_layers[k] for k in mapping))
    shifted.model = deepcopy(shifted.model)
    inserted = [i for i, k in enumerate(mapping) if k is None]
    names = sorted({type(dst_layers[i]).__name__ for i in inserted})
    moved = sum(1 for i, k in enumerate(mapping) if k is not None and k != i)
    if verbose:
        ULOGGER.info(
            f"yolo-ema: aligned {len(src_layers)} pretrained layers across {len(inserted)} inserted "
            f"{'/'.join(names)} layers {inserted} ({moved} layers re-indexed); {'/'.join(names)} layers start fresh"
        )
    return shifted


def load_with_alignment(original_load):
    """Wrap ``BaseModel.load``: a source without this model's plugin rows is aligned to it before the transfer."""

    def load(self, weights, verbose=True):
        src = (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights
        dst_layers = getattr(self, "model", None)
        if (
            isinstance(dst_layers, nn.Sequential)
            and isinstance(getattr(src, "model", None), nn.Sequential)
            and len(dst_layers) != len(src.model)
            and any(is_plugin(m) for m in dst_layers)
        ):
            shifted = _aligned_source(src, dst_layers, verbose)
            weights = weights if shifted is None else shifted
        return original_load(self, weights, verbose=verbose)

    return mark(load, original_load)

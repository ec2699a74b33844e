"""NaN guard: a first-epoch NaN/Inf in plugin-layer weights stops the run instead of being saved as zeros."""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.utils.torch_utils import unwrap_model

from yolo_ema.nn.registry import layer_classes


class NonFinitePluginLayerError(RuntimeError):
    """Plugin-layer (EMA, CBAM, ...) weights became NaN/Inf where Ultralytics can neither recover nor save them."""


def nonfinite_plugin_tensors(model: nn.Module) -> list[str]:
    """Names (``model.{i}.{param}``) of plugin-layer tensors holding NaN/Inf in ``model``."""
    classes = layer_classes()
    bad = []
    for m in getattr(model, "model", []):
        if isinstance(m, classes):
            bad += [f"model.{m.i}.{k}" for k, v in m.state_dict().items() if not torch.isfinite(v).all()]
    return bad


def guard_nonfinite(trainer) -> None:
    """``on_train_epoch_end`` callback: fail loudly on NaN/Inf plugin-layer weights in an epoch Ultralytics cannot recover.

    Ultralytics 8.4 recovers a NaN epoch by reloading last.pt, except in the first epoch of a run (no last.pt yet):
    there it only warns, and ``save_model`` turns the NaN weights into zeros, a finite but destroyed checkpoint. In
    that case (and where the trainer's EMA copy could not be resynced from the live model) we stop the run instead.
    """
    if getattr(trainer, "epoch", None) != getattr(trainer, "start_epoch", 0):
        return  # later epochs: Ultralytics' own recovery from last.pt applies
    live = nonfinite_plugin_tensors(unwrap_model(trainer.model))
    ema = getattr(getattr(trainer, "ema", None), "ema", None)
    averaged = nonfinite_plugin_tensors(ema) if ema is not None else []
    lost = sorted(set(averaged) & set(live)) if ema is not None else live
    if lost:
        raise NonFinitePluginLayerError(
            f"yolo-ema: plugin layer weights became NaN/Inf in the first epoch ({', '.join(lost)}); Ultralytics cannot "
            "recover from last.pt here and would save them as zeros. Lower lr0, check the data, or disable amp."
        )

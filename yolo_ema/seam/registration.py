"""Registration: make Ultralytics know the plugin layers, their checkpoints and the shipped configs.

What :func:`register` installs, each after the checks of :mod:`yolo_ema.seam.compat`:

- the parser builders (:mod:`yolo_ema.seam.parser`) in ``ultralytics.nn.tasks`` and its row-checking ``parse_model``;
- ``torch.serialization.add_safe_globals`` for the plugin classes and the modules defined beside them (safe loading
  under ``ULTRALYTICS_SAFE_LOAD=1`` allows only classes from torch and Ultralytics otherwise);
- pretrained transfer across inserted rows (:mod:`yolo_ema.seam.transfer`) in ``BaseModel.load``;
- configs by bare name: ``check_yaml`` / ``check_file`` look a bare model name up in Ultralytics' own folders only;
  :func:`yolo_ema.configs.with_shipped_configs` finds the shipped ``yolo_ema/cfg`` files too;
- the NaN guard (:mod:`yolo_ema.seam.nanguard`) as a default ``on_train_epoch_end`` callback.
"""

from __future__ import annotations

import importlib
import logging
import threading

import torch
from torch import nn
from ultralytics.nn import tasks
from ultralytics.utils import checks
from ultralytics.utils.callbacks import base as callbacks

from yolo_ema.configs import with_shipped_configs
from yolo_ema.nn.registry import INBLOCK, LAYERS, layer_classes
from yolo_ema.seam.compat import STATE, check_lookup, check_parser, is_ours, mark, warn_if_unverified
from yolo_ema.seam.nanguard import guard_nonfinite
from yolo_ema.seam.parser import BUILDERS, checked_parse_model, disabled
from yolo_ema.seam.transfer import load_with_alignment

LOGGER = logging.getLogger("yolo_ema")
_lock = threading.Lock()


def safe_classes() -> list:
    """Every class a checkpoint of plugin layers references: the registry's classes and the modules defined beside
    them (CBAM's gates, the in-block bottleneck)."""
    out = []
    for layer in [*LAYERS.values(), *INBLOCK.values()]:
        cls = layer.cls
        module = importlib.import_module(layer.path.partition(":")[0])  # where it is defined
        out += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == cls.__module__
        ]
    return list(dict.fromkeys(out))


def _put_in_namespace(name: str, obj) -> None:
    """Set ``tasks.<name>`` unless Ultralytics itself defines that name (then its own layer stays, with a warning)."""
    current = getattr(tasks, name, None)
    if current is None or getattr(current, "__module__", "").startswith("yolo_ema"):
        setattr(tasks, name, obj)
    else:
        LOGGER.warning(f"yolo-ema: ultralytics.nn.tasks already defines {name}; its own layer is kept for YAML rows")


def register() -> bool:
    """Make Ultralytics know the plugin layers and configs. Idempotent and thread-safe.

    Returns True when plugin rows can be built; False (with the reason logged) when the installed Ultralytics parser
    has changed shape, in which case a plugin row raises :class:`~yolo_ema.seam.compat.IncompatibleUltralyticsError`
    naming the problem.
    """
    with _lock:
        if STATE["registered"]:
            return STATE["problem"] is None
        problem = check_parser(tasks)
        if problem is None:
            warn_if_unverified(LOGGER)
        STATE["problem"] = problem
        if not is_ours(tasks.parse_model):
            tasks.parse_model = checked_parse_model(tasks.parse_model)
        for name, builder in BUILDERS.items():  # parse_model resolves names via the module's globals()
            _put_in_namespace(name, builder)
        if hasattr(torch.serialization, "add_safe_globals"):
            torch.serialization.add_safe_globals(safe_classes())
        if not is_ours(tasks.BaseModel.load):
            tasks.BaseModel.load = load_with_alignment(tasks.BaseModel.load)
        lookup = check_lookup(checks)
        STATE["lookup_problem"] = lookup
        if lookup is None and not is_ours(checks.check_file):
            checks.check_file = mark(with_shipped_configs(checks.check_file), checks.check_file)
        elif lookup:
            LOGGER.warning(f"yolo-ema: shipped configs are not found by bare name (use their path): {lookup}")
        hooks = callbacks.default_callbacks.setdefault("on_train_epoch_end", [])
        if guard_nonfinite not in hooks:
            hooks.append(guard_nonfinite)
        STATE["registered"] = True
        if problem:
            LOGGER.warning(f"yolo-ema: plugin rows will fail: {problem}")
        return problem is None


def install_disabled_notice(env: str) -> None:
    """Put a :func:`~yolo_ema.seam.parser.disabled` placeholder for each plugin name (switch ``env``) in the parser."""
    STATE["disabled_env"] = env
    for name in LAYERS:
        if not hasattr(tasks, name):
            setattr(tasks, name, disabled(name))


def registration_status() -> dict:
    """Where the plugin is registered (for ``yolo-ema info``)."""
    allowed = set(getattr(torch.serialization, "get_safe_globals", lambda: [])())
    hooks = callbacks.default_callbacks.get("on_train_epoch_end", [])
    return {
        "registered": STATE["registered"],
        "problem": STATE["problem"],
        "layers": [n for n, b in BUILDERS.items() if getattr(tasks, n, None) is b],
        "parser_namespace": "ultralytics.nn.tasks" if getattr(tasks, "EMA", None) is BUILDERS["EMA"] else None,
        "safe_globals": all(c in allowed for c in layer_classes()),
        "transfer_patch": is_ours(tasks.BaseModel.load),
        "config_lookup": is_ours(checks.check_file),
        "lookup_problem": STATE["lookup_problem"],
        "nan_guard": guard_nonfinite in hooks,
    }

"""The one place where yolo-ema touches Ultralytics internals.

What it does, each guarded by a check of the installed Ultralytics:

- **Plugin layers in the parser**: ``ultralytics.nn.tasks.parse_model`` resolves a YAML module name with
  ``globals()[name]`` and, for a name outside its known sets, calls the class with the YAML args as written
  (``c2 = ch[f]`` branch), so a layer never learns its input channels. Each layer of :data:`PLUGIN_LAYERS` (EMA and
  the attentions it is compared with) goes into that namespace as a builder class whose construction reads ``ch[f]``
  from the running ``parse_model`` frame; a YAML row then gives only hyperparameters: ``[-1, 1, EMA, [8]]``,
  ``[-1, 1, CBAM, [7]]``, ``[-1, 1, SimAM, []]``.
- **Rows checked before parsing**: a plugin row's ``from`` must name one earlier layer (the wrapper around
  ``parse_model`` says which row is wrong before Ultralytics indexes it); in-block variant rows (``C2f_EMA``) are
  parsed as their Ultralytics parents and upgraded after the build (:func:`parse_with_blocks`).
- **Safe loading**: ``torch.serialization.add_safe_globals`` admits the plugin classes (and their submodules) under
  ``ULTRALYTICS_SAFE_LOAD=1``.
- **Pretrained transfer across inserted layers**: ``BaseModel.load`` matches tensors by ``model.{i}.`` names, so an
  inserted row shifts every later index. We align the source layers with the destination (plugin rows skipped) and
  pad the source with parameter-free placeholders where plugin layers were inserted, then let Ultralytics transfer.
- **Configs by bare name**: ``check_yaml`` / ``check_file`` look a bare model name up in Ultralytics' own folders
  only; we let them find the shipped ``yolo_ema/cfg`` files too (a local file of the same name still wins).
- **NaN guard**: a first-epoch NaN/Inf in plugin-layer weights stops the run instead of being saved as zeros.

Verified with Ultralytics 8.4.x (8.4.190).
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
from copy import deepcopy
from dataclasses import dataclass

import torch
from torch import nn

from yolo_ema.nn import CA, CBAM, ECA, EMA, SA, SE, SimAM

LOGGER = logging.getLogger("yolo_ema")
VERIFIED = ((8, 4),)  # (major, minor) series whose parser shape was checked
PARSER_LOCALS = ("ch", "f", "i")  # parse_model locals read while a row is built

_lock = threading.RLock()  # re-entrant: importing the parser may run the start-up hook's register()
_state: dict = {"registered": False, "problem": None, "lookup_problem": None, "disabled_env": None}


@dataclass(frozen=True)
class PluginLayer:
    """A layer a YAML row can name: ``cls(channels, *hyper)``, output channels equal to the input's."""

    cls: type
    hyper: tuple  # names of the YAML row's args, in order (for messages)


PLUGIN_LAYERS = {  # YAML name -> layer; one table for everything below (parser, safe load, transfer, NaN guard)
    "EMA": PluginLayer(EMA, ("factor",)),
    "SE": PluginLayer(SE, ("reduction",)),
    "CBAM": PluginLayer(CBAM, ("kernel_size", "reduction")),
    "CA": PluginLayer(CA, ("reduction",)),
    "ECA": PluginLayer(ECA, ("k_size", "gamma", "b")),
    "SA": PluginLayer(SA, ("groups",)),
    "SimAM": PluginLayer(SimAM, ("e_lambda",)),
}
PLUGIN_CLASSES = tuple(p.cls for p in PLUGIN_LAYERS.values())


class IncompatibleUltralyticsError(RuntimeError):
    """The installed Ultralytics parser does not have the shape yolo-ema was written against."""


def _ultralytics_version() -> tuple[int, ...]:
    import ultralytics

    parts = []
    for p in ultralytics.__version__.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _unwrapped(fn):
    return getattr(fn, "__wrapped__", fn) if getattr(fn, "_yolo_ema", False) else fn


def check_parser(tasks) -> str | None:
    """Return None if ``tasks.parse_model`` has the shape we rely on, else a sentence saying what differs."""
    import ultralytics

    code = getattr(_unwrapped(getattr(tasks, "parse_model", None)), "__code__", None)
    if code is None:
        return f"ultralytics {ultralytics.__version__} has no ultralytics.nn.tasks.parse_model function"
    known = set(code.co_varnames) | set(code.co_cellvars)
    missing = [name for name in PARSER_LOCALS if name not in known]
    if missing:
        return (
            f"ultralytics {ultralytics.__version__}: parse_model no longer has the local variable(s) {missing} "
            f"that plugin-layer channel inference reads"
        )
    if "globals" not in code.co_names:
        return f"ultralytics {ultralytics.__version__}: parse_model no longer resolves module names through globals()"
    for name in ("BaseModel",):
        if not hasattr(tasks, name):
            return f"ultralytics {ultralytics.__version__}: ultralytics.nn.tasks.{name} is missing"
    return None


def check_lookup(checks) -> str | None:
    """None if ``check_yaml`` resolves files through ``checks.check_file`` (which we extend), else what differs."""
    import ultralytics

    check_yaml = getattr(checks, "check_yaml", None)
    if not callable(getattr(checks, "check_file", None)) or check_yaml is None:
        return f"ultralytics {ultralytics.__version__}: ultralytics.utils.checks has no check_file/check_yaml"
    if "check_file" not in getattr(check_yaml, "__code__", None).co_names:
        return f"ultralytics {ultralytics.__version__}: check_yaml no longer calls check_file"
    return None


def _parser_frame():
    """The frame of the ``parse_model`` call that is building a row right now, or None."""
    tasks = sys.modules.get("ultralytics.nn.tasks")
    code = getattr(_unwrapped(getattr(tasks, "parse_model", None)), "__code__", None)
    frame = sys._getframe(1)
    while frame is not None and code is not None:
        if frame.f_code is code:
            return frame
        frame = frame.f_back
    return None


def build_layer(name: str, c1: int, args: tuple, index) -> nn.Module:
    """Build plugin layer ``name`` for YAML row ``index`` reading ``c1`` channels, with the row's ``args``."""
    layer = PLUGIN_LAYERS[name]
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
        problem = _state["problem"]
        if problem:
            raise IncompatibleUltralyticsError(f"yolo-ema cannot build {name} rows: {problem}")
        frame = _parser_frame()
        if frame is None:  # called outside a YAML parse: behave like the layer itself
            return PLUGIN_LAYERS[name].cls(*args)
        loc = frame.f_locals
        return build_layer(name, loc["ch"][loc["f"]], args, loc["i"])

    doc = f"Stands for ``{name}`` in Ultralytics' YAML namespace; constructing it returns a real layer (channels read from the parser)."
    builder = type(name, (nn.Module,), {"__new__": __new__, "__doc__": doc, "__module__": "yolo_ema"})
    return builder  # rows print as yolo_ema.<name>


BUILDERS = {name: _builder(name) for name in PLUGIN_LAYERS}
EMABuilder = BUILDERS["EMA"]


def check_plugin_from(name: str, f, i: int) -> None:
    """Raise ValueError unless ``from`` value ``f`` of plugin row ``i`` names one earlier layer."""
    if isinstance(f, bool) or not isinstance(f, int):
        raise ValueError(f"{name} layer {i}: 'from' must be one layer index, got {f!r} ({name} reads a single tensor)")
    if not (-i <= f < i or (i == 0 and f == -1)):
        raise ValueError(f"{name} layer {i}: 'from' index {f} does not name an earlier layer (0..{i - 1} or -1..-{i})")


def _validate_rows(parse_model):
    """Wrap ``parse_model``: plugin rows with a bad ``from`` fail naming the row; in-block rows are upgraded."""

    def checked(d, ch, verbose=True):
        for i, row in enumerate(list(d.get("backbone") or []) + list(d.get("head") or [])):
            if isinstance(row, (list, tuple)) and len(row) >= 3 and row[2] in PLUGIN_LAYERS:
                check_plugin_from(row[2], row[0], i)
        return parse_with_blocks(parse_model, d, ch, verbose)

    checked._yolo_ema = True
    checked.__wrapped__ = parse_model
    checked.__doc__ = parse_model.__doc__
    return checked


# --- in-block variants (C2f_EMA, C3k2_EMA; the blocks themselves live in yolo_ema.blocks) ---------------------------


def parse_with_blocks(parse_model, d, ch, verbose=True):
    """Parse ``d`` with rows naming an in-block variant built as their Ultralytics parent, then upgraded in place.

    ``parse_model`` scales only classes in its local ``base_modules`` / ``repeat_modules`` sets (and gives C3k2 its
    m/l/x ``c3k`` switch by identity), so a ``C2f_EMA`` row is parsed as ``C2f`` (same width, repeats and arguments)
    and the built layer then gains its EMA (:func:`yolo_ema.blocks.upgrade`). ``d`` itself (the model's ``yaml``)
    keeps the variant's name.
    """
    from yolo_ema.blocks import PARENTS, split_row_args, upgrade

    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    names = {i: r[2] for i, r in enumerate(rows) if isinstance(r, (list, tuple)) and len(r) >= 3 and r[2] in PARENTS}
    if not names:
        return parse_model(d, ch, verbose)

    d, factors = deepcopy(d), {}
    for i, name in names.items():
        section, j = ("backbone", i) if i < len(d.get("backbone") or []) else ("head", i - len(d["backbone"]))
        row = d[section][j]
        row[2] = PARENTS[name].__name__
        row[3], factors[i] = split_row_args(name, row[3] if len(row) > 3 else [], f"{name} layer {i}")
    model, save = parse_model(d, ch, verbose)
    for i, name in names.items():
        layer = upgrade(model[i], name, factors[i])
        layer.type, layer.np = f"yolo_ema.blocks.{name}", sum(p.numel() for p in layer.parameters())
    if verbose:
        from ultralytics.utils import LOGGER as ULOGGER

        ULOGGER.info(
            f"yolo-ema: layers {sorted(names)} built as {sorted(set(names.values()))} (EMA in each bottleneck)"
        )
    return model, save


# --- pretrained transfer ----------------------------------------------------------------------------------------------


def is_plugin(m: nn.Module) -> bool:
    """True for an inserted plugin layer (a PLUGIN_LAYERS class, or a row Ultralytics typed ``yolo_ema.<name>``)."""
    if isinstance(m, PLUGIN_CLASSES):
        return True
    t = getattr(m, "type", None)  # Ultralytics' row type string; torch's Module.type() method where absent
    return isinstance(t, str) and t.startswith("yolo_ema.") and t.rsplit(".", 1)[-1] in PLUGIN_LAYERS


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


def _load_with_alignment(original_load):
    def load(self, weights, verbose=True):
        src = (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights
        dst_layers = getattr(self, "model", None)
        src_layers = getattr(src, "model", None)
        if (
            isinstance(dst_layers, nn.Sequential)
            and isinstance(src_layers, nn.Sequential)
            and len(dst_layers) != len(src_layers)
            and any(is_plugin(m) for m in dst_layers)
        ):
            mapping = align_layers(list(dst_layers), list(src_layers))
            if mapping is None:
                LOGGER.warning("yolo-ema: source and plugin model layers do not align; transferring by index only")
            else:
                shifted = deepcopy(src)
                shifted.model = nn.Sequential(*(_Placeholder() if k is None else src_layers[k] for k in mapping))
                shifted.model = deepcopy(shifted.model)
                inserted = [i for i, k in enumerate(mapping) if k is None]
                names = sorted({type(dst_layers[i]).__name__ for i in inserted})
                moved = sum(1 for i, k in enumerate(mapping) if k is not None and k != i)
                if verbose:
                    from ultralytics.utils import LOGGER as ULOGGER

                    ULOGGER.info(
                        f"yolo-ema: aligned {len(src_layers)} pretrained layers across {len(inserted)} inserted "
                        f"{'/'.join(names)} layers {inserted} ({moved} layers re-indexed); "
                        f"{'/'.join(names)} layers start fresh"
                    )
                weights = shifted
        return original_load(self, weights, verbose=verbose)

    load._yolo_ema = True
    return load


# --- configs by bare name ---------------------------------------------------------------------------------------------


def _with_shipped_configs(check_file):
    """``check_file`` that also finds the shipped configs by bare name (after a local file, before Ultralytics')."""

    def check_file_or_shipped(file, *args, **kwargs):
        from yolo_ema.configs import find_config

        found = find_config(file) if isinstance(file, (str, os.PathLike)) else None
        return found or check_file(file, *args, **kwargs)

    check_file_or_shipped._yolo_ema = True
    check_file_or_shipped.__wrapped__ = check_file
    check_file_or_shipped.__doc__ = check_file.__doc__
    check_file_or_shipped.__signature__ = inspect.signature(check_file)
    return check_file_or_shipped


# --- NaN/Inf guard -----------------------------------------------------------------------------------------------------


class NonFiniteEMAError(RuntimeError):
    """Plugin-layer (EMA, CBAM, ...) weights became NaN/Inf where Ultralytics can neither recover nor save them."""


def nonfinite_plugin_tensors(model: nn.Module) -> list[str]:
    """Names (``model.{i}.{param}``) of plugin-layer tensors holding NaN/Inf in ``model``."""
    bad = []
    for m in getattr(model, "model", []):
        if isinstance(m, PLUGIN_CLASSES):
            bad += [f"model.{m.i}.{k}" for k, v in m.state_dict().items() if not torch.isfinite(v).all()]
    return bad


def guard_nonfinite_ema(trainer) -> None:
    """``on_train_epoch_end`` callback: fail loudly on NaN/Inf plugin-layer weights in an epoch Ultralytics cannot recover.

    Ultralytics 8.4 recovers a NaN epoch by reloading last.pt, except in the first epoch of a run (no last.pt yet):
    there it only warns, and ``save_model`` turns the NaN weights into zeros, a finite but destroyed checkpoint. In
    that case (and where the trainer's EMA copy could not be resynced from the live model) we stop the run instead.
    """
    from ultralytics.utils.torch_utils import unwrap_model

    if getattr(trainer, "epoch", None) != getattr(trainer, "start_epoch", 0):
        return  # later epochs: Ultralytics' own recovery from last.pt applies
    live = nonfinite_plugin_tensors(unwrap_model(trainer.model))
    ema = getattr(getattr(trainer, "ema", None), "ema", None)
    averaged = nonfinite_plugin_tensors(ema) if ema is not None else []
    lost = sorted(set(averaged) & set(live)) if ema is not None else live
    if lost:
        raise NonFiniteEMAError(
            f"yolo-ema: plugin layer weights became NaN/Inf in the first epoch ({', '.join(lost)}); Ultralytics cannot "
            "recover from last.pt here and would save them as zeros. Lower lr0, check the data, or disable amp."
        )


# --- registration -----------------------------------------------------------------------------------------------------


def safe_classes() -> list:
    """Every class a checkpoint of plugin layers references: the layers and the modules defined beside them."""
    blocks = sys.modules.get("yolo_ema.blocks")
    if blocks is not None and not hasattr(blocks, "SAFE_CLASSES"):
        # yolo_ema.blocks is importing Ultralytics right now (its import ran this registration); it allows its own
        # classes once it is complete.
        block_classes = []
    else:
        from yolo_ema.blocks import SAFE_CLASSES as block_classes

    out = []
    for cls in PLUGIN_CLASSES:
        module = sys.modules[cls.__module__]
        out += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__
        ]
    return list(dict.fromkeys(out + list(block_classes)))


def _put_in_namespace(tasks, name: str, obj) -> None:
    """Set ``tasks.<name>`` unless Ultralytics itself defines that name (then its own layer stays, with a warning)."""
    current = getattr(tasks, name, None)
    if current is None or getattr(current, "__module__", "").startswith("yolo_ema"):
        setattr(tasks, name, obj)
    else:
        LOGGER.warning(f"yolo-ema: ultralytics.nn.tasks already defines {name}; its own layer is kept for YAML rows")


def register() -> bool:
    """Make Ultralytics know the plugin layers and configs. Idempotent and thread-safe.

    Returns True when plugin rows can be built; False (with the reason logged) when the installed Ultralytics parser
    has changed shape, in which case a plugin row raises :class:`IncompatibleUltralyticsError` naming the problem.
    """
    from ultralytics.nn import tasks  # outside the lock: this import may itself run register() via the start-up hook
    from ultralytics.utils import checks

    with _lock:
        if _state["registered"]:
            return _state["problem"] is None

        problem = check_parser(tasks)
        version = _ultralytics_version()
        if problem is None and version[:2] not in VERIFIED:
            LOGGER.warning(
                f"yolo-ema was verified with ultralytics {'/'.join(f'{a}.{b}.x' for a, b in VERIFIED)}; "
                f"found {'.'.join(map(str, version))}. The parser shape check passed; proceeding."
            )
        _state["problem"] = problem
        if not getattr(tasks.parse_model, "_yolo_ema", False):
            tasks.parse_model = _validate_rows(tasks.parse_model)
        for name, builder in BUILDERS.items():  # parse_model resolves names via the module's globals()
            _put_in_namespace(tasks, name, builder)
        if hasattr(torch.serialization, "add_safe_globals"):
            torch.serialization.add_safe_globals(safe_classes())
        if not getattr(tasks.BaseModel.load, "_yolo_ema", False):
            tasks.BaseModel.load = _load_with_alignment(tasks.BaseModel.load)
        lookup = check_lookup(checks)
        _state["lookup_problem"] = lookup
        if lookup is None and not getattr(checks.check_file, "_yolo_ema", False):
            checks.check_file = _with_shipped_configs(checks.check_file)
        elif lookup:
            LOGGER.warning(f"yolo-ema: shipped configs are not found by bare name (use their path): {lookup}")
        from ultralytics.utils.callbacks import base as callbacks

        hooks = callbacks.default_callbacks.setdefault("on_train_epoch_end", [])
        if guard_nonfinite_ema not in hooks:
            hooks.append(guard_nonfinite_ema)
        _state["registered"] = True
        if problem:
            LOGGER.warning(f"yolo-ema: plugin rows will fail: {problem}")
        return problem is None


def _disabled(name: str) -> type:
    """Placeholder for ``name`` while auto-registration is switched off: building a row says why it cannot."""

    def __new__(cls, *args):
        frame = _parser_frame()
        row = f"{name} layer {frame.f_locals.get('i')} (args {list(args)})" if frame is not None else name
        env = _state["disabled_env"]
        raise RuntimeError(
            f"{row}: yolo-ema is installed but its automatic registration is switched off ({env}="
            f"{os.environ.get(env)!r}). Unset {env} or call yolo_ema.register() before building the model."
        )

    return type(name, (nn.Module,), {"__new__": __new__, "__module__": "yolo_ema.disabled"})


def install_disabled_notice(env: str) -> None:
    """Put a :func:`_disabled` placeholder for each plugin name (named switch ``env``) in the parser namespace."""
    from ultralytics.nn import tasks

    _state["disabled_env"] = env
    for name in PLUGIN_LAYERS:
        if not hasattr(tasks, name):
            setattr(tasks, name, _disabled(name))


def _default_hooks(event: str) -> list:
    base = sys.modules.get("ultralytics.utils.callbacks.base")
    return list(base.default_callbacks.get(event, [])) if base is not None else []


def registration_status() -> dict:
    """Where the plugin is registered (for ``yolo-ema info``)."""
    tasks = sys.modules.get("ultralytics.nn.tasks")
    checks = sys.modules.get("ultralytics.utils.checks")
    allowed = set(getattr(torch.serialization, "get_safe_globals", lambda: [])())
    return {
        "registered": _state["registered"],
        "problem": _state["problem"],
        "layers": [n for n, b in BUILDERS.items() if tasks is not None and getattr(tasks, n, None) is b],
        "parser_namespace": "ultralytics.nn.tasks"
        if tasks is not None and getattr(tasks, "EMA", None) is EMABuilder
        else None,
        "safe_globals": all(c in allowed for c in PLUGIN_CLASSES),
        "transfer_patch": tasks is not None and getattr(tasks.BaseModel.load, "_yolo_ema", False),
        "config_lookup": checks is not None and getattr(checks.check_file, "_yolo_ema", False),
        "lookup_problem": _state["lookup_problem"],
        "nan_guard": guard_nonfinite_ema in _default_hooks("on_train_epoch_end"),
    }

"""The one place where yolo-ema touches Ultralytics internals.

What it does, each guarded by a check of the installed Ultralytics:

- **Parser registration**: ``ultralytics.nn.tasks.parse_model`` resolves a YAML module name with
  ``globals()[name]`` and, for a name outside its known sets, calls the class with the YAML args as written
  (``c2 = ch[f]`` branch), so a layer never learns its input channels. We put ``EMA`` into that namespace as a
  builder class whose construction reads ``ch[f]`` from the running ``parse_model`` frame; a YAML row then needs only
  the factor: ``[-1, 1, EMA, [8]]``.
- **Safe loading**: ``torch.serialization.add_safe_globals`` admits :class:`yolo_ema.nn.ema.EMA` under
  ``ULTRALYTICS_SAFE_LOAD=1``.
- **Pretrained transfer across inserted layers**: ``BaseModel.load`` matches tensors by ``model.{i}.`` names, so an
  inserted EMA row shifts every later index. We align the source layers with the destination (EMA rows skipped) and
  pad the source with parameter-free placeholders where EMA layers were inserted, then let Ultralytics transfer.

Verified with Ultralytics 8.4.x (8.4.190).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from copy import deepcopy

import torch
from torch import nn

from yolo_ema.nn.ema import EMA, check_factor

LOGGER = logging.getLogger("yolo_ema")
VERIFIED = ((8, 4),)  # (major, minor) series whose parser shape was checked
PARSER_LOCALS = ("ch", "f", "i")  # parse_model locals read while a row is built

_lock = threading.RLock()  # re-entrant: importing the parser may run the start-up hook's register()
_state: dict = {"registered": False, "problem": None, "parse_code": None}


class IncompatibleUltralyticsError(RuntimeError):
    """The installed Ultralytics parser does not have the shape yolo-ema was written against."""


def _ultralytics_version() -> tuple[int, ...]:
    import ultralytics

    parts = []
    for p in ultralytics.__version__.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_parser(tasks) -> str | None:
    """Return None if ``tasks.parse_model`` has the shape we rely on, else a sentence saying what differs."""
    import ultralytics

    fn = getattr(tasks, "parse_model", None)
    fn = getattr(fn, "__wrapped__", fn) if getattr(fn, "_yolo_ema", False) else fn
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"ultralytics {ultralytics.__version__} has no ultralytics.nn.tasks.parse_model function"
    known = set(code.co_varnames) | set(code.co_cellvars)
    missing = [name for name in PARSER_LOCALS if name not in known]
    if missing:
        return (
            f"ultralytics {ultralytics.__version__}: parse_model no longer has the local variable(s) {missing} "
            f"that EMA channel inference reads"
        )
    if "globals" not in code.co_names:
        return f"ultralytics {ultralytics.__version__}: parse_model no longer resolves module names through globals()"
    for name in ("BaseModel",):
        if not hasattr(tasks, name):
            return f"ultralytics {ultralytics.__version__}: ultralytics.nn.tasks.{name} is missing"
    return None


def _parser_frame():
    """The frame of the ``parse_model`` call that is building a row right now, or None."""
    code = _state["parse_code"]
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is code:
            return frame
        frame = frame.f_back
    return None


def _ema_from_yaml_args(c1: int, args: tuple, index) -> EMA:
    """Build an EMA for YAML row ``index`` reading ``c1`` channels from ``args`` = () | (factor,) | (c, factor)."""
    where = f"EMA layer {index}"
    if len(args) == 0:
        factor = 32
    elif len(args) == 1:
        factor = args[0]
    elif len(args) == 2:  # legacy fork style [channels, factor]: channels come from the graph, not the YAML
        if args[0] != c1:
            LOGGER.warning(f"yolo-ema: {where}: YAML channels {args[0]} ignored, the layer reads {c1} channels")
        factor = args[1]
    else:
        raise ValueError(f"{where}: expected args [factor], got {list(args)}")
    try:
        check_factor(c1, factor)
    except ValueError as e:
        raise ValueError(f"{where} (input channels {c1}, factor {factor!r}): {e}") from None
    return EMA(c1, factor)


class EMABuilder(nn.Module):
    """Stands for ``EMA`` in Ultralytics' YAML namespace; constructing it returns a real :class:`EMA`.

    Its input channels are read from the ``parse_model`` frame that builds the row (``ch[f]``), so a YAML row gives
    only the factor: ``[-1, 1, EMA, [8]]`` (``from`` may be -1 or any earlier single layer).
    """

    def __new__(cls, *args):
        problem = _state["problem"]
        if problem:
            raise IncompatibleUltralyticsError(f"yolo-ema cannot build EMA rows: {problem}")
        frame = _parser_frame()
        if frame is None:  # called outside a YAML parse: behave like EMA(channels, factor)
            return EMA(*args)
        loc = frame.f_locals
        ch, f, i = loc["ch"], loc["f"], loc["i"]
        check_ema_from(f, i)
        return _ema_from_yaml_args(ch[f], args, i)


def check_ema_from(f, i: int) -> None:
    """Raise ValueError unless ``from`` value ``f`` of EMA row ``i`` names one earlier layer."""
    if isinstance(f, bool) or not isinstance(f, int):
        raise ValueError(f"EMA layer {i}: 'from' must be one layer index, got {f!r} (EMA reads a single tensor)")
    if not (-i <= f < i or (i == 0 and f == -1)):
        raise ValueError(f"EMA layer {i}: 'from' index {f} does not name an earlier layer (0..{i - 1} or -1..-{i})")


def _validate_rows(parse_model):
    """Wrap ``parse_model`` so EMA rows with a bad ``from`` fail with the row named, before Ultralytics indexes it."""

    def checked(d, ch, verbose=True):
        for i, row in enumerate(list(d.get("backbone") or []) + list(d.get("head") or [])):
            if isinstance(row, (list, tuple)) and len(row) >= 3 and row[2] == "EMA":
                check_ema_from(row[0], i)
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
    from yolo_ema.blocks import PARENTS, upgrade

    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    names = {i: r[2] for i, r in enumerate(rows) if isinstance(r, (list, tuple)) and len(r) >= 3 and r[2] in PARENTS}
    if not names:
        return parse_model(d, ch, verbose)

    d = deepcopy(d)
    for i, name in names.items():
        section, j = ("backbone", i) if i < len(d.get("backbone") or []) else ("head", i - len(d["backbone"]))
        d[section][j][2] = PARENTS[name].__name__
    model, save = parse_model(d, ch, verbose)
    for i, name in names.items():
        layer = upgrade(model[i], name)
        layer.type, layer.np = f"yolo_ema.blocks.{name}", sum(p.numel() for p in layer.parameters())
    if verbose:
        from ultralytics.utils import LOGGER as ULOGGER

        ULOGGER.info(
            f"yolo-ema: layers {sorted(names)} built as {sorted(set(names.values()))} (EMA in each bottleneck)"
        )
    return model, save


EMABuilder.__name__ = EMABuilder.__qualname__ = "EMA"
EMABuilder.__module__ = "yolo_ema"  # rows print as yolo_ema.EMA, which names the real class


# --- pretrained transfer ----------------------------------------------------------------------------------------------


def _is_ema(m: nn.Module) -> bool:
    return isinstance(m, EMA) or getattr(m, "type", "").endswith(".EMA")


def align_layers(dst_layers, src_layers) -> list | None:
    """Map source layers onto destination positions, leaving EMA rows the source lacks unmatched.

    Returns a list as long as ``dst_layers`` whose entries are source indices or None (an inserted EMA), or None when
    the two networks do not align layer for layer once EMA rows are set aside.
    """
    mapping, j = [], 0
    for d in dst_layers:
        if j < len(src_layers) and type(d).__name__ == type(src_layers[j]).__name__:
            mapping.append(j)
            j += 1
        elif _is_ema(d):
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
            and any(_is_ema(m) for m in dst_layers)
        ):
            mapping = align_layers(list(dst_layers), list(src_layers))
            if mapping is None:
                LOGGER.warning("yolo-ema: source and EMA model layers do not align; transferring by index only")
            else:
                shifted = deepcopy(src)
                shifted.model = nn.Sequential(*(_Placeholder() if k is None else src_layers[k] for k in mapping))
                shifted.model = deepcopy(shifted.model)
                inserted = [i for i, k in enumerate(mapping) if k is None]
                moved = sum(1 for i, k in enumerate(mapping) if k is not None and k != i)
                if verbose:
                    from ultralytics.utils import LOGGER as ULOGGER

                    ULOGGER.info(
                        f"yolo-ema: aligned {len(src_layers)} pretrained layers across {len(inserted)} inserted EMA "
                        f"layers {inserted} ({moved} layers re-indexed); EMA layers start fresh"
                    )
                weights = shifted
        return original_load(self, weights, verbose=verbose)

    load._yolo_ema = True
    return load


# --- NaN/Inf guard -----------------------------------------------------------------------------------------------------


class NonFiniteEMAError(RuntimeError):
    """EMA-layer weights became NaN/Inf where Ultralytics can neither recover nor save them faithfully."""


def nonfinite_ema_tensors(model: nn.Module) -> list[str]:
    """Names (``model.{i}.{param}``) of EMA-layer tensors holding NaN/Inf in ``model``."""
    bad = []
    for m in getattr(model, "model", []):
        if isinstance(m, EMA):
            bad += [f"model.{m.i}.{k}" for k, v in m.state_dict().items() if not torch.isfinite(v).all()]
    return bad


def guard_nonfinite_ema(trainer) -> None:
    """``on_train_epoch_end`` callback: fail loudly on NaN/Inf EMA-layer weights in an epoch Ultralytics cannot recover.

    Ultralytics 8.4 recovers a NaN epoch by reloading last.pt, except in the first epoch of a run (no last.pt yet):
    there it only warns, and ``save_model`` turns the NaN weights into zeros, a finite but destroyed checkpoint. In
    that case (and where the trainer's EMA copy could not be resynced from the live model) we stop the run instead.
    """
    from ultralytics.utils.torch_utils import unwrap_model

    if getattr(trainer, "epoch", None) != getattr(trainer, "start_epoch", 0):
        return  # later epochs: Ultralytics' own recovery from last.pt applies
    live = nonfinite_ema_tensors(unwrap_model(trainer.model))
    ema = getattr(getattr(trainer, "ema", None), "ema", None)
    averaged = nonfinite_ema_tensors(ema) if ema is not None else []
    lost = sorted(set(averaged) & set(live)) if ema is not None else live
    if lost:
        raise NonFiniteEMAError(
            f"yolo-ema: EMA layer weights became NaN/Inf in the first epoch ({', '.join(lost)}); Ultralytics cannot "
            "recover from last.pt here and would save them as zeros. Lower lr0, check the data, or disable amp."
        )


# --- registration -----------------------------------------------------------------------------------------------------


def register() -> bool:
    """Make Ultralytics know ``EMA`` (parser, safe loading, pretrained transfer). Idempotent and thread-safe.

    Returns True when EMA rows can be built; False (with the reason logged) when the installed Ultralytics parser
    has changed shape, in which case an EMA row raises :class:`IncompatibleUltralyticsError` naming the problem.
    """
    from ultralytics.nn import tasks  # outside the lock: this import may itself run register() via the start-up hook

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
            _state["parse_code"] = tasks.parse_model.__code__
            tasks.parse_model = _validate_rows(tasks.parse_model)
        tasks.EMA = EMABuilder  # parse_model resolves names via the module's globals()
        if hasattr(torch.serialization, "add_safe_globals"):
            from yolo_ema.blocks import SAFE_CLASSES

            torch.serialization.add_safe_globals([EMA, *SAFE_CLASSES])
        if not getattr(tasks.BaseModel.load, "_yolo_ema", False):
            tasks.BaseModel.load = _load_with_alignment(tasks.BaseModel.load)
        from ultralytics.utils.callbacks import base as callbacks

        hooks = callbacks.default_callbacks.setdefault("on_train_epoch_end", [])
        if guard_nonfinite_ema not in hooks:
            hooks.append(guard_nonfinite_ema)
        _state["registered"] = True
        if problem:
            LOGGER.warning(f"yolo-ema: EMA rows will fail: {problem}")
        return problem is None


class DisabledEMA(nn.Module):
    """Placeholder for ``EMA`` while auto-registration is switched off: building a row says why it cannot."""

    def __new__(cls, *args):
        from yolo_ema._autoload import ENV

        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "parse_model":
            frame = frame.f_back
        row = f"EMA layer {frame.f_locals.get('i')} (args {list(args)})" if frame is not None else "EMA"
        raise RuntimeError(
            f"{row}: yolo-ema is installed but its automatic registration is switched off ({ENV}="
            f"{os.environ.get(ENV)!r}). Unset {ENV} or call yolo_ema.register() before building the model."
        )


DisabledEMA.__name__ = DisabledEMA.__qualname__ = "EMA"


def install_disabled_notice() -> None:
    """Put :class:`DisabledEMA` in the parser namespace unless something already provides ``EMA`` there."""
    from ultralytics.nn import tasks

    if not hasattr(tasks, "EMA"):
        tasks.EMA = DisabledEMA


def _default_hooks(event: str) -> list:
    base = sys.modules.get("ultralytics.utils.callbacks.base")
    return list(base.default_callbacks.get(event, [])) if base is not None else []


def registration_status() -> dict:
    """Where EMA is registered (for ``yolo-ema info``)."""
    tasks = sys.modules.get("ultralytics.nn.tasks")
    return {
        "registered": _state["registered"],
        "problem": _state["problem"],
        "parser_namespace": "ultralytics.nn.tasks"
        if tasks is not None and getattr(tasks, "EMA", None) is EMABuilder
        else None,
        "safe_globals": EMA in getattr(torch.serialization, "get_safe_globals", lambda: [])(),
        "transfer_patch": tasks is not None and getattr(tasks.BaseModel.load, "_yolo_ema", False),
        "nan_guard": guard_nonfinite_ema in _default_hooks("on_train_epoch_end"),
    }

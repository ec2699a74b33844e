"""Version guard: does the installed Ultralytics have the shape the seam relies on? Verified with 8.4.x (8.4.190).

The checks read Ultralytics' code objects (never run it) and return None or a sentence naming what differs; their
results live in :data:`STATE`, which the parser builders read so that a plugin row fails naming the problem.
"""

from __future__ import annotations

VERIFIED = ((8, 4),)  # (major, minor) series whose parser shape was checked
PARSER_LOCALS = ("ch", "f", "i")  # parse_model locals read while a row is built

STATE: dict = {"registered": False, "problem": None, "lookup_problem": None, "disabled_env": None}


class IncompatibleUltralyticsError(RuntimeError):
    """The installed Ultralytics parser does not have the shape yolo-ema was written against."""


def ultralytics_version() -> tuple[int, ...]:
    """(major, minor, patch) of the installed Ultralytics; non-digits dropped (``8.4.190rc1`` -> (8, 4, 190))."""
    import ultralytics

    parts = []
    for p in ultralytics.__version__.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def mark(wrapper, original):
    """Tag ``wrapper`` as yolo-ema's stand-in for Ultralytics' ``original`` (installed once, unwrappable)."""
    wrapper._yolo_ema = True
    wrapper.__wrapped__ = original
    wrapper.__doc__ = original.__doc__
    return wrapper


def is_ours(fn) -> bool:
    """True for a function :func:`mark` tagged (Ultralytics' own functions are not)."""
    return getattr(fn, "_yolo_ema", False)


def unwrapped(fn):
    """Ultralytics' own function behind a yolo-ema wrapper (``fn`` itself when it is not one)."""
    return getattr(fn, "__wrapped__", fn) if is_ours(fn) else fn


def check_parser(tasks) -> str | None:
    """Return None if ``tasks.parse_model`` has the shape we rely on, else a sentence saying what differs."""
    import ultralytics

    code = getattr(unwrapped(getattr(tasks, "parse_model", None)), "__code__", None)
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


def warn_if_unverified(logger) -> None:
    """Log a warning when the installed Ultralytics series is not one the seam was verified with."""
    version = ultralytics_version()
    if version[:2] not in VERIFIED:
        logger.warning(
            f"yolo-ema was verified with ultralytics {'/'.join(f'{a}.{b}.x' for a, b in VERIFIED)}; "
            f"found {'.'.join(map(str, version))}. The parser shape check passed; proceeding."
        )

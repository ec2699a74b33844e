"""Start-up hook (run from ``yolo_ema_autoload.pth`` in every interpreter): register EMA once Ultralytics loads.

It installs a tiny ``sys.meta_path`` finder that waits for ``ultralytics.nn.tasks`` to be imported and then calls
:func:`yolo_ema.seam.register`. Nothing is imported here, so a process that never imports Ultralytics
never imports torch because of us. Set ``YOLO_EMA_AUTOLOAD=0`` to switch it off.
"""

from __future__ import annotations

import os
import sys

TARGET = "ultralytics.nn.tasks"
ENV = "YOLO_EMA_AUTOLOAD"


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


class _RegisterAfterImport:
    """Meta-path finder: wraps the loader of ``ultralytics.nn.tasks`` so registration runs right after it executes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            _register() if enabled() else _explain_disabled()

        spec.loader.exec_module = exec_and_register
        return spec


def _register():
    try:
        from yolo_ema.seam.registration import register  # the module: yolo_ema.seam may be loading Ultralytics

        register()
    except Exception as e:  # never break Ultralytics for users who do not use EMA
        print(f"yolo-ema: automatic EMA registration failed: {type(e).__name__}: {e}", file=sys.stderr)


def _explain_disabled():
    """Switched off: register nothing, but let a YAML row naming EMA fail with a message that says why."""
    try:
        from yolo_ema.seam.registration import install_disabled_notice

        install_disabled_notice(ENV)
    except Exception:
        pass


def install() -> None:
    if any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        return
    if TARGET in sys.modules:
        _register() if enabled() else _explain_disabled()
    else:
        sys.meta_path.insert(0, _RegisterAfterImport())


install()

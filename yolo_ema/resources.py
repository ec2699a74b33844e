"""Files shipped inside the package (``datasets.yaml``, ``cfg/*.yaml``), found through ``importlib.resources``.

The same lookup works for an editable install, a wheel and a source checkout, because the files live inside
``yolo_ema/`` (the top-level ``cfg`` and ``datasets.yaml`` of a checkout are links to them). Torch-free.
"""

from __future__ import annotations

import pathlib
from importlib import resources


def package_path(*parts: str) -> pathlib.Path:
    """The file-system path of ``yolo_ema/<parts...>``; FileNotFoundError naming it if it is not shipped.

    Example: ``package_path("cfg", "yolov8-ema.yaml")``, ``package_path("datasets.yaml")``.
    """
    res = resources.files("yolo_ema")
    for p in parts:
        res = res.joinpath(p)
    if not isinstance(res, pathlib.Path):  # e.g. a zip import: not supported, the package ships as plain files
        raise FileNotFoundError(f"yolo_ema/{'/'.join(parts)}: package is not installed as plain files ({res!r})")
    if not res.exists():
        raise FileNotFoundError(f"{'/'.join(parts) or 'yolo_ema'} is not shipped with yolo-ema (looked at {res})")
    return res

"""The one place where yolo-ema touches Ultralytics internals, one module per job, each guarded by a check of the
installed Ultralytics (verified with 8.4.x, 8.4.190):

- :mod:`~yolo_ema.seam.compat`: version guard, parser and file-lookup shape checks;
- :mod:`~yolo_ema.seam.parser`: plugin layers as builders in the YAML parser's namespace, rows checked;
- :mod:`~yolo_ema.seam.inblock`: the in-block variants (``C2f_EMA``, ``C3k2_EMA``) and their parsing;
- :mod:`~yolo_ema.seam.transfer`: pretrained weights across inserted plugin rows;
- :mod:`~yolo_ema.seam.nanguard`: first-epoch NaN/Inf plugin-layer weights stop the run;
- :mod:`~yolo_ema.seam.registration`: :func:`register` installs all of the above.

The layers themselves come from :mod:`yolo_ema.nn.registry`; configs by bare name from :mod:`yolo_ema.configs`.
"""

# Ultralytics' parser module is loaded before any module of this package (Python runs this file first, whichever
# seam module a process imports). Where the start-up hook is installed, loading it runs register(), which imports the
# seam modules: none of them is half-imported at that moment, so no import cycle is possible.
import ultralytics.nn.tasks  # noqa: F401, I001

from yolo_ema.seam.compat import IncompatibleUltralyticsError
from yolo_ema.seam.nanguard import NonFinitePluginLayerError
from yolo_ema.seam.registration import install_disabled_notice, register, registration_status

__all__ = [
    "IncompatibleUltralyticsError",
    "NonFinitePluginLayerError",
    "install_disabled_notice",
    "register",
    "registration_status",
]

"""Report: heat-map overlays, the HTML report and JSON export, TensorBoard export (the
``tensorboard`` extra), the ``audit`` recorder, and the run collector behind the pytest plugin.

Names are imported on first use, so the pytest plugin can import
:mod:`modelaudit.report.collector` and :mod:`modelaudit.report.options` without numpy or
torch.

Example:
    >>> import numpy as np
    >>> import modelaudit as ma
    >>> out = ma.overlay(np.zeros((3, 16, 16)), np.random.rand(16, 16), box=(4, 4, 12, 12))
    >>> out.shape
    (16, 16, 3)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelaudit.report.collector import AuditCollector
    from modelaudit.report.colormap import COLORMAPS, colorize
    from modelaudit.report.entries import TestEntry, record_view
    from modelaudit.report.export import write_json
    from modelaudit.report.html import write_html
    from modelaudit.report.overlay import overlay, png_bytes, save_png, write_overlays
    from modelaudit.report.recorder import AuditRecorder
    from modelaudit.report.tensorboard import log_feature_maps, write_tensorboard

# The rest (colormap_lut, image_to_rgb, render_html, export_dict, RecordView, SampleRow,
# Attachment, AuditOptions) stays importable from the submodules without crowding
# ``modelaudit.*``.
_HOMES = {
    "COLORMAPS": "colormap",
    "AuditCollector": "collector",
    "AuditRecorder": "recorder",
    "TestEntry": "entries",
    "colorize": "colormap",
    "log_feature_maps": "tensorboard",
    "overlay": "overlay",
    "png_bytes": "overlay",
    "record_view": "entries",
    "save_png": "overlay",
    "write_html": "html",
    "write_json": "export",
    "write_overlays": "overlay",
    "write_tensorboard": "tensorboard",
}
__all__ = [
    "COLORMAPS",
    "AuditCollector",
    "AuditRecorder",
    "TestEntry",
    "colorize",
    "log_feature_maps",
    "overlay",
    "png_bytes",
    "record_view",
    "save_png",
    "write_html",
    "write_json",
    "write_overlays",
    "write_tensorboard",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``modelaudit.report.overlay`` the function once the submodule of that name loads.

    Importing a submodule sets it as an attribute of its package; eagerly importing the
    function afterwards used to rebind the name, lazily there is no afterwards.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

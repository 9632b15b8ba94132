"""Report: heat-map overlays, the HTML report and JSON export, and the ``audit`` recorder.

Example:
    >>> import numpy as np
    >>> import modelaudit as ma
    >>> out = ma.overlay(np.zeros((3, 16, 16)), np.random.rand(16, 16), box=(4, 4, 12, 12))
    >>> out.shape
    (16, 16, 3)
"""

from modelaudit.report.colormap import COLORMAPS, colorize
from modelaudit.report.entries import TestEntry, record_view
from modelaudit.report.export import write_json
from modelaudit.report.html import write_html
from modelaudit.report.overlay import overlay, png_bytes, save_png, write_overlays
from modelaudit.report.recorder import AuditRecorder

# The rest (colormap_lut, image_to_rgb, render_html, export_dict, RecordView, SampleRow,
# Attachment) stays importable from the submodules without crowding ``modelaudit.*``.
__all__ = [
    "COLORMAPS",
    "AuditRecorder",
    "TestEntry",
    "colorize",
    "overlay",
    "png_bytes",
    "record_view",
    "save_png",
    "write_html",
    "write_json",
    "write_overlays",
]

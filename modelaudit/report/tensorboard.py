"""TensorBoard export (the optional ``tensorboard`` extra): metrics as scalars, pictures as images.

:func:`write_tensorboard` writes finished tests (``--audit-tensorboard=DIR`` calls it at
the end of the session) and :func:`log_feature_maps` writes
:func:`~modelaudit.hooks.grid.feature_map_grid` output with ``SummaryWriter.add_image``,
as the hooks tutorials do with ``make_grid``. TensorBoard is imported on first use; without
it both raise :class:`~modelaudit.errors.ModelAuditError` saying what to install.

Tags (a test's node id is ``<test id>``):

- ``<test id>/<metric>``: a metric recorded with ``audit.metric`` (its value);
- ``<test id>/<check>``: a check's obtained value (``step`` counts repeated checks up, so
  a Hypothesis test's examples form a series); baseline gates that only repeat the
  test's metrics are left out, as in the terminal summary;
- ``<test id>/<check>/overlay_<i>`` and ``<test id>/<check>/overview``: the drawn overlay
  of sample ``i`` and the dataset overview (drawn only when the run writes a report);
- ``<test id>/attachment/<name>``: images attached with ``audit.attach``;
- ``feature_maps/<layer>``: :func:`log_feature_maps`.

Example:
    >>> import tempfile
    >>> from modelaudit.baseline import Comparison
    >>> from modelaudit.report.entries import TestEntry
    >>> entry = TestEntry("t.py::test_a", metrics=[
    ...     Comparison("t.py::test_a::iou", "iou", 0.5, "higher", 0.05, None, "recorded")])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_tensorboard([entry], d)
    (1, 0)
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from modelaudit.errors import ModelAuditError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.tensorboard import SummaryWriter

    from modelaudit.hooks.layers import LayerSpec
    from modelaudit.report.entries import TestEntry

__all__ = ["log_feature_maps", "summary_writer", "write_tensorboard"]

_INSTALL = "pip install modelaudit[tensorboard]"


def summary_writer(log_dir: str | os.PathLike[str]) -> SummaryWriter:
    """A ``torch.utils.tensorboard.SummaryWriter`` writing event files into ``log_dir``.

    Raises:
        ModelAuditError: TensorBoard is not installed (the message says what to install).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     writer = summary_writer(d)
        ...     writer.close()
        ...     any(n.startswith("events.out.tfevents") for n in os.listdir(d))
        True
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ModelAuditError(
            f"TensorBoard export needs the tensorboard package: {_INSTALL} "
            f"(or pip install tensorboard); importing it failed: {exc}"
        ) from None
    return SummaryWriter(log_dir=os.fspath(log_dir))


def _with_writer(
    target: SummaryWriter | str | os.PathLike[str], write: Callable[[SummaryWriter], Any]
) -> Any:
    """Run ``write`` on ``target`` (a writer: flushed, left open; a directory: a new writer,
    closed afterwards)."""
    if isinstance(target, str | os.PathLike):
        writer = summary_writer(target)
        try:
            return write(writer)
        finally:
            writer.close()
    result = write(target)
    target.flush()
    return result


def _png_array(data: str) -> np.ndarray:
    """A base64 PNG as an (H, W) or (H, W, C) array."""
    import imageio.v3 as iio

    return iio.imread(base64.b64decode(data))


def _add_png(writer: SummaryWriter, tag: str, data: str, step: int) -> None:
    array = _png_array(data)
    writer.add_image(tag, array, step, dataformats="HW" if array.ndim == 2 else "HWC")


def _write_entry(writer: SummaryWriter, entry: TestEntry, step: int) -> tuple[int, int]:
    """Write one test's scalars and images; return how many of each."""
    from modelaudit.report.entries import mirrors_metrics

    scalars = images = 0
    for comparison in entry.metrics:
        writer.add_scalar(f"{entry.nodeid}/{comparison.name}", comparison.value, step)
        scalars += 1
    seen: dict[str, int] = {}
    for view in entry.records:
        if mirrors_metrics(view, entry.metrics):
            continue
        check = str(view.record.get("check") or "check")
        repeat = seen[check] = seen.get(check, -1) + 1
        obtained = view.record.get("obtained")
        if isinstance(obtained, int | float) and not isinstance(obtained, bool):
            value = float(obtained) if math.isfinite(obtained) else math.nan
            writer.add_scalar(f"{entry.nodeid}/{check}", value, step + repeat)
            scalars += 1
        for row in view.samples:
            if row.overlay_png:
                _add_png(
                    writer, f"{entry.nodeid}/{check}/overlay_{row.index}", row.overlay_png, step
                )
                images += 1
        if view.overview_png:
            _add_png(writer, f"{entry.nodeid}/{check}/overview", view.overview_png, step)
            images += 1
    for attachment in entry.attachments:
        _add_png(writer, f"{entry.nodeid}/attachment/{attachment.name}", attachment.png, step)
        images += 1
    return scalars, images


def write_tensorboard(
    entries: Iterable[TestEntry],
    log_dir: SummaryWriter | str | os.PathLike[str],
    *,
    step: int = 0,
) -> tuple[int, int]:
    """Write finished tests' metrics as scalars and their drawn pictures as images.

    Args:
        entries: the tests (:class:`~modelaudit.report.entries.TestEntry`), e.g. a
            collector's ``entries``.
        log_dir: a directory (created if needed; a new event file is added to it) or an
            open ``SummaryWriter`` (flushed, left open).
        step: the global step of the scalars and images (repeated checks count up from it).

    Returns:
        ``(scalars, images)``: how many of each were written. The tags are listed in the
        module docstring.

    Raises:
        ModelAuditError: TensorBoard is not installed.
        OSError: the directory cannot be created or written.
    """

    def write(writer: SummaryWriter) -> tuple[int, int]:
        scalars = images = 0
        for entry in entries:
            s, i = _write_entry(writer, entry, step)
            scalars, images = scalars + s, images + i
        return scalars, images

    result: tuple[int, int] = _with_writer(log_dir, write)
    return result


def log_feature_maps(
    writer: SummaryWriter | str | os.PathLike[str],
    model: nn.Module,
    image: torch.Tensor,
    layers: LayerSpec | None = None,
    *,
    step: int = 0,
    prefix: str = "feature_maps",
    nrow: int | None = None,
    padding: int = 1,
    pad_value: float = 1.0,
) -> dict[str, np.ndarray]:
    """Write each layer's feature-map grid to TensorBoard with ``add_image``.

    Runs :func:`~modelaudit.hooks.grid.feature_map_grid` (one tile per channel, each
    scaled on its own) and writes every grid as a grey image tagged ``<prefix>/<layer>``.

    Args:
        writer: an open ``SummaryWriter`` (flushed, left open) or a log directory.
        model: the model (run once, in eval mode, state restored).
        image: one image, (C, H, W) or (1, C, H, W).
        layers: which layers (default every ``nn.Conv2d``).
        step: the global step of the images.
        prefix: the tag prefix.
        nrow, padding, pad_value: the grid layout, as in ``feature_map_grid``.

    Returns:
        ``{layer: (H, W) uint8 grid}``, the arrays written.

    Raises:
        ModelAuditError: TensorBoard is not installed.
        InvalidInputError: as ``feature_map_grid`` (a batch, a layer without feature maps).

    Example:
        >>> import tempfile, torch, torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     grids = log_feature_maps(d, net, torch.rand(3, 10, 10))
        >>> {layer: grid.shape for layer, grid in grids.items()}
        {'0': (19, 19), '2': (8, 15)}
    """
    from torch import nn

    from modelaudit.hooks.grid import feature_map_grid

    grids: dict[str, np.ndarray] = feature_map_grid(  # type: ignore[assignment]
        model,
        image,
        nn.Conv2d if layers is None else layers,
        nrow=nrow,
        padding=padding,
        pad_value=pad_value,
    )

    def write(out: SummaryWriter) -> None:
        for name, grid in grids.items():
            out.add_image(f"{prefix}/{name}", grid, step, dataformats="HW")

    _with_writer(writer, write)
    return grids

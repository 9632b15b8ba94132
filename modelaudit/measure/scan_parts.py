"""A scan's result, and how the parts of a dataset scanned apart add up to it.

:func:`~modelaudit.measure.scanning.scan` reads its data as one or more :class:`ScanPart`
(one per process under ``torch.distributed``, or shards scanned by separate jobs) and
:func:`merge_scans` turns them into the :class:`Scan` the checks decide on. A part holds
what the finished values need and what cannot be recomputed from them: the per-sample
values, each map's coordinates on its layer's grid (for the shuffled-box null), and the
running sums over its samples (the objects' masks, where off-object mass lies, the
images). Merging orders the samples by their index in the dataset, adds the sums,
computes the null against every part's objects and re-selects the ``keep`` samples with
the least mass over all parts, plus each class's least-mass sample (:func:`keep_rows`;
ties: the earlier index). Parts of disjoint samples merge
into the scan of their union: the same per-sample values, kept samples and verdicts as
one process scanning it all (sums to float64 rounding).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchvision import tv_tensors
    >>> from modelaudit.measure.scanning import scan, scan_part
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> box = tv_tensors.BoundingBoxes([[0, 0, 4, 8]], format="XYXY", canvas_size=(8, 8))
    >>> targets = [{"labels": torch.tensor([k % 2]), "boxes": box} for k in range(6)]
    >>> data = torch.utils.data.StackDataset(torch.rand(6, 3, 8, 8), targets)
    >>> parts = [scan_part(net, data, shard=(r, 2), method="gradcam", layer="0") for r in (0, 1)]
    >>> [p.indices.tolist() for p in parts]
    [[0, 2, 4], [1, 3, 5]]
    >>> merged, whole = merge_scans(parts), scan(net, data, method="gradcam", layer="0")
    >>> bool(torch.allclose(merged.null, whole.null)), merged.indices.tolist()
    (True, [0, 1, 2, 3, 4, 5])
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import torch

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.postprocess import upsample_maps
from modelaudit.measure.offobject import OffObject
from modelaudit.measure.offobject_sums import OffObjectSums

__all__ = ["MAX_CLASSES_KEPT", "Kept", "Scan", "ScanPart", "grid_basis", "keep_rows", "merge_scans"]

MAX_CLASSES_KEPT = 32
"""Up to this many classes, a scan also keeps the least-mass sample of every class (so the
report can show each class); with more, only the ``keep`` samples with the least mass."""

PER_SAMPLE = ("mass", "pointing", "iou", "chance", "pointing_chance", "ceiling")
"""The per-sample values a scan keeps, besides labels, indices and extents."""


@dataclasses.dataclass(frozen=True)
class Kept:
    """The samples a scan keeps for the report (CPU tensors; ``rows`` say which they are).

    Attributes:
        rows: ``(K,)`` their positions in the scan (indices into the per-sample values).
        images: ``(K, C, H, W)`` the inputs.
        maps: ``(K, H, W)`` their heat maps.
        boxes: ``(K, 4)`` XYXY object boxes, or None (masks).
        masks: ``(K, H, W)`` bool object masks, or None (boxes).
        targets: ``(K,)`` the explained class of each.
        class_names: the classes' names, indexed by class, or None.
    """

    rows: torch.Tensor
    images: torch.Tensor
    maps: torch.Tensor
    boxes: torch.Tensor | None
    masks: torch.Tensor | None
    targets: torch.Tensor
    class_names: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Scan:
    """Per-sample localization values of a whole dataset (:mod:`~modelaudit.measure.scanning`
    says how they are measured). CPU tensors.

    Attributes:
        method, layer, grid, size: how the maps were made: method, layer, the layer's
            ``(h, w)`` grid and the maps' ``(H, W)``.
        kind: ``"box"`` or ``"mask"``: the region the values were measured against.
        tolerance: the pointing game's tolerance in pixels.
        indices: ``(N,)`` each sample's position in the data.
        labels: ``(N,)`` the class each map explains.
        mass: ``(N,)`` the mass in the box (or mask), :func:`~modelaudit.mass_in_box`.
        pointing: ``(N,)`` the pointing game, :func:`~modelaudit.pointing_game`.
        iou: ``(N,)`` IoU of the map at half its maximum, :func:`~modelaudit.iou`.
        chance: ``(N,)`` the region's area fraction (a uniform map's mass and IoU).
        pointing_chance: ``(N,)`` the same for the region grown by ``tolerance``.
        ceiling: ``(N,)`` the ideal map's mass at ``grid``
            (:func:`~modelaudit.localization_ceiling`).
        null: ``(N,)`` each map's mean mass on the other samples' regions
            (:func:`~modelaudit.shuffled_null`), or None for a single sample.
        null_error: the largest relative error of the grid projection behind ``null``.
        extents: ``(N, 2)`` each object's height and width in pixels (rows and columns
            spanned, for masks).
        kept: the samples drawn in the report.
        off_object: where the maps' mass off the object lies, over the whole dataset
            (:func:`~modelaudit.measure.off_object_mass`).
        mean_image: ``(C, H, W)`` the mean input.
        class_names: the classes' names, indexed by class, or None.
        options: the explainer's keyword options.
    """

    method: str
    layer: Any
    grid: tuple[int, int]
    size: tuple[int, int]
    kind: str
    tolerance: float
    indices: torch.Tensor
    labels: torch.Tensor
    mass: torch.Tensor
    pointing: torch.Tensor
    iou: torch.Tensor
    chance: torch.Tensor
    pointing_chance: torch.Tensor
    ceiling: torch.Tensor
    null: torch.Tensor | None
    null_error: float
    extents: torch.Tensor
    kept: Kept
    off_object: OffObject
    mean_image: torch.Tensor
    class_names: tuple[str, ...] | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def targets(self) -> torch.Tensor:
        """The explained class per sample (as an explainer's maps call it)."""
        return self.labels

    def extent_boxes(self) -> torch.Tensor:
        """``(N, 4)`` boxes ``(0, 0, w, h)`` with each object's size (for size medians)."""
        h, w = self.extents[:, 0], self.extents[:, 1]
        zero = torch.zeros_like(h)
        return torch.stack([zero, zero, w, h], dim=1)


@dataclasses.dataclass(frozen=True)
class ScanPart:
    """One process's (or one shard's) share of a scan, before merging (CPU tensors).

    Attributes:
        method, layer, grid, size, kind, tolerance, class_names, options: as in
            :class:`Scan`; every part of one scan must agree on them.
        keep: how many samples the merged scan keeps for the report.
        indices: ``(n,)`` the samples' positions in the dataset (distinct over all parts).
        labels, mass, pointing, iou, chance, pointing_chance, ceiling, extents: the
            per-sample values, as in :class:`Scan`, in the order the part read them.
        coords: ``(n, h, w)`` float64, each map's coordinates on the grid (module
            :mod:`~modelaudit.measure.scanning` says how the null uses them).
        totals: ``(n,)`` float64, each map's total (non-negative) mass.
        region_sum: ``(H, W)`` float64, the sum of the part's object masks.
        off_object: the part's running sums of off-object mass.
        image_sum: ``(C, H, W)`` float64, the sum of the part's images.
        null_error: the largest relative error of the grid projection in this part.
        kept: the part's own ``keep`` samples with the least mass (``rows`` index this part).
    """

    method: str
    layer: Any
    grid: tuple[int, int]
    size: tuple[int, int]
    kind: str
    tolerance: float
    keep: int
    indices: torch.Tensor
    labels: torch.Tensor
    mass: torch.Tensor
    pointing: torch.Tensor
    iou: torch.Tensor
    chance: torch.Tensor
    pointing_chance: torch.Tensor
    ceiling: torch.Tensor
    extents: torch.Tensor
    coords: torch.Tensor
    totals: torch.Tensor
    region_sum: torch.Tensor
    off_object: OffObjectSums
    image_sum: torch.Tensor
    null_error: float
    kept: Kept
    class_names: tuple[str, ...] | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def grid_basis(size: tuple[int, int], grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)``, float64: ``upsample_maps(C, size) == A @ C @ B.T`` for ``(h, w)`` grids.

    Example:
        >>> a, b = grid_basis((4, 6), (2, 3))
        >>> c = torch.rand(1, 2, 3, dtype=torch.float64)
        >>> bool(torch.allclose(a @ c[0] @ b.T, upsample_maps(c, (4, 6))[0]))
        True
    """
    (h, w), (gh, gw) = size, grid

    def axis(cells: int, pixels: int) -> torch.Tensor:
        eye = torch.eye(cells, dtype=torch.float64)[:, :, None]  # each cell alone, (k, k, 1)
        return upsample_maps(eye, (pixels, 1))[:, :, 0].T  # (pixels, k)

    return axis(gh, h), axis(gw, w)


def merge_scans(parts: Sequence[ScanPart | None]) -> Scan:
    """The :class:`Scan` of the union of disjoint parts (``None`` or empty parts: skipped).

    Samples come in the order of their dataset index; ``kept`` holds the ``keep`` samples
    with the least mass over every part (ties: the earlier index). The module doc says
    why this equals one scan of all the samples.

    Raises:
        InvalidInputError: no samples in any part, parts that disagree on how the maps
            were made (method, layer, grid, size, region kind, tolerance, options), or a
            sample index found twice (the parts must be disjoint).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchvision import tv_tensors
        >>> from modelaudit.data import Batch
        >>> from modelaudit.measure.scanning import scan_part
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> box = tv_tensors.BoundingBoxes([[0, 0, 4, 8]], format="XYXY", canvas_size=(8, 8))
        >>> part = scan_part(net, [Batch(torch.rand(1, 3, 8, 8), torch.tensor([1]), boxes=box)],
        ...                  method="gradcam", layer="0")
        >>> merged = merge_scans([part, None])
        >>> len(merged), merged.chance.tolist(), merged.null is None
        (1, [0.5], True)
    """
    found = [p for p in parts if p is not None and len(p)]
    if not found:
        raise InvalidInputError(
            "merge_scans got no samples: every part is empty; an audit needs at least one image"
        )
    first = found[0]
    _check_agree(found)
    read = torch.cat([p.indices for p in found]) if len(found) > 1 else first.indices
    order = torch.argsort(read, stable=True)
    in_order = bool((read[1:] > read[:-1]).all())  # one part in order: no copies
    indices = read if in_order else read[order]
    twice = indices[1:][indices[1:] == indices[:-1]]
    if twice.numel():
        raise InvalidInputError(
            f"merge_scans: sample {int(twice[0])} is in more than one part; the parts must "
            "hold disjoint samples (shard with modelaudit.distributed.shard, or a "
            "DistributedSampler whose padding the scan skips)"
        )

    def joined(name: str) -> torch.Tensor:
        value = torch.cat([getattr(p, name) for p in found]) if len(found) > 1 else None
        value = getattr(first, name) if value is None else value
        return value if in_order else value[order]

    values = {k: joined(k) for k in PER_SAMPLE}
    seen = sum(len(p) for p in found)
    region_sum = torch.stack([p.region_sum for p in found]).sum(dim=0)
    null = _null(first, values["mass"], joined("coords"), joined("totals"), region_sum)
    return Scan(
        method=first.method,
        layer=first.layer,
        grid=first.grid,
        size=first.size,
        kind=first.kind,
        tolerance=first.tolerance,
        indices=indices,
        labels=joined("labels"),
        null=null,
        null_error=max(p.null_error for p in found),
        extents=joined("extents"),
        kept=_kept(found, order, values["mass"]),
        off_object=OffObjectSums.merged([p.off_object for p in found]).result(),
        mean_image=(torch.stack([p.image_sum for p in found]).sum(dim=0) / seen).float(),
        class_names=first.class_names,
        options=dict(first.options),
        **values,
    )


def comparable(value: Any) -> Any:
    """``value`` in a form equal across processes: callables (a ``functools.partial`` or a
    function given as ``reshape=``) by their qualified name and arguments, since copies
    unpickled on another rank never compare equal.

    Example:
        >>> import functools, pickle
        >>> f = functools.partial(max, 1)
        >>> comparable({"r": f}) == comparable({"r": pickle.loads(pickle.dumps(f))})
        True
    """
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, functools.partial):
        kwargs = comparable(dict(value.keywords))
        return ("partial", comparable(value.func), comparable(list(value.args)), kwargs)
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    if callable(value):
        return (getattr(value, "__module__", None), getattr(value, "__qualname__", repr(value)))
    return value


def _check_agree(parts: Sequence[ScanPart]) -> None:
    """Every part made its maps the same way."""
    for name in ("method", "layer", "grid", "size", "kind", "tolerance", "options", "keep"):
        seen = [comparable(getattr(p, name)) for p in parts]
        if any(s != seen[0] for s in seen[1:]):
            raise InvalidInputError(
                f"merge_scans: the parts differ in {name} ({', '.join(map(repr, seen))}); "
                f"scan every part with the same {name} (e.g. pass layer= rather than "
                "letting each part choose)"
            )


def _null(
    first: ScanPart,
    mass: torch.Tensor,
    coords: torch.Tensor,
    totals: torch.Tensor,
    region_sum: torch.Tensor,
) -> torch.Tensor | None:
    """Each map's mean mass on the other samples' regions (module ``scanning`` says how)."""
    n = int(mass.shape[0])
    if n < 2:
        return None
    a, b = grid_basis(first.size, first.grid)
    weights = a.T @ region_sum @ b  # (h, w): A^T S B
    on_all = (coords * weights).sum(dim=(1, 2))
    share_all = torch.where(totals > 0, on_all / totals.clamp(min=1e-300), 0.0)
    null = (share_all - mass.double()) / (n - 1)
    return null.to(mass.dtype)


def keep_rows(mass: torch.Tensor, labels: torch.Tensor, keep: int, classes: int) -> torch.Tensor:
    """Positions of the samples to keep, least mass first (ties: the earlier position): the
    ``keep`` with the least mass (what an ``at_least=`` check fails first), the ``keep``
    with the most (what an ``at_most=`` check on a forbidden region fails first), and with
    ``classes`` <= :data:`MAX_CLASSES_KEPT` (the classes of the whole scan) the least-mass
    sample of every class.

    Example:
        >>> mass = torch.tensor([0.5, 0.1, 0.9, 0.2, 0.7, 0.3])
        >>> keep_rows(mass, torch.tensor([0, 0, 1, 0, 2, 0]), 1, classes=3).tolist()
        [1, 4, 2]
        >>> keep_rows(mass, torch.tensor([0, 0, 1, 0, 2, 0]), 1, classes=40).tolist()
        [1, 2]
    """
    order = torch.argsort(mass, stable=True)
    if keep <= 0:
        return order[:0]
    most = torch.argsort(-mass, stable=True)[:keep]
    chosen = set(order[:keep].tolist()) | set(most.tolist())
    if classes <= MAX_CLASSES_KEPT:
        first: dict[int, int] = {}
        for position, label in zip(order.tolist(), labels[order].tolist(), strict=True):
            first.setdefault(label, position)
        chosen |= set(first.values())
    return torch.tensor([i for i in order.tolist() if i in chosen], dtype=torch.long)


def _kept(parts: Sequence[ScanPart], order: torch.Tensor, mass: torch.Tensor) -> Kept:
    """The samples to keep over all parts (:func:`keep_rows`; rows of the merged scan)."""
    first = parts[0]
    names = first.class_names
    offsets = torch.tensor([0] + [len(p) for p in parts]).cumsum(dim=0)[:-1].tolist()
    where = torch.empty_like(order)
    where[order] = torch.arange(len(order))  # a part's row (plus its offset) -> merged row
    chosen = [p for p in parts if p.kept.rows.numel()]
    if first.keep == 0 or not chosen:
        empty = torch.empty(0)
        return Kept(empty.long(), empty, empty, None, None, empty.long(), names)
    rows = torch.cat(
        [where[p.kept.rows + off] for p, off in zip(parts, offsets) if p.kept.rows.numel()]
    )
    by_row = torch.argsort(rows)
    targets_all = torch.cat([p.kept.targets for p in chosen])
    classes = len(torch.cat([p.labels for p in parts]).unique())
    pick = by_row[keep_rows(mass[rows[by_row]], targets_all[by_row], first.keep, classes)]

    def cat(name: str) -> torch.Tensor | None:
        got = [getattr(p.kept, name) for p in chosen]
        return None if got[0] is None else torch.cat(got)[pick]

    targets = cat("targets")
    assert targets is not None
    return Kept(
        rows=rows[pick],
        images=torch.cat([p.kept.images for p in chosen])[pick],
        maps=torch.cat([p.kept.maps for p in chosen])[pick],
        boxes=cat("boxes"),
        masks=cat("masks"),
        targets=targets,
        class_names=names,
    )

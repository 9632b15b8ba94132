"""Localization over a whole dataset in constant memory: explain batch by batch, keep numbers.

:func:`scan` streams a ``Dataset``, a ``DataLoader`` or an iterable of batches
(:func:`modelaudit.data.iter_batches`), explains each batch's labelled class, and keeps per
sample only what the localization checks decide on: the mass in the box (or mask), the
pointing game, the IoU, their chance levels, the calibrated score's ceiling at the layer's
grid, and the shuffled-box null (each map scored against the other images' objects). Maps
are dropped once measured, except the ``keep`` samples with the least mass on their object,
which the report draws. The result, a :class:`Scan`, goes to the same assertions as
in-memory maps: ``assert_looks_at_object(scan)``, ``assert_mass_in_box(scan, at_least=...)``,
``assert_pointing_game(scan, ...)``, ``assert_iou(scan, ...)``; they decide exactly as on
the maps of the whole dataset at once.

**The shuffled-box null without the maps.** Map *i*'s null is its mean mass on the other
samples' objects, ``(share_i . S - mass_i) / (N - 1)`` with ``S`` the sum of every sample's
object mask (one ``(H, W)`` array, summed as the scan goes). A CAM map is its layer's
``(h, w)`` grid upsampled bilinearly (``U(C) = A C B^T``) and min-max scaled, so it lies
in the span of ``A X B^T``: the scan keeps ``X_i = A^+ map_i B^{+T}`` (``h*w`` numbers per
sample) and, once ``S`` is known, ``share_i . S = <X_i, A^T S B> / sum(map_i)`` - the same
number as from the full map. (Maps that are not one grid upsampled, e.g. several fused
layers, are projected onto the finest grid; the largest projection error is recorded as
``Scan.null_error``.)

**Several processes.** Under ``torch.distributed`` (a process group is open, e.g. under
``torchrun``; :func:`modelaudit.distributed.init_from_env` opens it), :func:`scan` shards a
map-style ``Dataset`` as ``DistributedSampler(shuffle=False, drop_last=False)`` does,
without the repeats it pads with (:func:`modelaudit.distributed.shard`); a ``DataLoader``
whose sampler is a ``DistributedSampler`` is read as it is (its padding repeats are
skipped). Each rank scans its share into a :class:`ScanPart`, the parts are gathered
(``all_gather_object``: gloo or nccl) and merged (:func:`merge_scans`), so every rank
holds the scan of the whole dataset - the same values, kept samples and verdicts as one
process - and ``indices`` are dataset positions. Data that cannot be sharded (an iterable
of batches, an ``IterableDataset``, a ``DataLoader`` with another sampler) is scanned
whole on every rank: it must yield the same batches on each. A failure on one rank is
raised on every rank (none waits forever for the others). Without a group,
:func:`scan_part` with ``shard=(rank, world_size)`` scans one share, for jobs run apart.

**Progress.** A tqdm bar on stderr with an ETA (when the data's size is known): shown when
``progress=True``, or by default when stderr is a terminal - so not under pytest's output
capture (its default), not in CI logs, not when ``MODELAUDIT_QUIET`` is set (the pytest
plugin sets it under ``-q``), and on rank 0 only; ``progress=False`` hides it.

**Memory.** Per sample: about ten numbers, the label and the index, and the ``h*w`` grid
coordinates (e.g. 49 numbers at a 7x7 layer) until the end of the scan; plus one ``(H, W)``
sum and the ``keep`` drawn samples. Nothing else grows with the data.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchvision import tv_tensors
    >>> from modelaudit.data import Batch
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 2))
    >>> box = tv_tensors.BoundingBoxes([[0, 0, 8, 8]] * 4, format="XYXY", canvas_size=(16, 16))
    >>> data = [Batch(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]), boxes=box)] * 3
    >>> found = scan(net, data, method="gradcam", layer="1", keep=1)
    >>> len(found), found.grid, found.mass.shape  # the least and most mass, each class's least
    (12, (16, 16), torch.Size([12]))
    >>> 2 <= len(found.kept.rows) <= 4
    True
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset
from torchvision import tv_tensors

from modelaudit import distributed
from modelaudit.data import Batch, collate, count, iter_batches
from modelaudit.data.batches import _checked, _file_of
from modelaudit.distributed import gather, is_distributed, rank, world_size
from modelaudit.errors import InvalidInputError
from modelaudit.explainers import explain
from modelaudit.explainers.base import class_names_of
from modelaudit.measure._validate import Region, as_region, check_maps
from modelaudit.measure.calibration import localization_ceiling
from modelaudit.measure.localization import (
    chance_level,
    iou,
    mass_in_box,
    mass_in_mask,
    pointing_game,
)
from modelaudit.measure.offobject_sums import OffObjectSums
from modelaudit.measure.scan_parts import (
    PER_SAMPLE,
    Kept,
    Scan,
    ScanPart,
    grid_basis,
    keep_rows,
    merge_scans,
)

__all__ = ["Kept", "Scan", "ScanPart", "merge_scans", "scan", "scan_part"]

TRIM_EVERY = 8
"""Batches between two :func:`release_freed_memory` calls of a scan."""

QUIET_ENV = "MODELAUDIT_QUIET"
"""Set (to anything but ``0``) to hide the progress bar by default (pytest ``-q`` does)."""

KEEP = 8
"""Samples whose image, map and region a scan keeps for the report, at each end: the least
mass on their object and the most (and, for up to 32 classes, each class's least-mass
sample as well; :func:`~modelaudit.measure.scan_parts.keep_rows`)."""


@dataclasses.dataclass(frozen=True)
class _Settings:
    """How to explain and measure: :func:`scan`'s options."""

    method: str
    layer: Any
    target: str
    region: str
    batch_size: int
    tolerance: float
    keep: int
    class_names: Sequence[str] | None
    num_classes: int | None
    progress: bool | None
    options: dict[str, Any]


def scan(
    model: nn.Module,
    data: Iterable[Any],
    *,
    method: str = "layercam",
    layer: Any = None,
    target: Literal["label", "predicted"] = "label",
    region: Literal["auto", "boxes", "masks"] = "auto",
    batch_size: int = 32,
    tolerance: float = 0,
    keep: int = KEEP,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Scan:
    """Explain ``data`` batch by batch and keep the per-sample localization values.

    Under ``torch.distributed`` every rank scans its shard and gets the merged scan of the
    whole dataset (module doc, "Several processes").

    Args:
        model: the classifier (modes and gradients restored by the explainer).
        data: a ``Dataset`` of ``(image, target)``, a ``DataLoader`` or an iterable of
            batches, as :func:`modelaudit.data.iter_batches` reads them; targets carry the
            label and a box and/or a mask.
        method: the explanation method (:func:`modelaudit.explain` names it).
        layer: the explained layer (default: the method's choice on the first batch,
            then the same layer for every batch).
        target: explain the ``"label"`` (the true class) or the ``"predicted"`` class.
        region: measure against ``"boxes"``, ``"masks"``, or ``"auto"``: the masks when
            the data has them (the object's own pixels), else the boxes.
        batch_size: images per batch, for a ``Dataset``.
        tolerance: the pointing game's tolerance in pixels.
        keep: samples kept for the report's pictures (the least mass on their object).
        class_names: names of the classes (default: the data's ``classes``, else the
            model's ``class_names`` or Hugging Face ``config.id2label``).
        num_classes: if given, every label must lie in ``[0, num_classes)``.
        progress: show a progress bar (default: when stderr is a terminal, on rank 0).
        **options: the explainer's options (``reshape=``, ``pass_size=``...).

    Returns:
        a :class:`Scan`.

    Raises:
        InvalidInputError: bad options, no data, a sample without the region asked for,
            or a bad box or label (the message names the sample); under
            ``torch.distributed``, on every rank when any rank's shard fails.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchvision import tv_tensors
        >>> from modelaudit.data import Batch
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> box = tv_tensors.BoundingBoxes([[0, 0, 4, 8]], format="XYXY", canvas_size=(8, 8))
        >>> batch = Batch(torch.rand(1, 3, 8, 8), torch.tensor([1]), boxes=box)
        >>> found = scan(net, [batch], method="gradcam", layer="0")
        >>> found.chance.tolist(), found.labels.tolist()
        ([0.5], [1])
    """
    settings = _Settings(
        method, layer, target, region, batch_size, tolerance, keep, class_names,
        num_classes, progress, dict(options),
    )  # fmt: skip
    _check_options(target, region, keep)
    plan = _plan(data, None)
    if plan.sharded and is_distributed():
        return merge_scans(_gathered(model, data, plan, settings))
    return merge_scans([_read(model, data, plan, settings)])


def _gathered(model: nn.Module, data: Any, plan: _Plan, settings: _Settings) -> list[Any]:
    """Every rank's part, on every rank; a rank's error raised on all of them."""
    try:
        outcome: ScanPart | _Failure | None = _read(model, data, plan, settings)
        error: Exception | None = None
    except Exception as err:  # raised on every rank below, so that none waits forever
        outcome, error = _Failure(rank(), type(err).__name__, str(err)), err
    parts = gather(outcome)
    failed = [p for p in parts if isinstance(p, _Failure)]
    if error is not None:
        raise error
    if failed:
        f = failed[0]
        kind = InvalidInputError if f.kind == "InvalidInputError" else RuntimeError
        raise kind(f"rank {f.rank}'s shard failed ({f.kind}): {f.message}")
    return parts


def scan_part(
    model: nn.Module,
    data: Iterable[Any],
    *,
    shard: tuple[int, int] | None = None,
    method: str = "layercam",
    layer: Any = None,
    target: Literal["label", "predicted"] = "label",
    region: Literal["auto", "boxes", "masks"] = "auto",
    batch_size: int = 32,
    tolerance: float = 0,
    keep: int = KEEP,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> ScanPart | None:
    """Scan one share of ``data``, for :func:`merge_scans` (no gathering, no merging).

    Which share: ``shard=(rank, world_size)`` of a map-style ``Dataset`` (its positions
    :func:`modelaudit.distributed.shard` lists); a ``DataLoader`` whose sampler is a
    ``DistributedSampler``: that sampler's samples (padding repeats skipped); with no
    ``shard`` under ``torch.distributed``: this rank's shard; otherwise all of ``data``.
    ``indices`` are dataset positions. The other arguments are :func:`scan`'s.

    Returns:
        the part, or None when the share is empty (fewer samples than ranks).

    Raises:
        InvalidInputError: as :func:`scan`, or ``shard`` given for data that is not a
            map-style ``Dataset`` with a length, or a bad ``shard``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> from torch.utils.data import StackDataset
        >>> target = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.0, 0.0, 4.0, 8.0]])}
        >>> data = StackDataset(torch.rand(5, 3, 8, 8), [target] * 5)  # (image, target) items
        >>> part = scan_part(net, data, shard=(1, 2), method="gradcam", layer="0")
        >>> part.indices.tolist(), part.coords.shape
        ([1, 3], torch.Size([2, 8, 8]))
    """
    _check_options(target, region, keep)
    settings = _Settings(
        method, layer, target, region, batch_size, tolerance, keep, class_names,
        num_classes, progress, dict(options),
    )  # fmt: skip
    return _read(model, data, _plan(data, shard), settings)


@dataclasses.dataclass(frozen=True)
class _Failure:
    """A rank's error, gathered so that every rank raises it."""

    rank: int
    kind: str
    message: str


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What to read: all of the data, dataset positions, or a sampler's share."""

    positions: list[int] | None  # dataset positions to read (a shard), or None
    remap: list[int] | None  # the stream's positions -> dataset positions
    sharded: bool  # the ranks read different samples: gather and merge


def _plan(data: Any, shard: tuple[int, int] | None) -> _Plan:
    """Which samples this process reads (the rule in :func:`scan_part`)."""
    sampler = getattr(data, "sampler", None) if isinstance(data, DataLoader) else None
    if isinstance(sampler, DistributedSampler):
        if shard is not None:
            raise InvalidInputError(
                f"shard={shard!r} with a DataLoader whose sampler is a DistributedSampler: "
                "the sampler already says which samples to read; drop shard="
            )
        n, r, w = len(sampler.dataset), sampler.rank, sampler.num_replicas  # type: ignore[arg-type]
        own = [int(i) for k, i in enumerate(sampler) if r + k * w < n]  # padding: k past n
        return _Plan(None, own, True)
    if shard is None and not is_distributed():
        return _Plan(None, None, False)
    sized = isinstance(data, Dataset) and not isinstance(data, IterableDataset)
    length = count(data) if sized else None
    if length is None:
        if shard is not None:
            raise InvalidInputError(
                f"shard={shard!r} needs a map-style Dataset with a len(); got "
                f"{type(data).__name__} (give a DataLoader a DistributedSampler instead)"
            )
        return _Plan(None, None, False)  # not shardable: every rank reads it whole
    r, w = shard if shard is not None else (rank(), world_size())
    if not (isinstance(r, int) and isinstance(w, int) and 0 <= r < w):
        raise InvalidInputError(
            f"shard must be (rank, world_size) with 0 <= rank < world_size; got {shard!r}"
        )
    return _Plan(distributed.shard(length, rank=r, world_size=w), None, True)


def _read(model: nn.Module, data: Any, plan: _Plan, settings: _Settings) -> ScanPart | None:
    """Stream the planned samples through the explainer into one :class:`ScanPart`."""
    s = settings
    if (plan.positions is not None and not plan.positions) or (
        plan.remap is not None and not plan.remap
    ):
        return None  # an empty shard (a DistributedSampler's share of a tiny dataset)
    need = () if s.region == "auto" else (s.region,)
    device = next((p.device for p in model.parameters()), None)
    batches = _batches(data, plan, s, need, device)
    names = s.class_names if s.class_names is not None else _names_of(data)
    names = names if names is not None else class_names_of(model)
    acc = _Accumulator(s.keep, tuple(str(n) for n in names) if names is not None else None)
    total = len(plan.positions if plan.positions is not None else plan.remap or []) or count(data)
    for k, (batch, bar) in enumerate(_with_progress(batches, total, s.progress)):
        explained = None if s.target == "predicted" else batch.labels
        chosen = s.layer if acc.meta is None else acc.layer  # the first batch's choice
        maps = explain(s.method, model, batch.images, explained, chosen, **s.options)
        acc.add(maps, batch, s.region, s.tolerance)
        bar.update(len(batch))
        del maps
        if k % TRIM_EVERY == TRIM_EVERY - 1:
            release_freed_memory()
    if acc.meta is None:  # the share yielded no batch
        return None
    return acc.part(s.tolerance, dict(s.options))


def _batches(
    data: Any, plan: _Plan, s: _Settings, need: tuple[str, ...], device: Any
) -> Iterator[Batch]:
    """The planned batches, their ``indices`` dataset positions."""
    if plan.positions is not None:
        stream = _shard_batches(data, plan.positions, s.batch_size, s.num_classes)
        return _checked(stream, need, data, device)
    batches = iter_batches(
        data, batch_size=s.batch_size, num_classes=s.num_classes, need=need, device=device
    )
    return batches if plan.remap is None else _remapped(batches, plan.remap)


def _shard_batches(
    dataset: Any, positions: list[int], batch_size: int, num_classes: int | None
) -> Iterator[Batch]:
    """``iter_batches`` of a Dataset, reading only ``positions`` (a shard)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int; got {batch_size!r}.")
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        names = [_file_of(dataset, i) for i in chunk]
        items = [dataset[i] for i in chunk]
        yield collate(items, indices=chunk, num_classes=num_classes, names=names)


def _remapped(batches: Iterator[Batch], remap: list[int]) -> Iterator[Batch]:
    """A sampler's batches with dataset positions; the padding repeats left out."""
    for batch in batches:
        positions = batch.indices.tolist()
        rows = [k for k, i in enumerate(positions) if i < len(remap)]
        if not rows:
            continue
        keep = torch.tensor(rows, device=batch.images.device)
        yield Batch(
            images=batch.images[keep],
            labels=batch.labels[keep],
            boxes=_rows_of(batch.boxes, keep),
            masks=_rows_of(batch.masks, keep),
            indices=torch.tensor([remap[positions[k]] for k in rows], dtype=torch.long),
        )


def _rows_of(value: Any, rows: torch.Tensor) -> Any:
    """Some rows of a tv_tensor (still that tv_tensor), or None."""
    return None if value is None else tv_tensors.wrap(value[rows], like=value)


def _check_options(target: str, region: str, keep: int) -> None:
    if target not in ("label", "predicted"):
        raise InvalidInputError(f"target must be 'label' or 'predicted'; got {target!r}")
    if region not in ("auto", "boxes", "masks"):
        raise InvalidInputError(f"region must be 'auto', 'boxes' or 'masks'; got {region!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise InvalidInputError(f"keep must be an int >= 0 (samples drawn); got {keep!r}")


def _names_of(data: Any) -> Sequence[str] | None:
    """The data's class names: ``classes`` of the dataset (or of a DataLoader's dataset)."""
    for source in (data, getattr(data, "dataset", None)):
        found = getattr(source, "classes", None)
        if isinstance(found, Sequence) and not isinstance(found, str):
            return [str(c) for c in found]
    return None


class _Bar:
    """tqdm's bar, or nothing."""

    def __init__(self, total: int | None, show: bool) -> None:
        self._bar = None
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="img", desc="modelaudit scan", file=sys.stderr)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _with_progress(
    batches: Iterator[Any], total: int | None, progress: bool | None
) -> Iterator[tuple[Any, _Bar]]:
    """Each batch with the bar to advance (shown per the rule in the module doc)."""
    quiet = os.environ.get(QUIET_ENV, "").strip() not in ("", "0")
    default = _is_terminal() and distributed.is_main() and not quiet
    show = progress if progress is not None else default
    bar = _Bar(total, bool(show))
    try:
        for batch in batches:
            yield batch, bar
    finally:
        bar.close()


def release_freed_memory() -> bool:
    """Hand the memory the C allocator holds freed back to the system (glibc's
    ``malloc_trim``); False where there is no glibc.

    A scan keeps small tensors per batch between the large ones each batch frees; glibc
    then keeps the freed heap, so the resident size of a long scan grew by about 50 KB per
    image (resnet18, 112 px) although its live data did not. Trimming every
    :data:`TRIM_EVERY` batches keeps the peak flat (``bench/throughput.py``, part 2).

    Example:
        >>> release_freed_memory() in (True, False)
        True
    """
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC is False:
        return False
    _LIBC.malloc_trim(0)
    return True


_LIBC: Any = None


def _plural(kind: str) -> str:
    return {"box": "boxes", "mask": "masks"}.get(kind, f"{kind}s")


def _is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class _Accumulator:
    """The per-sample values of the batches so far, the region sum and the kept samples."""

    def __init__(self, keep: int, names: tuple[str, ...] | None) -> None:
        self.keep = keep
        self.names = names
        self.layer: Any = None
        self.meta: tuple[str, tuple[int, int], tuple[int, int]] | None = None  # method, grid, size
        self.null_error = 0.0
        self.values: dict[str, list[torch.Tensor]] = {k: [] for k in PER_SAMPLE}
        self.coords: list[torch.Tensor] = []
        self.totals: list[torch.Tensor] = []
        self.extents: list[torch.Tensor] = []
        self.indices: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.region_sum: torch.Tensor | None = None
        self.kind = ""
        self.kept: dict[str, torch.Tensor] | None = None
        self.classes_seen: set[int] = set()
        self.seen = 0

    def add(self, maps: torch.Tensor, batch: Any, region: str, tolerance: float) -> None:
        """Measure one batch's maps against its regions and drop the maps."""
        m = check_maps(maps).cpu()
        size = (int(m.shape[1]), int(m.shape[2]))
        given, reg = _batch_region(batch, region, size)
        if self.meta is None:
            grid = getattr(maps, "grid", None) or size
            self.meta = (str(getattr(maps, "method", "")), grid, size)
            self.layer, self.kind = getattr(maps, "layer", None), reg.kind
            self.basis = grid_basis(size, grid)
            self.pinv = (torch.linalg.pinv(self.basis[0]), torch.linalg.pinv(self.basis[1]))
            self.region_sum = torch.zeros(size, dtype=torch.float64)
            self.off_object = OffObjectSums(size)
            self.image_sum = torch.zeros(batch.images.shape[1:], dtype=torch.float64)
        elif (size, reg.kind) != (self.meta[2], self.kind):
            raise InvalidInputError(
                f"sample {int(batch.indices[0])}: maps of {size} against {_plural(reg.kind)}, but the "
                f"first batch had {self.meta[2]} against {_plural(self.kind)}; every image must have "
                "the same size and the same kind of region"
            )
        values = _measure(m, given, reg, tolerance, self.meta[1])
        for key in PER_SAMPLE:
            self.values[key].append(values[key])
        self._project(m)
        self.extents.append(_extents(reg))
        assert self.region_sum is not None
        self.region_sum += reg.masks.double().sum(dim=0)
        self.off_object.add(m, reg.masks)
        self.image_sum += batch.images.detach().double().sum(dim=0).cpu()
        targets = getattr(maps, "targets", None)
        labels = targets if isinstance(targets, torch.Tensor) and targets.dim() == 1 else None
        self.labels.append((batch.labels if labels is None else labels).cpu().long())
        self.indices.append(batch.indices.cpu().long())
        self._keep_worst(m, batch, reg, values["mass"])
        self.seen += len(batch)

    def _project(self, m: torch.Tensor) -> None:
        """Keep each map's grid coordinates and mass total; track the projection error."""
        (a, b), (pa, pb) = self.basis, self.pinv
        flat = m.double().clamp(min=0)
        coords = pa @ flat @ pb.T
        top = flat.flatten(1).amax(dim=1).clamp(min=1e-300)
        error = ((a @ coords @ b.T - flat).abs().flatten(1).amax(dim=1) / top).max()
        self.null_error = max(self.null_error, float(error))
        self.coords.append(coords)
        self.totals.append(flat.sum(dim=(1, 2)))

    def _keep_worst(self, m: torch.Tensor, batch: Any, reg: Region, mass: torch.Tensor) -> None:
        if self.keep == 0:
            return
        fresh = {
            "rows": torch.arange(self.seen, self.seen + len(batch)),
            "mass": mass,
            "images": batch.images.detach().cpu(),
            "maps": m.detach().cpu().float(),
            "region": (reg.boxes if reg.boxes is not None else reg.masks).cpu(),
            "targets": self.labels[-1],
        }
        if self.kept is not None:
            fresh = {k: torch.cat([self.kept[k], v]) for k, v in fresh.items()}
        self.classes_seen.update(self.labels[-1].tolist())
        order = keep_rows(fresh["mass"], fresh["targets"], self.keep, len(self.classes_seen))
        self.kept = {k: v[order] for k, v in fresh.items()}

    def part(self, tolerance: float, options: dict[str, Any]) -> ScanPart:
        """The :class:`ScanPart` of every batch added."""
        assert self.meta is not None and self.region_sum is not None
        values = {k: torch.cat(v) for k, v in self.values.items()}
        method, grid, size = self.meta
        coords, totals = torch.cat(self.coords), torch.cat(self.totals)
        self.coords = []
        return ScanPart(
            method=method,
            layer=self.layer,
            grid=grid,
            size=size,
            kind=self.kind,
            tolerance=float(tolerance),
            keep=self.keep,
            indices=torch.cat(self.indices),
            labels=torch.cat(self.labels),
            extents=torch.cat(self.extents),
            coords=coords,
            totals=totals,
            region_sum=self.region_sum,
            off_object=self.off_object,
            image_sum=self.image_sum,
            null_error=self.null_error,
            kept=self._kept(),
            class_names=self.names,
            options=options,
            **values,
        )

    def _kept(self) -> Kept:
        k = self.kept
        if k is None:
            empty = torch.empty(0)
            return Kept(empty.long(), empty, empty, None, None, empty.long(), self.names)
        is_box = self.kind == "box"
        return Kept(
            rows=k["rows"],
            images=k["images"],
            maps=k["maps"],
            boxes=k["region"] if is_box else None,
            masks=None if is_box else k["region"],
            targets=k["targets"],
            class_names=self.names,
        )


def _batch_region(batch: Any, region: str, size: tuple[int, int]) -> tuple[torch.Tensor, Region]:
    """The batch's boxes or masks as a plain tensor, and validated."""
    use_boxes = region == "boxes" or (region == "auto" and batch.masks is None)
    raw = batch.boxes if use_boxes else batch.masks
    if raw is None:
        raise InvalidInputError(
            f"sample {int(batch.indices[0])}: the data carries no boxes and no masks; "
            "localization needs the object's box or mask"
        )
    given = raw.as_subclass(torch.Tensor).cpu()
    given = given if use_boxes else given.bool()
    try:
        reg = as_region(given, size, len(batch))
    except InvalidInputError as err:
        raise InvalidInputError(
            f"batch starting at sample {int(batch.indices[0])}: {err}"
        ) from None
    return given, reg


def _measure(
    m: torch.Tensor, given: torch.Tensor, reg: Region, tolerance: float, grid: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """The per-sample values of one batch, computed as the in-memory checks compute them."""
    size = (int(m.shape[1]), int(m.shape[2]))
    point_at = reg.masks if reg.boxes is None else reg.boxes
    mass = mass_in_mask(m, reg.masks) if reg.kind == "mask" else mass_in_box(m, given)
    return {
        "mass": mass,
        "pointing": pointing_game(m, point_at, tolerance=tolerance),
        "iou": iou(m, point_at),
        "chance": chance_level(reg.masks),
        "pointing_chance": chance_level(reg.masks, tolerance=tolerance),
        "ceiling": localization_ceiling(reg.masks, size, grid=grid),
    }


def _extents(reg: Region) -> torch.Tensor:
    """``(N, 2)`` object heights and widths: box sides, or rows and columns a mask spans."""
    if reg.boxes is not None:
        b = reg.boxes.float()
        return torch.stack([b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]], dim=1)
    rows, cols = reg.masks.any(dim=2), reg.masks.any(dim=1)
    return torch.stack([rows.sum(dim=1), cols.sum(dim=1)], dim=1).float()

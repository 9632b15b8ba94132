"""Scans of disjoint shards merge into the scan of the whole dataset.

Ground truth: the whole dataset scanned in one process (itself checked against the
in-memory maps in ``test_measure_scan.py``) and, independently, the in-memory maps of all
the images at once (the shuffled-box null from :func:`shuffled_null`, the least-mass
samples from a sort). Data: the zoo's trained shapes-cnn, LayerCAM at its 16x16 layer, the
zoo's generated boxes and masks; 41 images, so that 2 and 3 shards are uneven and a
``DistributedSampler`` pads (its repeats must not count twice).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import modelaudit as ma
from modelaudit import zoo
from modelaudit.data import collate
from modelaudit.errors import InvalidInputError
from modelaudit.measure.calibration import shuffled_null
from modelaudit.measure.scan_parts import ScanPart, merge_scans
from modelaudit.measure.scanning import Scan, scan, scan_part

LAYER = "features.13"
N = 41
KEEP = 6


ShapesDataset = zoo.ShapesDataset  # the zoo's shapes as (image, tv_tensors target) items


@pytest.fixture(scope="module")
def data() -> zoo.ShapesData:
    return zoo.shapes_data(N, seed=5)


def _scan_options() -> dict[str, Any]:
    return {"method": "layercam", "layer": LAYER, "keep": KEEP, "progress": False}


@pytest.fixture(scope="module")
def whole(model: torch.nn.Module, data: zoo.ShapesData) -> Scan:
    return scan(model, ShapesDataset(data), batch_size=8, **_scan_options())


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats and tensors to 1e-6 (the sums differ in their order only)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert (a.shape, a.dtype) == (b.shape, b.dtype), where
        if a.dtype == torch.bool or not a.is_floating_point():
            assert torch.equal(a, b), where
        else:
            assert a.numel() == 0 or float((a.double() - b.double()).abs().max()) <= 1e-6, where
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6) or (math.isnan(a) and math.isnan(b)), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{k}]")
    else:
        assert a == b, where


def _verdicts(found: Scan) -> list[dict[str, Any]]:
    """The four localization checks' records on a scan, as JSON (pass or fail)."""
    calls = [
        lambda: ma.assert_looks_at_object(found),
        lambda: ma.assert_pointing_game(found, at_least=0.55, aggregate="mean"),
        lambda: ma.assert_mass_in_box(found, at_least=0.9, per_class=True),
        lambda: ma.assert_iou(found, at_least=0.1, aggregate="mean"),
    ]
    out = []
    for call in calls:
        try:
            out.append(call().to_json())
        except ma.AuditFailure as failure:
            out.append(failure.record.to_json())
    return out


def test_two_dataset_shards_merge_into_the_whole_scan(
    model: torch.nn.Module, data: zoo.ShapesData, whole: Scan, expected_kept
) -> None:
    parts = [
        scan_part(model, ShapesDataset(data), shard=(r, 2), batch_size=8, **_scan_options())
        for r in (0, 1)
    ]
    assert all(isinstance(p, ScanPart) for p in parts)
    assert [p.indices.tolist() for p in parts if p is not None] == [
        list(range(0, N, 2)),
        list(range(1, N, 2)),
    ]
    merged = merge_scans(parts)
    _same(merged, whole)
    # independent ground truth: the in-memory maps of all 41 images at once
    maps = ma.layercam(model, data.images, target=data.labels, layer=LAYER)
    assert merged.null is not None
    assert float((merged.null - shuffled_null(maps, data.boxes)).abs().max()) <= 1e-6
    worst = expected_kept(ma.mass_in_box(maps, data.boxes), data.labels, KEEP)
    assert merged.kept.rows.tolist() == worst
    assert merged.indices.tolist() == list(range(N))
    _same(_verdicts(merged), _verdicts(whole))
    # the order of the parts does not matter
    _same(merge_scans(parts[::-1]), whole)


@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_shards_with_padding_merge_into_the_whole_scan(
    model: torch.nn.Module, data: zoo.ShapesData, shuffle: bool
) -> None:
    dataset = ShapesDataset(data, masks=True)
    parts = []
    for r in range(3):  # 41 = 3 * 14 - 1: the sampler repeats one sample
        sampler = DistributedSampler(dataset, num_replicas=3, rank=r, shuffle=shuffle, seed=3)
        loader = DataLoader(dataset, batch_size=5, sampler=sampler, collate_fn=collate)
        parts.append(scan_part(model, loader, **_scan_options()))
    got = sorted(i for p in parts if p is not None for i in p.indices.tolist())
    assert got == list(range(N))  # every sample once: the padding repeat is skipped
    reference = scan(model, dataset, batch_size=8, **_scan_options())
    assert reference.kind == "mask"
    merged = merge_scans(parts)
    _same(merged, reference)
    _same(_verdicts(merged), _verdicts(reference))


def test_shards_smaller_than_the_world_are_empty_parts(
    model: torch.nn.Module, data: zoo.ShapesData
) -> None:
    small = ShapesDataset(data[:3])
    parts = [scan_part(model, small, shard=(r, 5), **_scan_options()) for r in range(5)]
    assert [p is None for p in parts] == [False, False, False, True, True]
    _same(merge_scans(parts), scan(model, small, **_scan_options()))


def test_parts_that_cannot_merge_are_a_clear_error(
    model: torch.nn.Module, data: zoo.ShapesData
) -> None:
    small = ShapesDataset(data[:4])
    part = scan_part(model, small, shard=(0, 2), **_scan_options())
    other = scan_part(model, small, shard=(1, 2), **{**_scan_options(), "layer": "features.9"})
    with pytest.raises(InvalidInputError, match="sample 0 is in more than one part"):
        merge_scans([part, part])
    with pytest.raises(InvalidInputError, match=r"differ in layer.*features\.9"):
        merge_scans([part, other])
    with pytest.raises(InvalidInputError, match="no samples"):
        merge_scans([None, None])
    with pytest.raises(InvalidInputError, match="needs a map-style Dataset"):
        scan_part(model, [small[0]], shard=(0, 2), **_scan_options())
    with pytest.raises(InvalidInputError, match="0 <= rank < world_size"):
        scan_part(model, small, shard=(2, 2), **_scan_options())
    sampler = DistributedSampler(small, num_replicas=2, rank=0, shuffle=False)
    loader = DataLoader(small, batch_size=2, sampler=sampler, collate_fn=collate)
    with pytest.raises(InvalidInputError, match="drop shard="):
        scan_part(model, loader, shard=(0, 2), **_scan_options())

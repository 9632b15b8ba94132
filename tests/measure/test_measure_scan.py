"""The streamed scan: per-sample values and verdicts equal the in-memory ones on the whole batch.

Ground truth is the in-memory computation on the concatenated data (the zoo's trained
shapes-cnn, LayerCAM at its 16x16 layer, the zoo's generated boxes and masks), which the
other tests of measure/ and checks/ check by hand.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader

import modelaudit as ma
from modelaudit import zoo
from modelaudit.data import collate
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.measure import scanning
from modelaudit.measure.calibration import calibrated_score, localization_ceiling, shuffled_null
from modelaudit.measure.offobject import off_object_mass
from modelaudit.measure.scanning import Scan, scan

LAYER = "features.13"
N = 40


ShapesDataset = zoo.ShapesDataset  # the zoo's shapes as (image, tv_tensors target) items


@pytest.fixture(scope="module")
def data() -> zoo.ShapesData:
    return zoo.shapes_data(N, seed=11)


@pytest.fixture(scope="module")
def maps(model: torch.nn.Module, data: zoo.ShapesData) -> torch.Tensor:
    return ma.layercam(model, data.images, target=data.labels, layer=LAYER)


@pytest.fixture(scope="module")
def scanned(model: torch.nn.Module, data: zoo.ShapesData) -> Scan:
    return scan(model, ShapesDataset(data), method="layercam", layer=LAYER, batch_size=7, keep=5)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert float((a.double() - b.double()).abs().max()) <= 1e-6


def test_per_sample_values_equal_the_in_memory_ones(
    scanned: Scan, maps: torch.Tensor, data: zoo.ShapesData
) -> None:
    boxes, size = data.boxes, (64, 64)
    assert (scanned.grid, scanned.size, scanned.kind, len(scanned)) == ((16, 16), size, "box", N)
    assert scanned.indices.tolist() == list(range(N))
    assert torch.equal(scanned.labels, data.labels)
    assert scanned.class_names == data.class_names  # the dataset's classes
    _close(scanned.mass, ma.mass_in_box(maps, boxes))
    _close(scanned.pointing, ma.pointing_game(maps, boxes))
    _close(scanned.iou, ma.iou(maps, boxes))
    _close(scanned.chance, ma.chance_level(boxes, size))
    _close(scanned.ceiling, localization_ceiling(boxes, size, grid=(16, 16)))
    assert scanned.null is not None
    _close(scanned.null, shuffled_null(maps, boxes))
    assert scanned.null_error < 1e-5  # LayerCAM maps are their grid upsampled (float32)


def test_the_assertions_decide_on_a_scan_as_on_the_maps(
    scanned: Scan, maps: torch.Tensor, data: zoo.ShapesData
) -> None:
    pairs = [
        (ma.assert_looks_at_object(maps, data.boxes), ma.assert_looks_at_object(scanned)),
        (
            ma.assert_pointing_game(maps, data.boxes, at_least=0.55, aggregate="mean"),
            ma.assert_pointing_game(scanned, at_least=0.55, aggregate="mean"),
        ),
        (
            ma.assert_mass_in_box(maps, data.boxes, at_least=0.3, aggregate=0.5),
            ma.assert_mass_in_box(scanned, at_least=0.3, aggregate=0.5),
        ),
        (
            ma.assert_iou(maps, data.boxes, at_least=0.1, aggregate="mean"),
            ma.assert_iou(scanned, at_least=0.1, aggregate="mean"),
        ),
    ]
    for memory, streamed in pairs:
        assert (streamed.check, streamed.rule, streamed.passed) == (
            memory.check,
            memory.rule,
            memory.passed,
        )
        _close(torch.tensor(streamed.values), torch.tensor(memory.values))
        assert streamed.obtained == pytest.approx(memory.obtained, abs=1e-6)
        assert streamed.failing == memory.failing
        assert [dataclasses.astuple(c)[:3] for c in streamed.per_class] == [
            dataclasses.astuple(c)[:3] for c in memory.per_class
        ]
    looks_memory, looks_streamed = pairs[0]
    for key in ("null_mean", "null_p", "mass_in_box_mean", "ceiling_mean"):
        assert looks_streamed.details[key] == pytest.approx(looks_memory.details[key], abs=1e-6)


def test_a_failing_verdict_is_the_same_on_a_scan(scanned: Scan, maps: torch.Tensor, data) -> None:
    with pytest.raises(AuditFailure) as memory:
        ma.assert_mass_in_box(maps, data.boxes, at_least=0.9, per_class=True)
    with pytest.raises(AuditFailure) as streamed:
        ma.assert_mass_in_box(scanned, at_least=0.9, per_class=True)
    a, b = memory.value.record, streamed.value.record
    assert (a.failing, [c.label for c in a.per_class if not c.passed]) == (
        b.failing,
        [c.label for c in b.per_class if not c.passed],
    )
    # the scan knows the class names from the dataset
    assert [c.name for c in b.per_class] == list(data.class_names)
    assert b.details["shown_items"] == scanned.kept.rows.tolist()


def test_a_dataloader_and_masks_give_the_in_memory_values(
    model: torch.nn.Module, data: zoo.ShapesData, maps: torch.Tensor
) -> None:
    loader = DataLoader(ShapesDataset(data, masks=True), batch_size=9, collate_fn=collate)
    found = scan(model, loader, method="layercam", layer=LAYER, tolerance=3, progress=False)
    assert found.kind == "mask"
    _close(found.mass, ma.measure.mass_in_mask(maps, data.masks))
    _close(found.pointing, ma.pointing_game(maps, data.masks, tolerance=3))
    _close(found.pointing_chance, ma.chance_level(data.masks, tolerance=3))
    assert found.null is not None
    _close(found.null, shuffled_null(maps, data.masks))
    calibrated = calibrated_score(found.mass, found.chance, found.ceiling)
    rec = ma.assert_looks_at_object(found)
    _close(torch.tensor(rec.values), calibrated)
    memory = ma.assert_looks_at_object(maps, data.masks)
    assert rec.details["null_p"] == pytest.approx(memory.details["null_p"], abs=1e-6)


def test_where_the_model_looks_instead_is_the_whole_datasets(
    scanned: Scan, maps: torch.Tensor, data: zoo.ShapesData
) -> None:
    whole = off_object_mass(maps, data.boxes)
    found = scanned.off_object
    assert (found.region, found.count) == (whole.region, whole.count)
    for name in ("share", "area", "expected", "off_object"):
        assert getattr(found, name) == pytest.approx(getattr(whole, name), abs=1e-6)
    for name in ("mean_map", "mean_region", "off_map"):
        _close(getattr(found, name), getattr(whole, name))
    _close(scanned.mean_image, data.images.mean(dim=0))
    with pytest.raises(AuditFailure) as memory:
        ma.assert_mass_in_box(maps, data.boxes, at_least=0.9)
    with pytest.raises(AuditFailure) as streamed:
        ma.assert_mass_in_box(scanned, at_least=0.9)
    line = next(x for x in str(memory.value).splitlines() if "looks instead" in x)
    assert line in str(streamed.value).splitlines()
    assert streamed.value.record.overview is not None


def test_only_the_least_mass_samples_and_each_classes_least_are_kept(
    scanned: Scan, maps: torch.Tensor, expected_kept
) -> None:
    order = expected_kept(scanned.mass, scanned.labels, 5)
    assert scanned.kept.rows.tolist() == order and len(order) > 5  # a class beyond the 5
    assert torch.allclose(scanned.kept.maps, maps[order].as_subclass(torch.Tensor))
    assert scanned.kept.boxes is not None
    assert scanned.kept.images.shape == (len(order), 3, 64, 64)
    # nothing else grows with N: per-sample numbers only (and the (C, H, W) mean image)
    for field in dataclasses.fields(scanned):
        value = getattr(scanned, field.name)
        if isinstance(value, torch.Tensor) and field.name != "mean_image":
            assert value.shape[0] == N and value.numel() <= 2 * N, field.name


def test_the_progress_bar_follows_the_rule(
    model: torch.nn.Module, data: zoo.ShapesData, capsys: pytest.CaptureFixture[str]
) -> None:
    small = ShapesDataset(data[:6])
    scan(model, small, method="layercam", layer=LAYER, batch_size=4)  # captured: no bar
    assert capsys.readouterr().err == ""
    scan(model, small, method="layercam", layer=LAYER, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "modelaudit scan" in err and "6/6" in err


def test_a_terminal_shows_the_bar_unless_pytest_was_quiet(
    model: torch.nn.Module,
    data: zoo.ShapesData,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = ShapesDataset(data[:6])
    monkeypatch.setattr(scanning, "_is_terminal", lambda: True)  # as if stderr were one
    monkeypatch.delenv(scanning.QUIET_ENV, raising=False)
    scan(model, small, method="layercam", layer=LAYER, batch_size=4)
    assert "6/6" in capsys.readouterr().err
    monkeypatch.setenv(scanning.QUIET_ENV, "1")  # what the plugin sets under -q
    scan(model, small, method="layercam", layer=LAYER, batch_size=4)
    assert capsys.readouterr().err == ""


def test_bad_use_is_a_clear_error(model: torch.nn.Module, scanned: Scan, data) -> None:
    with pytest.raises(InvalidInputError, match="without boxes"):
        ma.assert_mass_in_box(scanned, data.boxes, at_least=0.5)
    with pytest.raises(InvalidInputError, match="without boxes"):
        ma.assert_looks_at_object(scanned, data.boxes)
    with pytest.raises(InvalidInputError, match=r"measured with tolerance=0\.0"):
        ma.assert_pointing_game(scanned, tolerance=15, at_least=0.5)
    with pytest.raises(InvalidInputError, match=r"measured with threshold=0\.5") as info:
        ma.assert_iou(scanned, threshold="otsu", at_least=0.5)
    assert "explain the images in memory" in str(info.value)  # scan has no threshold=
    with pytest.raises(InvalidInputError, match=r"pass tolerance= to modelaudit\.scan"):
        ma.assert_pointing_game(scanned, tolerance=15, at_least=0.5)
    with pytest.raises(InvalidInputError, match="boxes are missing"):
        ma.assert_mass_in_box(torch.ones(1, 4, 4), at_least=0.5)
    with pytest.raises(InvalidInputError, match="a check needs masks"):
        scan(model, ShapesDataset(data[:2]), region="masks", layer=LAYER)
    with pytest.raises(InvalidInputError, match="keep must be"):
        scan(model, ShapesDataset(data[:2]), keep=-1, layer=LAYER)
    with pytest.raises(InvalidInputError, match="yielded no images"):
        scan(model, [], layer=LAYER)

"""Failed localization checks say where the model looks instead (and carry the overview)."""

from __future__ import annotations

import pytest
import torch

import modelaudit as ma
from modelaudit.checks._maps import LOOKS_INSTEAD, where_it_looks
from modelaudit.checks.record import AuditRecord, Overview, collect_records, decide
from modelaudit.errors import AuditFailure
from modelaudit.measure._validate import as_region

BOX = [6, 6, 10, 10]  # a small central object in a 16x16 image: cells are 4x4 pixels


def bottom_right_maps(n: int = 3) -> torch.Tensor:
    """Maps with a little mass on the object and most of it in the bottom-right cell."""
    maps = torch.zeros(n, 16, 16)
    maps[:, 7:9, 7:9] = 1.0  # 4 units on the object
    maps[:, 12:, 12:] = 1.0  # 16 units in the bottom-right corner
    return maps


def boxes(n: int = 3) -> torch.Tensor:
    return torch.tensor([BOX] * n)


def test_failing_mass_in_box_says_where_the_model_looks_instead() -> None:
    with pytest.raises(AuditFailure) as info:
        ma.assert_mass_in_box(bottom_right_maps(), boxes(), at_least=0.5)
    text = str(info.value)
    line = next(ln for ln in text.splitlines() if LOOKS_INSTEAD in ln)
    assert line == (
        "  Where the model looks instead: 80% of the maps' mass lies off the object; most of "
        "it in the bottom-right corner (100% of the off-object mass in 6% of the image)"
    )
    record = info.value.record
    assert record.overview is not None
    assert record.overview.caption in line
    assert record.overview.mean_map.shape == (16, 16)
    assert record.overview.region_mask is not None and record.overview.region_mask[12:, 12:].all()
    assert record.to_json()["overview"] == record.overview.caption


@pytest.mark.parametrize("check", [ma.assert_pointing_game, ma.assert_iou])
def test_pointing_game_and_iou_say_it_too(check) -> None:  # type: ignore[no-untyped-def]
    maps = bottom_right_maps()
    maps[:, 12:, 12:] = 2.0  # the maximum off the object
    with pytest.raises(AuditFailure, match="most of it in the bottom-right corner"):
        check(maps, boxes(), at_least=0.5)


def test_a_passing_check_keeps_the_overview_but_no_failure_line() -> None:
    with collect_records() as got:
        record = ma.assert_mass_in_box(bottom_right_maps(), boxes(), at_least=0.1)
    assert record.passed and got == [record]
    assert record.overview is not None
    assert not any(LOOKS_INSTEAD in note for note in record.notes)


def test_at_most_checks_have_no_overview_and_no_line() -> None:
    # "no heat on the watermark": the region is the cue, so "off the object" would not apply
    with pytest.raises(AuditFailure) as info:
        ma.assert_mass_in_box(bottom_right_maps(), boxes(), at_most=0.1)
    assert info.value.record.overview is None
    assert LOOKS_INSTEAD not in str(info.value)


def test_the_overview_does_not_take_part_in_equality() -> None:
    ov = Overview(torch.ones(2, 2), torch.zeros(2, 2), torch.ones(2, 2), caption="x")
    a = AuditRecord("c", "assert_c", True, (1.0,), overview=ov)
    assert a == AuditRecord("c", "assert_c", True, (1.0,))
    assert "overview" not in repr(a)


def test_decide_keeps_failure_notes_only_when_the_check_fails() -> None:
    held = decide("assert_demo", "score", [0.9], at_least=0.5, notes=["a"], failure_notes=["b"])
    assert held.notes == ("a",)
    with pytest.raises(AuditFailure) as info:
        decide("assert_demo", "score", [0.1], at_least=0.5, notes=["a"], failure_notes=["b"])
    assert info.value.record.notes == ("a", "b")
    assert str(info.value).splitlines()[-2:] == ["  a", "  b"]


def test_where_it_looks_averages_the_images() -> None:
    images = torch.zeros(2, 3, 16, 16)
    images[1] = 1.0
    line, overview = where_it_looks(bottom_right_maps(2), as_region(boxes(2), (16, 16), 2), images)
    assert line.startswith(LOOKS_INSTEAD)
    assert overview.image is not None and torch.allclose(
        overview.image, torch.full((3, 16, 16), 0.5)
    )
    assert torch.equal(overview.mean_region[6:10, 6:10], torch.ones(4, 4))

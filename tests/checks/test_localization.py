"""assert_mass_in_box, assert_pointing_game, assert_iou: values, records, samples, text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modelaudit as ma
from modelaudit.checks.record import AuditRecord, collect_records
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.explainers.explanation import Explanation


def corner_maps(n_inside: int, n_outside: int, size: int = 8) -> torch.Tensor:
    """Maps with all mass in the top-left 2x2 (inside a 4x4 box) or the bottom-right 2x2."""
    maps = torch.zeros(n_inside + n_outside, size, size)
    maps[:n_inside, 1:3, 1:3] = 1.0
    maps[n_inside:, -2:, -2:] = 1.0
    return maps


def boxes(n: int) -> torch.Tensor:
    return torch.tensor([[0, 0, 4, 4]] * n)


def failure(fn, *args, **kwargs) -> AuditFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(AuditFailure) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, AssertionError)
    assert info.value.record.message == str(info.value)
    return info.value


# ---------------------------------------------------------------- records and failure text


def test_failing_mass_in_box_record_fields() -> None:
    maps = corner_maps(2, 1)
    maps[1, 0, 7] = 1.0  # sample 1: 4 of 5 units inside -> 0.8
    images = torch.rand(3, 3, 8, 8)
    err = failure(
        ma.assert_mass_in_box,
        maps,
        boxes(3),
        at_least=0.9,
        images=images,
        method="gradcam",
        layer="features.8",
    )
    rec = err.record
    assert isinstance(rec, AuditRecord)
    assert rec.check == "mass_in_box" and rec.assertion == "assert_mass_in_box"
    assert rec.passed is False
    assert rec.values == pytest.approx((1.0, 0.8, 0.0))
    assert rec.bound == 0.9 and rec.direction == "higher" and rec.aggregate == "all"
    assert rec.obtained == 0.0
    assert rec.failing == (1, 2)
    assert rec.chance == pytest.approx(16 / 64)  # the box covers 16 of 64 pixels
    assert rec.details["chance_per_sample"] == pytest.approx([0.25] * 3)
    assert rec.method == "gradcam" and rec.layer == "features.8"
    assert rec.to_json()["failing"] == [1, 2]


def test_failure_message_reads_like_approx() -> None:
    err = failure(
        ma.assert_mass_in_box,
        corner_maps(2, 1),
        boxes(3),
        at_least=0.6,
        method="gradcam",
        layer="layer4",
    )
    assert str(err).splitlines() == [
        "assert_mass_in_box: mass_in_box >= 0.6 must hold for every sample; 1 of 3 samples fail.",
        "  obtained: 0 (worst sample, index 2); mean 0.6667",
        "  expected: >= 0.6",
        "  chance:   0.25 (what a uniform map scores; mean over samples)",
        "  failing samples, worst first:",
        "    2: 0",
        "  Where the model looks instead: 33% of the maps' mass lies off the object; most of it "
        "in the bottom-right corner (100% of the off-object mass in 6% of the image)",
        "  method: gradcam, layer: layer4",
    ]


def test_long_failure_lists_are_truncated_worst_first() -> None:
    maps = torch.zeros(15, 8, 8)
    for i in range(15):  # mass inside is i / 20: sample 0 is the worst
        maps[i, 0, 0] = i
        maps[i, 7, 7] = 20 - i
    err = failure(ma.assert_mass_in_box, maps, boxes(15), at_least=0.9)
    lines = str(err).splitlines()
    assert lines[0].endswith("15 of 15 samples fail.")
    listed = [ln for ln in lines if ln.startswith("    ") and ":" in ln]
    assert [int(ln.split(":")[0]) for ln in listed] == list(range(10))
    assert listed[:3] == ["    0: 0", "    1: 0.05", "    2: 0.1"]
    assert "    ... and 5 more (all in the record's .failing)" in lines
    assert err.record.failing == tuple(range(15))
    assert err.record.values == pytest.approx(tuple(i / 20 for i in range(15)))


def test_mean_aggregation() -> None:
    rec = ma.assert_mass_in_box(corner_maps(3, 1), boxes(4), at_least=0.7, aggregate="mean")
    assert rec.passed and rec.obtained == 0.75 and rec.aggregate == "mean" and rec.failing == (3,)
    err = failure(
        ma.assert_mass_in_box, corner_maps(2, 1), boxes(3), at_least=0.7, aggregate="mean"
    )
    assert str(err).splitlines()[:2] == [
        "assert_mass_in_box: mass_in_box >= 0.7 must hold for the mean over 3 samples; "
        "1 of 3 samples fail.",
        "  obtained: 0.6667 (mean)",
    ]


def test_fraction_aggregation_boundary() -> None:
    maps = corner_maps(7, 3)  # 7 of 10 pass
    rec = ma.assert_mass_in_box(maps, boxes(10), at_least=0.5, aggregate=0.7)
    assert rec.passed and rec.obtained == 1.0 and rec.aggregate == "fraction"
    assert rec.details["required_fraction"] == 0.7 and rec.details["passing_fraction"] == 0.7
    err = failure(ma.assert_mass_in_box, maps, boxes(10), at_least=0.5, aggregate=0.75)
    assert err.record.obtained == 0.0  # the 8th best of 10
    assert str(err).splitlines()[:2] == [
        "assert_mass_in_box: mass_in_box >= 0.5 must hold for at least 75% of samples (8 of 10); "
        "7 of 10 samples (70%) satisfy it.",
        "  obtained: 0 (the 8th best of 10 samples); mean 0.7",
    ]


def test_fraction_messages_use_ordinals() -> None:
    err = failure(ma.assert_mass_in_box, corner_maps(1, 2), boxes(3), at_least=0.5, aggregate=0.5)
    assert "  obtained: 0 (the 2nd best of 3 samples); mean 0.3333" in str(err).splitlines()
    err = failure(
        ma.assert_mass_in_box, corner_maps(20, 3), boxes(23), at_least=0.5, aggregate=0.95
    )
    assert "(the 22nd best of 23 samples)" in str(err)


def test_at_most_bounds_where_the_model_must_not_look() -> None:
    watermark = torch.tensor([[6, 6, 8, 8]] * 3)
    rec = ma.assert_mass_in_box(corner_maps(3, 0), watermark, at_most=0.1)
    assert rec.passed and rec.direction == "lower" and rec.obtained == 0.0
    err = failure(ma.assert_mass_in_box, corner_maps(2, 1), watermark, at_most=0.1)
    assert err.record.failing == (2,) and err.record.obtained == 1.0
    assert err.record.chance == pytest.approx(4 / 64)
    assert str(err).startswith("assert_mass_in_box: mass_in_box <= 0.1 must hold for every sample")


def test_masks_are_accepted_and_recorded_as_masks() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, :4, :4] = True
    rec = ma.assert_mass_in_box(corner_maps(2, 0), masks, at_least=0.9)
    assert rec.check == "mass_in_mask" and rec.values == (1.0, 1.0)
    assert rec.samples is not None and rec.samples.boxes is None
    assert rec.samples.masks is not None and torch.equal(rec.samples.masks, masks)


def test_records_are_emitted_on_pass_and_fail() -> None:
    with collect_records() as got:
        ma.assert_pointing_game(corner_maps(2, 0), boxes(2), at_least=1.0)
        with pytest.raises(AuditFailure):
            ma.assert_pointing_game(corner_maps(1, 1), boxes(2), at_least=1.0)
    assert [(r.check, r.passed) for r in got] == [("pointing_game", True), ("pointing_game", False)]
    assert got[1].failing == (1,)
    assert got[0].message == (
        "assert_pointing_game: pointing_game >= 1 must hold for every sample held (all): "
        "obtained 1, chance 0.25"
    )


def test_bound_and_aggregate_validation() -> None:
    maps, b = corner_maps(1, 0), boxes(1)
    with pytest.raises(
        InvalidInputError,
        match=r"give exactly one bound as a keyword: at_least=\.\.\. \(higher is better\) or "
        r"at_most=\.\.\.",
    ):
        ma.assert_mass_in_box(maps, b)
    with pytest.raises(InvalidInputError, match="give exactly one bound"):
        ma.assert_mass_in_box(maps, b, at_least=0.1, at_most=0.9)
    with pytest.raises(
        InvalidInputError,
        match=r"aggregate must be 'all', 'mean' or a fraction of samples in \(0, 1\]; got 1.5",
    ):
        ma.assert_mass_in_box(maps, b, at_least=0.1, aggregate=1.5)
    with pytest.raises(InvalidInputError, match="aggregate must be"):
        ma.assert_mass_in_box(maps, b, at_least=0.1, aggregate="median")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="at_least must be a number; got 'high'"):
        ma.assert_mass_in_box(maps, b, at_least="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="images has 2 samples but the maps have 1"):
        ma.assert_mass_in_box(maps, b, at_least=0.1, images=torch.rand(2, 3, 8, 8))


@pytest.mark.parametrize("check", ["assert_mass_in_box", "assert_pointing_game", "assert_iou"])
@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ({"at_least": -0.1}, r"at_least=-0.1 always passes: \w+ lies in \[0, 1\], so every "
                             r"value is >= -0.1. Give at_least in \(0, 1\]."),
        ({"at_least": 0.0}, r"at_least=0 always passes"),
        ({"at_least": 1.5}, r"at_least=1.5 can never pass: \w+ lies in \[0, 1\], so no value "
                            r"is >= 1.5. Give at_least in \(0, 1\]."),
        ({"at_most": 1}, r"at_most=1 always passes: .* Give at_most in \[0, 1\)."),
        ({"at_most": -0.5}, r"at_most=-0.5 can never pass"),
    ],
)  # fmt: skip
def test_a_bound_outside_0_1_is_invalid_for_every_localization_check(
    check: str, bound: dict, message: str
) -> None:
    # rejected before any verdict, for boxes and for a bool mask (mass_in_mask) alike
    for region in (
        boxes(2),
        torch.zeros(2, 8, 8, dtype=torch.bool).index_fill_(1, torch.tensor([1]), True),
    ):
        with (
            collect_records() as got,
            pytest.raises(InvalidInputError, match=f"{check}: {message}"),
        ):
            getattr(ma, check)(corner_maps(2, 0), region, **bound)
        assert got == []


def test_the_ends_of_0_1_that_decide_something_are_kept() -> None:
    maps = corner_maps(1, 1)
    rec = ma.assert_pointing_game(maps[:1], boxes(1), at_least=1.0)  # every sample a hit
    assert rec.passed and rec.values == (1.0,)
    err = failure(ma.assert_pointing_game, maps, boxes(2), at_least=1.0)
    assert err.record.failing == (1,)
    # "the model puts no mass at all here": at_most=0 on the box the second map avoids
    assert ma.assert_mass_in_box(maps[1:], boxes(1), at_most=0.0).values == (0.0,)
    assert failure(ma.assert_mass_in_box, maps, boxes(2), at_most=0.0).record.failing == (0,)
    assert failure(ma.assert_iou, maps, boxes(2), at_least=1.0).record.values[1] == 0.0


# ---------------------------------------------------------------- pointing game and IoU


def test_pointing_game_tolerance_and_chance_in_the_record() -> None:
    maps = torch.zeros(2, 10, 10)
    maps[0, 1, 1] = 1.0
    maps[1, 1, 5] = 1.0  # 2 px right of the box's last column (3)
    err = failure(ma.assert_pointing_game, maps, boxes(2), at_least=1.0)
    assert err.record.failing == (1,) and err.record.values == (1.0, 0.0)
    assert err.record.chance == pytest.approx(16 / 100)
    rec = ma.assert_pointing_game(maps, boxes(2), at_least=1.0, tolerance=2)
    assert rec.details["tolerance"] == 2.0 and rec.values == (1.0, 1.0)
    # the box in the corner grown by 2 px (Euclidean): the 6x6 square without the 3 pixels
    # (4, 5), (5, 4), (5, 5) farther than 2 px from it: 33 of 100 pixels
    assert rec.chance == pytest.approx(0.33)
    assert ma.chance_level(boxes(1), (10, 10), tolerance=2).item() == pytest.approx(0.33)


def test_iou_assertion_records_the_binarisation() -> None:
    maps = torch.zeros(2, 8, 8)
    maps[:, :4, :4] = 1.0
    maps[1, :, 4:] = 0.8  # sample 1 spills over the right half at 80% of its max
    rec = ma.assert_iou(maps[:1], boxes(1), at_least=0.99)
    assert rec.obtained == 1.0 and rec.details["threshold"] == 0.5
    err = failure(ma.assert_iou, maps, boxes(2), at_least=0.5, threshold=0.5)
    # sample 1 above 0.5 * max: the box (16 px) plus the right half (32 px): IoU 16 / 48
    assert err.record.values == pytest.approx((1.0, 16 / 48))
    rec = ma.assert_iou(maps, boxes(2), at_least=0.99, threshold=0.9)
    assert rec.passed and rec.details["threshold"] == 0.9
    rec = ma.assert_iou(maps[:1], boxes(1), at_least=0.99, top_k=0.25)
    assert dict(rec.details) == {"top_k": 0.25, "chance_per_sample": [0.25]}


# ---------------------------------------------------------------- samples for the report


def test_a_failing_check_writes_nothing_and_keeps_its_pictures_in_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    maps = 2 * corner_maps(1, 2)  # max 2: the report's copy is scaled to [0, 1]
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    err = failure(ma.assert_mass_in_box, maps, boxes(3), at_least=0.5, images=images)
    assert sorted(tmp_path.rglob("*")) == []  # no overlay file, no report directory
    assert not hasattr(err.record, "overlays")
    views = err.record.samples
    assert views is not None
    assert views.images is not None and torch.equal(views.images, images)
    assert views.maps is not None and torch.equal(views.maps, corner_maps(1, 2))
    assert views.boxes is not None and views.boxes.tolist() == [[0.0, 0.0, 4.0, 4.0]] * 3
    assert views.masks is None
    assert not views.maps.requires_grad and views.maps.device.type == "cpu"
    assert "overlay" not in str(err)
    ma.assert_mass_in_box(maps[:1], boxes(1), at_least=0.5)  # a pass writes nothing either
    assert sorted(tmp_path.rglob("*")) == []


def test_samples_scale_images_outside_0_1_per_image() -> None:
    images = torch.zeros(1, 1, 8, 8)
    images[0, 0, 0, 0], images[0, 0, 7, 7] = -1.0, 3.0  # (x + 1) / 4: 0 -> 0.25
    rec = ma.assert_mass_in_box(corner_maps(1, 0), boxes(1), at_least=0.5, images=images)
    assert rec.samples is not None and rec.samples.images is not None
    expected = torch.full((1, 1, 8, 8), 0.25)
    expected[0, 0, 0, 0], expected[0, 0, 7, 7] = 0.0, 1.0
    assert torch.allclose(rec.samples.images, expected)


def test_maps_from_an_explainer_bring_images_method_and_layer() -> None:
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    maps = Explanation(
        corner_maps(2, 1), method="gradcam", layer="features.8", targets=None, inputs=images
    )
    err = failure(ma.assert_mass_in_box, maps, boxes(3), at_least=0.5)
    rec = err.record
    assert rec.values == (1.0, 1.0, 0.0) and rec.failing == (2,)
    assert rec.method == "gradcam" and rec.layer == "features.8"
    assert str(err).splitlines()[-1] == "  method: gradcam, layer: features.8"
    assert rec.samples is not None and torch.equal(rec.samples.images, images)
    # keywords win over what the maps say
    rec = ma.assert_pointing_game(maps[:2], boxes(2), at_least=1, method="mine", layer="l")
    assert (rec.method, rec.layer) == ("mine", "l")
    # plain tensors have no provenance: nothing is invented
    rec = ma.assert_iou(corner_maps(1, 0), boxes(1), at_least=0.1)
    assert rec.method is None and rec.layer is None and rec.samples.images is None

"""Assertions: pass/fail under each aggregation, record fields, emitted records, failure text."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.records import AuditRecord, collect_records
from modelaudit.settings import use_settings


def corner_maps(n_inside: int, n_outside: int, size: int = 8) -> torch.Tensor:
    """Maps with all mass in the top-left 2x2 (inside a 4x4 box) or the bottom-right 2x2."""
    maps = torch.zeros(n_inside + n_outside, size, size)
    maps[:n_inside, 1:3, 1:3] = 1.0
    maps[n_inside:, -2:, -2:] = 1.0
    return maps


def boxes(n: int) -> torch.Tensor:
    return torch.tensor([[0, 0, 4, 4]] * n)


def failure(fn, *args, report_dir: Path | None = None, **kwargs) -> AuditFailure:  # type: ignore[no-untyped-def]
    """Run a failing assertion; overlays go to ``report_dir`` only (the plugin may set one)."""
    with use_settings(report_dir=report_dir), pytest.raises(AuditFailure) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, AssertionError)
    return info.value


# ---------------------------------------------------------------- aggregation and records


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
    assert rec.check == "mass_in_box" and rec.passed is False
    assert rec.values == pytest.approx([1.0, 0.8, 0.0])
    assert rec.bound == 0.9 and rec.direction == "at_least" and rec.aggregate == "all"
    assert rec.obtained == 0.0
    assert rec.failing == [1, 2]
    assert rec.details["failing_values"] == pytest.approx([0.8, 0.0])
    assert rec.chance == pytest.approx(16 / 64)
    assert rec.details["chance_per_sample"] == pytest.approx([0.25] * 3)
    assert rec.details["method"] == "gradcam" and rec.details["layer"] == "features.8"
    assert (
        rec.samples is not None and rec.samples.images is not None and rec.samples.maps is not None
    )
    assert torch.equal(rec.samples.images, images)
    assert rec.samples.maps.max().item() == 1.0 and rec.samples.boxes is not None
    assert rec.samples.boxes.tolist() == [[0.0, 0.0, 4.0, 4.0]] * 3
    assert rec.message == str(err)
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
        "  failing samples (index: value), worst first:",
        "    2: 0",
        "  method: gradcam, layer: layer4",
    ]


def test_long_failure_lists_are_truncated_worst_first() -> None:
    maps = torch.zeros(15, 8, 8)
    for i in range(15):  # mass inside grows with i: sample 0 is the worst
        maps[i, 0, 0] = i
        maps[i, 7, 7] = 20 - i
    err = failure(ma.assert_mass_in_box, maps, boxes(15), at_least=0.9)
    lines = str(err).splitlines()
    assert lines[0].endswith("15 of 15 samples fail.")
    listed = [ln for ln in lines if ln.startswith("    ") and ":" in ln]
    assert [int(ln.split(":")[0]) for ln in listed] == list(range(10))
    assert "    ... and 5 more (all in the record's .failing)" in lines
    assert err.record is not None and err.record.failing == list(range(15))


def test_mean_aggregation() -> None:
    rec = ma.assert_mass_in_box(corner_maps(3, 1), boxes(4), at_least=0.7, aggregate="mean")
    assert rec.passed and rec.obtained == 0.75 and rec.aggregate == "mean" and rec.failing == [3]
    err = failure(
        ma.assert_mass_in_box, corner_maps(2, 1), boxes(3), at_least=0.7, aggregate="mean"
    )
    assert str(err).splitlines()[:2] == [
        "assert_mass_in_box: mass_in_box >= 0.7 must hold for the mean over 3 samples; 1 of 3 samples fail.",
        "  obtained: 0.6667 (mean); mean 0.6667",
    ]


def test_fraction_aggregation_boundary() -> None:
    maps = corner_maps(7, 3)  # 7 of 10 pass
    rec = ma.assert_mass_in_box(maps, boxes(10), at_least=0.5, aggregate=0.7)
    assert rec.passed and rec.obtained == 1.0 and rec.aggregate == "fraction"
    assert rec.details["required_fraction"] == 0.7 and rec.details["passing_fraction"] == 0.7
    err = failure(ma.assert_mass_in_box, maps, boxes(10), at_least=0.5, aggregate=0.75)
    assert err.record is not None and err.record.obtained == 0.0  # the 8th best of 10
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
    assert rec.passed and rec.direction == "at_most" and rec.obtained == 0.0
    err = failure(ma.assert_mass_in_box, corner_maps(2, 1), watermark, at_most=0.1)
    assert err.record is not None and err.record.failing == [2] and err.record.obtained == 1.0
    assert str(err).startswith("assert_mass_in_box: mass_in_box <= 0.1 must hold for every sample")


def test_masks_are_accepted_and_recorded_as_masks() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, :4, :4] = True
    rec = ma.assert_mass_in_box(corner_maps(2, 0), masks, at_least=0.9)
    assert rec.check == "mass_in_mask" and rec.samples is not None
    assert rec.samples.masks is not None and rec.samples.boxes is None


def test_records_are_emitted_on_pass_and_fail() -> None:
    with collect_records() as got:
        ma.assert_pointing_game(corner_maps(2, 0), boxes(2), at_least=1.0)
        with pytest.raises(AuditFailure):
            ma.assert_pointing_game(corner_maps(1, 1), boxes(2), at_least=1.0)
    assert [(r.check, r.passed) for r in got] == [("pointing_game", True), ("pointing_game", False)]
    assert (
        got[0].message
        == "assert_pointing_game: pointing_game >= 1 held (all): obtained 1, chance 0.25"
    )


def test_bound_and_aggregate_validation() -> None:
    maps, b = corner_maps(1, 0), boxes(1)
    message = "give exactly one bound as a keyword: at_least=... (higher is better) or at_most=..."
    with pytest.raises(
        InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
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


def test_helper_frames_are_hidden_from_tracebacks() -> None:
    with pytest.raises(AuditFailure) as info:
        ma.assert_mass_in_box(corner_maps(0, 1), boxes(1), at_least=0.5)
    frames = [e for e in info.traceback if Path(str(e.path)).name == "assertions.py"]
    assert frames, "the failure is raised inside modelaudit/assertions.py"
    assert all(e.ishidden(info) for e in frames)


# ---------------------------------------------------------------- localization assertions


def test_pointing_game_tolerance_and_chance_in_the_record() -> None:
    maps = torch.zeros(2, 10, 10)
    maps[0, 1, 1] = 1.0
    maps[1, 1, 5] = 1.0  # 2 px right of the box's last column (3)
    err = failure(ma.assert_pointing_game, maps, boxes(2), at_least=1.0)
    assert err.record is not None and err.record.failing == [1]
    rec = ma.assert_pointing_game(maps, boxes(2), at_least=1.0, tolerance=2)
    assert rec.details["tolerance"] == 2.0
    # the 4x4 box grown by 2 px (Euclidean): 6x6 minus the four corner pixels beyond sqrt(4)
    grown = ma.chance_level(boxes(1), (10, 10), tolerance=2).item()
    assert rec.chance == pytest.approx(grown) and grown > 16 / 100


def test_iou_assertion_records_the_binarisation() -> None:
    maps = torch.zeros(2, 8, 8)
    maps[:, :4, :4] = 1.0
    maps[1, :, 4:] = 0.8  # sample 1 spills over the right half at 80% of its max
    rec = ma.assert_iou(maps[:1], boxes(1), at_least=0.99)
    assert rec.obtained == 1.0 and rec.details["threshold"] == 0.5
    err = failure(ma.assert_iou, maps, boxes(2), at_least=0.5, threshold=0.5)
    assert err.record is not None and err.record.values == pytest.approx([1.0, 16 / 48])
    rec = ma.assert_iou(maps, boxes(2), at_least=0.99, threshold=0.9)
    assert rec.passed and rec.details["threshold"] == 0.9
    rec = ma.assert_iou(maps[:1], boxes(1), at_least=0.99, top_k=0.25)
    assert rec.details == {"top_k": 0.25, "failing_values": [], "chance_per_sample": [0.25]}


# ---------------------------------------------------------------- model-based assertions


class Bright(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 8 * x.mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def bright_half() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.zeros(2, 1, 4, 4)
    images[:, 0, :2] = 1.0
    return images, images[:, 0].clone()


def test_assert_faithful_deletion_and_insertion() -> None:
    images, maps = bright_half()
    rec = ma.assert_faithful(Bright(), images, maps, target=0, at_most=0.7, steps=8)
    assert rec.check == "deletion_auc" and rec.details["baseline"] == "zeros"
    # 2 of 16 bright pixels go per step: logit 8 * mean = 4, 3, 2, 1, 0, 0, 0, 0, 0
    curve = [1 / (1 + math.exp(-v)) for v in (4, 3, 2, 1, 0, 0, 0, 0, 0)]
    auc = (sum(curve) - (curve[0] + curve[-1]) / 2) / 8
    assert rec.values == pytest.approx([auc] * 2, abs=1e-6)
    err = failure(ma.assert_faithful, Bright(), images, 1 - maps, target=0, at_most=0.7, steps=8)
    assert str(err).splitlines()[0] == (
        "assert_faithful: deletion_auc <= 0.7 must hold for every sample; 2 of 2 samples fail."
    )
    assert "deletion AUC of the target's softmax probability over 8 steps, baseline zeros" in str(
        err
    )
    rec = ma.assert_faithful(
        Bright(),
        images,
        maps,
        metric="insertion",
        target=0,
        at_least=0.8,
        steps=8,
        baseline="zeros",
    )
    assert rec.check == "insertion_auc" and rec.passed
    with pytest.raises(InvalidInputError, match="metric must be 'deletion' or 'insertion'"):
        ma.assert_faithful(Bright(), images, maps, metric="aopc", at_most=1)  # type: ignore[arg-type]


def test_assert_map_changes_when_randomized_fails_for_a_model_blind_explainer() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 36, 2)
    )
    images = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1))

    def edges(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0].diff(dim=-1, prepend=x[:, 0, :, :1]).abs()

    err = failure(
        ma.assert_map_changes_when_randomized, net, images, edges, at_most=0.5, method="edges"
    )
    lines = str(err).splitlines()
    assert lines[0] == (
        "assert_map_changes_when_randomized: spearman_after_randomization <= 0.5 must hold for "
        "every sample; 3 of 3 samples fail."
    )
    assert (
        "  mode: cascading; steps top layer first; mean spearman per step: '3': 1, '0': 1" in lines
    )
    assert "  worst step per sample: 0: '3', 1: '3', 2: '3'" in lines
    rec = err.record
    assert rec is not None and rec.values == [1.0, 1.0, 1.0]
    assert rec.details["steps"] == ["3", "0"] and rec.details["per_step"] == [[1.0] * 3] * 2

    def input_x_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        return (g * x)[:, 0].abs()

    rec = ma.assert_map_changes_when_randomized(
        net, images, input_x_gradient, at_most=0.6, mode="independent"
    )
    assert rec.passed and rec.details["mode"] == "independent"
    assert rec.values == pytest.approx(torch.tensor(rec.details["per_step"]).max(0).values.tolist())
    last = ma.assert_map_changes_when_randomized(
        net, images, input_x_gradient, at_most=0.6, at_step="last"
    )
    assert last.values == pytest.approx(last.details["per_step"][-1])


def test_assert_stable_noise_and_flip() -> None:
    images = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    square = lambda m, x: x[:, 0] ** 2  # noqa: E731
    rec = ma.assert_stable(nn.Identity(), images, square, at_most=0.2, sigma=0.01)
    assert rec.check == "map_change_noise" and rec.details["repeats"] == 4
    assert len(rec.details["per_draw"]) == 4

    def ramp(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.arange(x.shape[-1], dtype=torch.float32).repeat(x.shape[0], x.shape[-2], 1) + 1

    err = failure(ma.assert_stable, nn.Identity(), images, ramp, at_most=0.1, perturbation="hflip")
    assert err.record is not None and err.record.values == [2.0, 2.0]
    assert (
        "change between the horizontally flipped image's map and the flipped map; change = 1 - spearman"
        in str(err)
    )
    assert ma.assert_stable(nn.Identity(), images, ramp, at_most=0.1, perturbation="vflip").passed
    with pytest.raises(InvalidInputError, match="perturbation must be 'noise', 'hflip' or 'vflip'"):
        ma.assert_stable(nn.Identity(), images, ramp, at_most=0.1, perturbation="rotate")  # type: ignore[arg-type]


# ---------------------------------------------------------------- overlays


def test_failures_write_overlays_when_a_report_dir_is_set(tmp_path: Path) -> None:
    maps = corner_maps(1, 2)
    err = failure(
        ma.assert_mass_in_box,
        maps,
        boxes(3),
        at_least=0.5,
        images=torch.rand(3, 3, 8, 8),
        report_dir=tmp_path,
    )
    rec = err.record
    assert rec is not None and len(rec.overlays) == 2
    assert all(Path(p).is_file() and Path(p).parent == tmp_path for p in rec.overlays)
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in rec.overlays)
    lines = str(err).splitlines()
    assert f"  overlays written to {tmp_path}:" in lines
    assert all(f"    {p}" in lines for p in rec.overlays)
    # a pass writes nothing
    with use_settings(report_dir=tmp_path / "pass"):
        ma.assert_mass_in_box(maps[:1], boxes(1), at_least=0.5)
    assert not (tmp_path / "pass").exists()


def test_an_overlay_error_does_not_hide_the_audit_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = types.ModuleType("modelaudit.report.overlay")

    def write_overlays(record: AuditRecord, directory: object) -> list[str]:
        raise OSError("disk full")

    broken.write_overlays = write_overlays  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modelaudit.report.overlay", broken)
    err = failure(
        ma.assert_pointing_game, corner_maps(0, 1), boxes(1), at_least=1.0, report_dir=tmp_path
    )
    assert str(err).splitlines()[-1] == "  overlays could not be written: OSError: disk full"
    assert err.record is not None and err.record.overlays == []

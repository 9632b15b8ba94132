"""assert_background_reliance: passes an object reader, fails a background reader with a
message that says why, validates its margins, and separates the zoo's clean and shortcut
models."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from modelaudit import zoo
from modelaudit.checks import assert_background_reliance, collect_records
from modelaudit.checks.background import MIXED_RAND_MARGIN, ONLY_BG_MARGIN
from modelaudit.errors import AuditFailure, InvalidInputError


class Refuses(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the margins must be checked before any forward pass")


def test_an_object_reader_passes(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    with collect_records() as got:
        rec = assert_background_reliance(scenes.centre, images, labels, masks=masks)
    assert got == [rec] and rec.passed and rec.failing == ()
    assert rec.values == (0.5, 1.0) and rec.items == ("only_bg accuracy", "mixed_rand accuracy")
    assert rec.details["only_bg_limit"] == 0.5 + ONLY_BG_MARGIN
    assert rec.details["mixed_rand_limit"] == 1.0 - MIXED_RAND_MARGIN
    assert rec.details["bg_gap"] == 0.0 and rec.details["only_fg"] == 1.0
    assert rec.samples is None
    assert rec.message.startswith("assert_background_reliance: only_bg accuracy <= chance + ")


def test_a_background_reader_fails_and_the_message_says_why(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    with pytest.raises(AuditFailure) as info:
        assert_background_reliance(scenes.corner, images, labels, masks=masks, fill="black")
    rec, text = info.value.record, str(info.value)
    assert not rec.passed and rec.failing == (0, 1)
    lines = text.splitlines()
    assert lines[0] == (
        "assert_background_reliance: only_bg accuracy <= chance + 0.38 (0.88) and mixed_rand "
        "accuracy >= original - 0.47 (0.53) must hold; 2 of 2 metrics fail."
    )
    assert (
        "    only_bg accuracy: 1 > 0.88: the model classifies 100% of images with the object "
        "removed (chance 50%): it reads the background"
    ) in lines
    assert (
        "    mixed_rand accuracy: 0 < 0.53: with each object on another class's background the "
        "model is right on 0% of images (original 100%): the background overrides the object"
    ) in lines
    assert "  accuracies: original 1, only_bg 1, only_fg 0.5, mixed_rand 0, mixed_same 1" in lines
    assert (
        "  bg_gap (mixed_same - mixed_rand): +1; chance 0.5 (the most frequent label's share)"
        in lines
    )
    assert "  Only-BG images still classified correctly (8 of 8): 0, 1, 2, 3, 4, 5, 6, 7" in lines
    assert rec.details["only_bg_correct"] == list(range(8))
    assert rec.details["mixed_rand_wrong"] == list(range(8))
    # the report gets the failing Only-BG images, then the failing Mixed-Rand ones
    assert rec.samples is not None and rec.samples.images is not None
    assert rec.samples.maps is not None
    assert rec.samples.images.shape == (16, 1, 6, 6)
    assert rec.samples.images[0, 0, 2:4, 2:4].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # object gone
    assert rec.samples.images[1, 0, 0, 0] == 0.9  # its corner kept
    assert torch.equal(rec.samples.maps, masks.float().repeat(2, 1, 1))


def test_only_the_failing_condition_is_blamed(scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    # chance 0.5 + 0.5 = 1: Only-BG can no longer fail; Mixed-Rand still does
    with pytest.raises(AuditFailure) as info:
        assert_background_reliance(scenes.corner, images, labels, masks=masks, only_bg_margin=0.5)
    text = str(info.value)
    assert info.value.record.failing == (1,)
    assert "1 of 2 metrics fail" in text and "reads the background" not in text
    assert "the background overrides the object" in text
    assert "Only-BG images still classified correctly" not in text


@pytest.mark.parametrize("value", [math.nan, math.inf, 1.0, -0.1, True, "0.2", None])
@pytest.mark.parametrize("name", ["only_bg_margin", "mixed_rand_margin"])
def test_margins_are_checked_before_any_forward(name: str, value: object, scenes) -> None:
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    with pytest.raises(InvalidInputError, match=f"{name} must be a finite accuracy difference"):
        assert_background_reliance(Refuses(), images, labels, masks=masks, **{name: value})


def test_bad_input_reaches_the_user(scenes) -> None:
    images, labels = scenes.images, scenes.labels
    with pytest.raises(InvalidInputError, match=r"masks=shapes\.masks"):
        assert_background_reliance(scenes.centre, images, labels)


def test_the_check_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenes) -> None:
    monkeypatch.chdir(tmp_path)
    images, labels, masks = scenes.images, scenes.labels, scenes.masks
    with pytest.raises(AuditFailure):
        assert_background_reliance(scenes.corner, images, labels, masks=masks)
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def audit_shapes() -> zoo.ShapesData:
    return zoo.audit_data(64)


def test_the_zoo_clean_model_passes(audit_shapes: zoo.ShapesData) -> None:
    model = zoo.load_model("shapes-cnn")
    rec = assert_background_reliance(
        model, audit_shapes.images, audit_shapes.labels, masks=audit_shapes.masks
    )
    d = rec.details
    # measured: original 1, only_bg 0.28, only_fg 1, mixed_rand 1, mixed_same 1 (chance 0.25)
    assert d["chance"] == 0.25 and d["original"] == 1.0 and d["mixed_rand"] == 1.0
    assert d["only_bg"] <= 0.3 and d["bg_gap"] == 0.0


def test_the_zoo_shortcut_model_fails(audit_shapes: zoo.ShapesData) -> None:
    model = zoo.load_model("shapes-cnn-shortcut")
    with pytest.raises(AuditFailure) as info:
        assert_background_reliance(
            model, audit_shapes.images, audit_shapes.labels, boxes=audit_shapes.boxes
        )
    d = info.value.record.details
    # the corner watermark survives in Only-BG and comes with the partner's background
    assert info.value.record.failing == (0, 1)
    assert d["only_bg"] == 1.0 and d["mixed_rand"] == 0.0 and d["bg_gap"] == 1.0
    assert "it reads the background" in str(info.value)

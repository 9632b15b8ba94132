"""One failure layout for every kind of check: hook, shape, heat-map and baseline audits."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.baseline import Baseline
from modelaudit.checks.record import format_number


def rewrite(grad: torch.Tensor) -> torch.Tensor:
    grad *= 2
    return grad * 3


def watch_a(module: nn.Module, args: tuple, a: torch.Tensor) -> None:
    """A forward hook that hooks the tensor ``a``: dy/da = 2 becomes 12."""
    a.register_hook(rewrite)


def failures(seed_model: nn.Module, seed_input: torch.Tensor) -> list[ma.AuditFailure]:
    seed_model.add.register_forward_hook(watch_a)
    maps = torch.zeros(2, 8, 8)
    maps[0, 1:3, 1:3] = 1.0  # inside the box
    maps[1, 6:8, 6:8] = 1.0  # in the opposite corner
    base = Baseline()
    base.set("t::iou", 0.8, direction="higher", tolerance=0.05)
    base.set("t::hit", 0.5, direction="higher", tolerance=0.05)
    calls = [
        lambda: ma.assert_hooks_preserve_gradients(seed_model, seed_input),
        lambda: ma.assert_feature_map_shapes(
            nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)),
            (1, 3, 8, 8),
            {"0": (4, 6, 6), "1": (4, 5, 5)},
        ),
        lambda: ma.assert_mass_in_box(maps, torch.tensor([[0, 0, 4, 4]] * 2), at_least=0.5),
        lambda: ma.assert_within_baseline(
            [base.compare("t::iou", 0.5), base.compare("t::hit", 0.5)]
        ),
    ]
    errors = []
    for call in calls:
        with pytest.raises(ma.AuditFailure) as info:
            call()
        errors.append(info.value)
    return errors


def test_hook_shape_heat_map_and_baseline_failures_share_one_layout(
    seed_model: nn.Module, seed_input: torch.Tensor
) -> None:
    errors = failures(seed_model, seed_input)
    expected = {  # assertion, unit, failing items, number of items
        "assert_hooks_preserve_gradients": ("gradient", ["input", "parameter 'add.w'"], 2),
        "assert_feature_map_shapes": ("layer", ["'1'"], 2),
        "assert_mass_in_box": ("sample", ["1"], 2),
        "assert_within_baseline": ("metric", ["iou"], 2),
    }
    assert [e.record.assertion for e in errors] == list(expected)
    for err in errors:
        record, text = err.record, str(err)
        unit, failing_items, n = expected[record.assertion]
        assert record.message == text
        assert [record.items[i] for i in record.failing] == failing_items
        lines = text.splitlines()
        # first line: "<assert name>: <rule>; <k> of <n> <unit>s fail."
        assert lines[0] == (
            f"{record.assertion}: {record.rule}; {len(failing_items)} of {n} {unit}s fail."
        )
        # then indented lines; only a hint (how to fix or update) may close the block unindented
        body = lines[1:-1] if record.hint else lines[1:]
        if record.hint:
            assert lines[-1] == record.hint
        assert body and all(line.startswith("  ") for line in body), text
        # a "failing <unit>s" section listing exactly the failing items, one per line
        heads = [i for i, line in enumerate(body) if re.fullmatch(rf"  failing {unit}s(, worst first)?:", line)]  # fmt: skip
        assert len(heads) == 1, text
        listed = []
        for line in body[heads[0] + 1 :]:
            if not line.startswith("    "):
                break
            listed.append(line[4:])
        assert [entry.split(": ", 1)[0] for entry in listed] == failing_items
        for entry, i in zip(listed, record.failing):
            shown = record.reasons[i] if record.reasons else format_number(record.values[i])
            assert entry == f"{record.items[i]}: {shown}"


def test_the_seed_hook_audit_reads_12_vs_2_and_15_vs_5(
    seed_model: nn.Module, seed_input: torch.Tensor
) -> None:
    hooks = failures(seed_model, seed_input)[0]
    assert str(hooks).splitlines()[1:4] == [
        "  failing gradients:",
        "    input: with hooks 12 vs without 2 (largest |difference| 10)",
        "    parameter 'add.w': with hooks 15 vs without 5 (largest |difference| 10)",
    ]
    assert str(hooks).splitlines()[-1] == (
        "    forward hook watch_a on 'add': input: with it 12 vs without 2 (largest |difference| 10)"
    )

"""assert_feature_map_shapes: the verdict on a shape diff, and its failure text."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit import AuditFailure
from modelaudit.checks import assert_feature_map_shapes, collect_records


def small() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2))


def test_assert_passes_with_or_without_batch_dimension_and_emits_a_record():
    with collect_records() as got:
        record = assert_feature_map_shapes(
            small(), (2, 3, 11, 11), {"0": (4, 9, 9), "1": (2, 4, 9, 9), "2": torch.Size([8, 4, 4])}
        )
    assert record.passed and got == [record] and record.check == "feature_map_shapes"
    assert record.items == ("'0'", "'1'", "'2'") and record.values == (0.0, 0.0, 0.0)
    assert record.obtained == 0.0 and record.failing == () and record.unit == "layer"


def test_assert_failure_lists_mismatched_missing_and_unexpected_with_both_shapes():
    expected = {"0": (4, 9, 9), "2": (8, 5, 5), "3": (8, 1, 1), "conv": (1,)}
    with pytest.raises(AuditFailure) as info:
        assert_feature_map_shapes(small(), (1, 3, 11, 11), expected)
    assert str(info.value).splitlines() == [
        "assert_feature_map_shapes: every layer's output shape must match expected for input "
        "(1, 3, 11, 11); 4 of 5 layers fail.",
        "  failing layers:",
        "    '1': unexpected: obtained (1, 4, 9, 9), expected none (pass layers= to compare a subset)",
        "    '2': mismatched: obtained (1, 8, 4, 4), expected (8, 5, 5)",
        "    '3': missing: obtained none (no such layer; closest names: '0', '1', '2'), "
        "expected (8, 1, 1)",
        "    'conv': missing: obtained none (no such layer; closest names: '0', '1', '2'), "
        "expected (1)",
    ]
    record = info.value.record
    assert record.message == str(info.value)
    assert not record.passed and record.obtained == 4.0
    assert record.values == (0.0, 1.0, 1.0, 1.0, 1.0) and record.failing == (1, 2, 3, 4)
    assert dict(record.details) == {
        "mismatched": ["2"],
        "missing": ["3", "conv"],
        "unexpected": ["1"],
    }


def test_assert_with_layers_compares_a_subset(alexnet):
    expected = {
        "features.0": (64, 55, 55),
        "features.3": (192, 27, 27),
        "features.6": (384, 13, 13),
        "features.8": (256, 13, 13),
        "features.10": (256, 13, 13),
    }
    assert assert_feature_map_shapes(alexnet, (1, 3, 224, 224), expected, layers=nn.Conv2d).passed
    wrong = {**expected, "features.8": (256, 12, 12)}
    with pytest.raises(
        AuditFailure,
        match=r"\n    'features.8': mismatched: obtained \(1, 256, 13, 13\), "
        r"expected \(256, 12, 12\)$",
    ) as info:
        assert_feature_map_shapes(alexnet, (1, 3, 224, 224), wrong, layers=nn.Conv2d)
    assert info.value.record.failing == (3,) and len(info.value.record.values) == 5


def test_assert_names_a_layer_that_exists_but_did_not_run():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.aux = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(
        AuditFailure,
        match=r"'aux': missing: obtained none \(layer did not run\), expected \(1, 2\)",
    ) as info:
        assert_feature_map_shapes(Branchy(), (1, 2), {"used": (1, 2), "aux": (1, 2)})
    assert info.value.record.details["missing"] == ["aux"]

"""feature_map_shapes and shape_diff (the verdict is tested in tests/checks/test_shapes.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from modelaudit import HookError, InvalidInputError
from modelaudit.hooks import ModelState, feature_map_shapes, hook_count, shape_diff


def test_alexnet_conv_shapes_at_224(alexnet):
    shapes = feature_map_shapes(alexnet, (1, 3, 224, 224), layers=nn.Conv2d)
    assert {k: tuple(v[1:]) for k, v in shapes.items()} == {
        "features.0": (64, 55, 55),
        "features.3": (192, 27, 27),
        "features.6": (384, 13, 13),
        "features.8": (256, 13, 13),
        "features.10": (256, 13, 13),
    }
    assert all(v[0] == 1 for v in shapes.values())


def test_default_is_every_leaf_that_ran_and_state_is_restored():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)
    )
    model.train()
    model[4].weight.requires_grad_(False)
    before = ModelState.of(model, values=True)
    shapes = feature_map_shapes(model, torch.randn(5, 1, 6, 6))
    assert shapes == {
        "0": torch.Size([5, 2, 4, 4]),
        "1": torch.Size([5, 2, 4, 4]),
        "2": torch.Size([5, 2, 4, 4]),
        "3": torch.Size([5, 32]),
        "4": torch.Size([5, 3]),
    }
    after = ModelState.of(model, values=True)
    assert after.training == before.training and model.training
    assert after.requires_grad == before.requires_grad
    assert before.values is not None and after.values is not None
    # eval mode: BatchNorm's running statistics did not move
    assert all(torch.equal(before.values[k], after.values[k]) for k in before.values)
    assert all(p.grad is None for p in model.parameters())
    assert sum(hook_count(model).values()) == 0


def test_input_shape_uses_the_models_dtype():
    model = nn.Sequential(nn.Conv2d(1, 1, 3)).double()
    assert feature_map_shapes(model, torch.Size([2, 1, 5, 7])) == {"0": torch.Size([2, 1, 3, 5])}


def test_unused_leaves_are_skipped_by_default_but_named_when_asked():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.aux = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    model = Branchy()
    assert feature_map_shapes(model, (1, 2)) == {"used": torch.Size([1, 2])}
    with pytest.raises(HookError, match="never ran while capturing: 'aux'"):
        feature_map_shapes(model, (1, 2), layers="aux")


def test_bad_example_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="an input shape such as"):
        feature_map_shapes(nn.Linear(1, 1), "224x224")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="positive sizes"):
        feature_map_shapes(nn.Linear(1, 1), (1, 0))


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(8, 40),
    w=st.integers(8, 40),
    k=st.integers(1, 5),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
)
def test_conv_shapes_follow_the_output_size_formula(h, w, k, s, p):
    """out = floor((in + 2p - k) / s) + 1 for every size, kernel, stride and padding."""
    model = nn.Sequential(nn.Conv2d(2, 3, k, stride=s, padding=p), nn.MaxPool2d(2, ceil_mode=True))
    shapes = feature_map_shapes(model, (1, 2, h, w))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    assert shapes["0"] == (1, 3, oh, ow)
    assert shapes["1"] == (1, 3, -(-oh // 2), -(-ow // 2))


# -- shape_diff ------------------------------------------------------------------------------


def small() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2))


def test_shape_diff_of_matching_shapes_with_or_without_batch_dimension():
    diff = shape_diff(
        small(), (2, 3, 11, 11), {"0": (4, 9, 9), "1": (2, 4, 9, 9), "2": torch.Size([8, 4, 4])}
    )
    # 11 - 3 + 1 = 9; then floor((9 - 3) / 2) + 1 = 4
    assert diff.input_shape == (2, 3, 11, 11) and diff.layers == ["0", "1", "2"]
    assert diff.problems == {} and diff.kinds == {}


def test_shape_diff_names_mismatched_missing_and_unexpected_layers():
    expected = {"0": (4, 9, 9), "2": (8, 5, 5), "3": (8, 1, 1), "conv": (1,)}
    diff = shape_diff(small(), (1, 3, 11, 11), expected)
    assert diff.layers == ["0", "1", "2", "3", "conv"]  # model order, then expected-only names
    assert diff.kinds == {
        "1": "unexpected",
        "2": "mismatched",
        "3": "missing",
        "conv": "missing",
    }
    assert diff.problems == {
        "1": "obtained (1, 4, 9, 9), expected none (pass layers= to compare a subset)",
        "2": "obtained (1, 8, 4, 4), expected (8, 5, 5)",
        "3": "obtained none (no such layer; closest names: '0', '1', '2'), expected (8, 1, 1)",
        "conv": "obtained none (no such layer; closest names: '0', '1', '2'), expected (1)",
    }


def test_shape_diff_with_layers_compares_a_subset():
    diff = shape_diff(small(), (1, 3, 11, 11), {"0": (4, 9, 9), "2": (8, 4, 4)}, layers=nn.Conv2d)
    assert diff.layers == ["0", "2"] and diff.problems == {}


def test_shape_diff_says_when_a_layer_exists_but_did_not_run():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.aux = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    diff = shape_diff(Branchy(), (1, 2), {"used": (1, 2), "aux": (1, 2)})
    assert diff.kinds == {"aux": "missing"}
    assert diff.problems == {"aux": "obtained none (layer did not run), expected (1, 2)"}

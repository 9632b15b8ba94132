"""assert_map_changes_when_randomized: a model-blind map fails, a model-aware one passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.errors import AuditFailure, InvalidInputError
from modelaudit.explainers.explanation import Explanation


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 36, 2)
    )


def images_3x6() -> torch.Tensor:
    return torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def edges(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Horizontal intensity edges: the same maps whatever the model's weights."""
    return x[:, 0].diff(dim=-1, prepend=x[:, 0, :, :1]).abs()


def input_x_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    return (g * x)[:, 0].abs()


def test_a_model_blind_explainer_fails() -> None:
    with pytest.raises(AuditFailure) as info:
        ma.assert_map_changes_when_randomized(
            small_net(), images_3x6(), edges, at_most=0.5, method="edges"
        )
    err = info.value
    lines = str(err).splitlines()
    assert lines[0] == (
        "assert_map_changes_when_randomized: spearman_after_randomization <= 0.5 must hold for "
        "every sample; 3 of 3 samples fail."
    )
    assert (
        "  mode: cascading; steps top layer first; mean spearman per step: '3': 1, '0': 1" in lines
    )
    assert "  worst step per sample: 0: '3', 1: '3', 2: '3'" in lines
    assert lines[-1] == "  method: edges"
    rec = err.record
    assert rec.message == str(err)
    # the maps do not depend on the weights: similarity 1 at every step
    assert rec.values == (1.0, 1.0, 1.0) and rec.failing == (0, 1, 2)
    assert rec.details["steps"] == ["3", "0"] and rec.details["per_step"] == [[1.0] * 3] * 2
    assert rec.details["worst_step"] == ["3", "3", "3"] and rec.method == "edges"


def test_a_model_aware_explainer_passes_and_steps_aggregate_as_documented() -> None:
    net, images = small_net(), images_3x6()
    rec = ma.assert_map_changes_when_randomized(
        net, images, input_x_gradient, at_most=0.6, mode="independent"
    )
    assert rec.passed and rec.details["mode"] == "independent"
    per_step = torch.tensor(rec.details["per_step"])
    # at_most: a sample's value is its most similar (worst) step
    assert rec.values == pytest.approx(tuple(per_step.max(0).values.tolist()))
    last = ma.assert_map_changes_when_randomized(
        net, images, input_x_gradient, at_most=0.6, at_step="last"
    )
    assert last.values == pytest.approx(tuple(last.details["per_step"][-1]))
    # at_least: the least similar step is the worst
    low = ma.assert_map_changes_when_randomized(net, images, input_x_gradient, at_least=0.25)
    per_step = torch.tensor(low.details["per_step"])
    assert low.values == pytest.approx(tuple(per_step.min(0).values.tolist()))
    with pytest.raises(InvalidInputError, match="at_step must be 'all' or 'last'; got 'first'"):
        ma.assert_map_changes_when_randomized(net, images, edges, at_most=0.5, at_step="first")  # type: ignore[arg-type]


def test_the_model_is_not_modified() -> None:
    net, images = small_net(), images_3x6()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(AuditFailure):
        ma.assert_map_changes_when_randomized(net, images, edges, at_most=0.5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_maps_from_an_explainer_are_explained_again_on_the_randomised_models(
    method_calls: list[dict],
) -> None:
    images = images_3x6()
    targets = torch.tensor([0, 1, 0])
    maps = Explanation(
        edges(nn.Identity(), images), method="test_edges", layer=None, targets=targets,
        inputs=images,
    )  # fmt: skip
    with pytest.raises(AuditFailure) as info:
        ma.assert_map_changes_when_randomized(small_net(), maps, at_most=0.5)
    rec = info.value.record
    assert rec.values == (1.0, 1.0, 1.0) and rec.method == "test_edges"
    assert len(method_calls) == 3  # the original model, then 2 cascading steps
    assert all(torch.equal(c["target"], targets) and c["layer"] is None for c in method_calls)
    assert rec.samples is not None and torch.equal(rec.samples.images, images)
    assert torch.allclose(rec.samples.maps * edges(nn.Identity(), images).amax((1, 2), True),
                          edges(nn.Identity(), images))  # fmt: skip


def test_plain_images_without_an_explainer_are_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="assert_map_changes_when_randomized needs an"):
        ma.assert_map_changes_when_randomized(small_net(), images_3x6(), at_most=0.5)


@pytest.mark.parametrize("similarity", ["spearman", "ssim"])
@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ({"at_most": 1.0}, r"at_most=1 always passes: \w+_after_randomization lies in "
                           r"\[-1, 1\], so every value is <= 1. Give at_most in \[-1, 1\)."),
        ({"at_most": -1.2}, r"at_most=-1.2 can never pass"),
        ({"at_least": -1}, r"at_least=-1 always passes: .* Give at_least in \(-1, 1\]."),
        ({"at_least": 1.01}, r"at_least=1.01 can never pass"),
    ],
)  # fmt: skip
def test_a_similarity_bound_outside_minus_1_1_fails_before_any_randomisation(
    similarity: str, bound: dict, message: str
) -> None:
    calls: list[int] = []

    def counting(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return edges(model, x)

    with pytest.raises(InvalidInputError, match=f"assert_map_changes_when_randomized: {message}"):
        ma.assert_map_changes_when_randomized(
            small_net(),
            images_3x6(),
            counting,
            similarity=similarity,
            **bound,  # type: ignore[arg-type]
        )
    assert calls == []  # rejected before the first explanation
    # the useful end of the range is kept: the edges never change, so rho is 1 everywhere
    if similarity == "spearman":
        rec = ma.assert_map_changes_when_randomized(
            small_net(), images_3x6(), counting, at_least=1.0
        )
        assert rec.values == (1.0, 1.0, 1.0) and calls

"""Parameter randomisation: step semantics, exact expectations, and the caller's model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit.errors import InvalidInputError, LayerNotFoundError
from modelaudit.measure import randomization_similarity, spearman, ssim


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 2, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 2),
    )


def input_x_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A tiny explainer written for the tests: |x * d(top logit)/dx| summed over channels."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    return (grad * x).sum(1).abs().detach()


def images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(5))


class Spy:
    """Explainer that records the parameters it was shown and returns a fixed ramp map."""

    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        ramp = torch.arange(x.shape[-1] * x.shape[-2], dtype=torch.float32)
        return ramp.view(1, x.shape[-2], x.shape[-1]).expand(x.shape[0], -1, -1).clone()


def changed_layers(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k.rsplit(".", 1)[0] for k in before if not torch.equal(before[k], after[k])}


def test_cascading_randomises_cumulatively_from_the_top() -> None:
    spy = Spy()
    res = randomization_similarity(tiny_net(), images(), spy, mode="cascading")
    assert res.steps == ["6", "2", "0"]
    original = spy.seen[0]
    assert [changed_layers(original, s) for s in spy.seen[1:]] == [
        {"6"},
        {"6", "2"},
        {"6", "2", "0"},
    ]
    # the map ignores the model: every step is identical to the original
    assert torch.equal(res.similarity, torch.ones(3, 2))
    assert res.mean.tolist() == [1.0, 1.0, 1.0] and res.worst.tolist() == [1.0, 1.0]


def test_independent_randomises_one_layer_at_a_time_with_the_same_draws() -> None:
    spy_i, spy_c = Spy(), Spy()
    randomization_similarity(tiny_net(), images(), spy_i, mode="independent")
    randomization_similarity(tiny_net(), images(), spy_c, mode="cascading")
    original = spy_i.seen[0]
    assert [changed_layers(original, s) for s in spy_i.seen[1:]] == [{"6"}, {"2"}, {"0"}]
    # the top layer gets the same random weights in both modes; so does every layer
    for k in ("6.weight", "6.bias"):
        assert torch.equal(spy_i.seen[1][k], spy_c.seen[1][k])
    for k in ("2.weight", "2.bias"):
        assert torch.equal(spy_i.seen[2][k], spy_c.seen[2][k])
        assert not torch.equal(spy_i.seen[2][k], original[k])


def test_the_callers_model_and_the_global_rng_are_untouched() -> None:
    net = tiny_net().train()
    net[0].weight.requires_grad_(False)
    net[2].weight.grad = torch.full_like(net[2].weight, 7.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    randomization_similarity(net, images(), input_x_gradient, mode="cascading")
    randomization_similarity(net, images(), input_x_gradient, mode="independent", similarity="ssim")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and all(m.training for m in net.modules())
    assert not net[0].weight.requires_grad and net[2].weight.requires_grad
    assert net[2].weight.grad is not None and (net[2].weight.grad == 7.0).all()
    assert net[6].weight.grad is None
    assert torch.equal(torch.get_rng_state(), rng)


def test_redrawn_weights_keep_the_scale_of_each_tensor() -> None:
    spy = Spy()
    big = nn.Sequential(nn.Linear(200, 100), nn.BatchNorm1d(100))
    big[0].weight.data.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
    randomization_similarity(big, torch.rand(4, 1, 10, 20), lambda m, x: spy(m, x)[:, :2, :2])
    after_bn, after_both = spy.seen[1], spy.seen[2]
    # BatchNorm weight (constant ones) and bias (zeros) are redrawn with std 1.0
    assert after_bn["1.weight"].std().item() == pytest.approx(1.0, rel=0.2)
    assert after_bn["1.bias"].std().item() == pytest.approx(1.0, rel=0.2)
    assert torch.equal(after_bn["1.running_var"], torch.ones(100))  # buffers are kept
    assert after_both["0.weight"].std().item() == pytest.approx(0.3, rel=0.05)
    assert after_both["0.weight"].mean().abs().item() < 0.01


def test_sign_of_a_single_weight_decides_the_correlation_exactly() -> None:
    # map = w * x for a 1x1 conv without bias; the redrawn w is the generator's first normal
    net = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.constant_(net.weight, 2.0)
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    res = randomization_similarity(net, x, lambda m, inp: m(inp)[:, 0], seed=11)
    w = torch.randn((1, 1, 1, 1), generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    assert res.similarity.tolist() == [[1.0 if w.item() > 0 else -1.0] * 3]
    assert torch.allclose(res.original, 2.0 * x[:, 0])


def test_results_depend_on_the_seed_only() -> None:
    a = randomization_similarity(tiny_net(), images(), input_x_gradient, seed=3)
    b = randomization_similarity(tiny_net(), images(), input_x_gradient, seed=3)
    c = randomization_similarity(tiny_net(), images(), input_x_gradient, seed=4)
    assert torch.equal(a.similarity, b.similarity)
    assert not torch.equal(a.similarity, c.similarity)


def test_similarity_values_are_the_spearman_or_ssim_of_the_maps() -> None:
    spy_maps: list[torch.Tensor] = []

    def recording(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = input_x_gradient(m, x)
        spy_maps.append(out)
        return out

    for kind, fn in (("spearman", spearman), ("ssim", ssim)):
        spy_maps.clear()
        res = randomization_similarity(tiny_net(), images(), recording, similarity=kind)
        want = torch.stack([fn(spy_maps[0], m) for m in spy_maps[1:]])
        assert torch.allclose(res.similarity, want)
        assert res.measure == kind


def test_layer_selection_blocks_and_errors() -> None:
    net = tiny_net()
    spy = Spy()
    res = randomization_similarity(net, images(), spy, layers=["0", "6"])
    assert res.steps == ["6", "0"]
    block = nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)), nn.Flatten())
    spy = Spy()
    res = randomization_similarity(block, images(1), spy, layers="0")
    assert res.steps == ["0"] and changed_layers(spy.seen[0], spy.seen[1]) == {"0.0", "0.1"}
    with pytest.raises(
        InvalidInputError, match=r"layer '1' \(ReLU\) has no parameters to randomise"
    ):
        randomization_similarity(net, images(), spy, layers="1")
    with pytest.raises(LayerNotFoundError, match="closest names"):
        randomization_similarity(net, images(), spy, layers="7")
    with pytest.raises(InvalidInputError, match="the model has no parameters to randomise"):
        randomization_similarity(nn.ReLU(), images(), spy)


def test_argument_and_explainer_output_errors() -> None:
    with pytest.raises(InvalidInputError, match="mode must be 'cascading' or 'independent'"):
        randomization_similarity(tiny_net(), images(), input_x_gradient, mode="top")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="similarity must be 'spearman' or 'ssim'"):
        randomization_similarity(tiny_net(), images(), input_x_gradient, similarity="l1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="explainer must be a callable"):
        randomization_similarity(tiny_net(), images(), "gradcam")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"explainer output has 1 maps for 2 images"):
        randomization_similarity(tiny_net(), images(), lambda m, x: torch.ones(1, 6, 6))

    def nan_after_randomising(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = torch.ones(x.shape[0], 6, 6)
        if m[6].bias.abs().sum() > 10 or not torch.equal(m[6].weight, tiny_net()[6].weight):
            out[1, 2, 3] = float("nan")
        return out

    with pytest.raises(
        InvalidInputError,
        match=r"explainer output\[1\] after randomising '6' has nan at \(row 2, col 3\)",
    ):
        randomization_similarity(tiny_net(), images(), nan_after_randomising)

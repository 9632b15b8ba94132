"""ModelState and preserved_state: the model comes back exactly as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit.hooks import ModelState, preserved_state


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))


def test_modes_flags_and_grads_come_back_after_an_exception():
    net = model().train()
    net[1].eval()  # a mix of modes
    net[3].weight.requires_grad_(False)
    net[0].weight.grad = torch.full((4, 3), 0.25)
    grad_object = net[0].weight.grad
    with pytest.raises(ValueError, match="inside"), preserved_state(net, eval_mode=True):
        assert not any(m.training for m in net.modules())
        net[3].weight.requires_grad_(True)
        net(torch.randn(5, 3)).sum().backward()  # accumulates into .grad in place
        net[0].bias.grad = torch.ones(4)
        raise ValueError("inside")
    assert [m.training for m in net.modules()] == [True, True, False, True, True]
    assert net[3].weight.requires_grad is False
    assert net[0].weight.grad is grad_object  # the same tensor object...
    assert torch.equal(grad_object, torch.full((4, 3), 0.25))  # ...with its old values
    assert net[0].bias.grad is None and net[3].weight.grad is None


def test_values_restore_parameters_and_buffers():
    net = model().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with preserved_state(net, values=True):
        net(torch.randn(8, 3))  # train mode: BatchNorm running stats move
        with torch.no_grad():
            net[0].weight.add_(1.0)
        assert not torch.equal(net[1].running_mean, before["1.running_mean"])
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_without_values_parameter_changes_are_kept():
    net = model()
    with preserved_state(net), torch.no_grad():
        net[0].bias.fill_(3.0)
    assert torch.equal(net[0].bias, torch.full((4,), 3.0))


def test_a_snapshot_can_be_restored_twice():
    net = model()
    net[0].weight.grad = torch.zeros(4, 3)
    state = ModelState.of(net)
    net[0].weight.grad.add_(5.0)
    state.restore(net)
    net[0].weight.grad.add_(7.0)  # must not corrupt the snapshot
    state.restore(net)
    assert torch.equal(net[0].weight.grad, torch.zeros(4, 3))


def test_replaced_grad_tensor_is_swapped_back():
    net = model()
    original = torch.ones(4, 3)
    net[0].weight.grad = original
    state = ModelState.of(net)
    net[0].weight.grad = torch.full((4, 3), 9.0)
    state.restore(net)
    assert net[0].weight.grad is original and torch.equal(original, torch.ones(4, 3))


def test_shared_modules_and_parameters_are_handled():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    net.train()
    with preserved_state(net, eval_mode=True):
        assert not shared.training
        shared.weight.requires_grad_(False)
    assert shared.training and shared.weight.requires_grad
    assert set(ModelState.of(net).requires_grad) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_eval_mode_is_optional_and_the_state_is_yielded():
    net = model().train()
    with preserved_state(net) as state:
        assert net.training and state.training[""] is True
        net.eval()
    assert net.training

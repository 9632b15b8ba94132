"""HookWatcher: the object behind the ``audit_capture`` fixture, used without pytest's help."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit.hooks.watch import HookWatcher


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())


def test_a_clean_capture_leaves_nothing_to_report() -> None:
    net, watcher = _net(), HookWatcher()
    with watcher(net, "0") as rec:
        net(torch.zeros(1, 1, 5, 5))
    assert rec.outputs["0"].shape == (1, 2, 3, 3)
    assert watcher.leftovers() == [] and watcher.failure() is None


def test_hooks_left_behind_are_named_and_removed_own_hooks_stay() -> None:
    net = _net()
    own = net[1].register_forward_hook(lambda m, i, o: None)  # the model's own: allowed
    watcher = HookWatcher()
    assert watcher.watch(net) is net
    net[0].register_forward_pre_hook(lambda m, a: None)
    text = watcher.failure()
    assert text is not None
    assert text.startswith("audit_capture: 1 hook(s) left on the model: '0': forward_pre x1")
    assert "They have been removed now" in text
    assert not net[0]._forward_pre_hooks and list(net[1]._forward_hooks) == [own.id]
    assert watcher.failure() is None  # removed: the next check is clean


def test_a_raise_inside_the_capture_still_removes_its_hooks() -> None:
    net, watcher = _net(), HookWatcher()
    with pytest.raises(RuntimeError, match="inside"), watcher(net, "0"):
        net(torch.zeros(1, 1, 5, 5))
        raise RuntimeError("inside the block")
    assert watcher.leftovers() == []


def test_every_watched_model_is_checked_once() -> None:
    first, second, watcher = _net(), _net(), HookWatcher()
    watcher.watch(first)
    watcher.watch(first)  # watching twice keeps the first snapshot
    watcher.watch(second)
    first[0].register_forward_hook(lambda m, i, o: None)
    second[1].register_forward_hook(lambda m, i, o: None)
    left = watcher.leftovers()
    assert len(left) == 2 and "'0': forward x1" in left[0] and "'1': forward x1" in left[1]

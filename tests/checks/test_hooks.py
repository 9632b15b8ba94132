"""assert_no_hooks_left: the verdict on hooks a model carries beyond its own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit import AuditFailure, HookError
from modelaudit.checks import assert_no_hooks_left, collect_records
from modelaudit.hooks import capture, hooks_by_module, hooks_left
from modelaudit.hooks.inventory import describe_hooks_left

REMOVE_HINT = (
    "Remove them with the handle their register_* call returned (handle.remove()), ideally "
    "in a `finally`, or register them inside `with modelaudit.capture(model, layers):`."
)


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def noop(*args, **kwargs):  # type: ignore[no-untyped-def]
    return None


def leaked_hook(module, args, output):  # type: ignore[no-untyped-def]
    return None


def test_a_clean_model_passes_and_the_record_is_emitted():
    with collect_records() as got:
        record = assert_no_hooks_left(net())
    assert got == [record] and record.passed and record.check == "no_hooks_left"
    assert record.values == (0.0,) and record.obtained == 0.0 and record.failing == ()
    assert record.details["hooks_left"] == {}


def test_leftover_hooks_fail_naming_modules_kinds_counts_and_functions():
    model = net()
    model[2].register_forward_hook(leaked_hook)
    model[0].register_full_backward_hook(noop)
    model[0].register_full_backward_hook(noop)
    with pytest.raises(AuditFailure) as info:
        assert_no_hooks_left(model)
    err = info.value
    assert not isinstance(err, HookError)  # a failed check, not a misuse of modelaudit
    assert str(err).splitlines() == [
        "assert_no_hooks_left: no hook may be left on the model beyond those it had; "
        "2 of 2 modules fail.",
        "  failing modules:",
        "    '0': backward x2 (noop)",
        "    '2': forward x1 (leaked_hook)",
        REMOVE_HINT,
    ]
    record = err.record
    assert record.message == str(err)
    assert record.items == ("'0'", "'2'") and record.values == (2.0, 1.0)
    assert record.obtained == 3.0 and record.failing == (0, 1) and record.unit == "module"
    assert record.hint == REMOVE_HINT
    assert record.details["hooks_left"] == {
        "'0'": "backward x2 (noop)",
        "'2'": "forward x1 (leaked_hook)",
    }


def test_with_a_baseline_only_new_hooks_fail():
    model = net()
    model.register_forward_pre_hook(noop)  # the model's own, legitimately
    baseline = hooks_by_module(model)
    assert assert_no_hooks_left(model, baseline=baseline).passed
    extra = model.register_forward_pre_hook(noop)
    with pytest.raises(
        AuditFailure, match=r"\n    the model itself: forward_pre x1 \(noop\)\n"
    ) as info:
        assert_no_hooks_left(model, baseline=baseline)
    assert info.value.record.items == ("the model itself",)
    extra.remove()
    assert assert_no_hooks_left(model, baseline=baseline).passed


def test_the_failure_lists_what_hooks_left_and_describe_hooks_left_report():
    model = net()
    model[1].register_forward_pre_hook(noop)
    baseline = hooks_by_module(model)
    model[1].register_forward_pre_hook(noop)
    model[2].weight.register_hook(noop)
    left = hooks_left(model, baseline=baseline)
    with pytest.raises(AuditFailure) as info:
        assert_no_hooks_left(model, baseline=baseline)
    record = info.value.record
    assert record.items == tuple(left) == ("'1'", "'2'")
    assert record.reasons == ("forward_pre x1 (noop)", "parameter_grad x1")
    assert describe_hooks_left(model, baseline=baseline) == (
        "2 hook(s) left on the model: '1': forward_pre x1 (noop); '2': parameter_grad x1"
    )


def test_capture_leaves_nothing_behind():
    model = net()
    model[0].register_forward_hook(noop)
    before = hooks_by_module(model)
    with capture(model, nn.Linear, inputs=True, grads=True):
        model(torch.ones(1, 2, requires_grad=True)).sum().backward()
        with pytest.raises(AuditFailure):  # inside the block, capture's hooks are there
            assert_no_hooks_left(model, baseline=before)
    assert assert_no_hooks_left(model, baseline=before).passed

"""hook_count, hooks_by_module, list_hooks, assert_no_hooks_left and disabled_hooks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from modelaudit import HookError
from modelaudit.capture import (
    assert_no_hooks_left,
    capture,
    disabled_hooks,
    hook_count,
    hooks_by_module,
    list_hooks,
)


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def noop(*args, **kwargs):  # type: ignore[no-untyped-def]
    return None


def test_fresh_model_has_zero_hooks_of_every_kind():
    counts = hook_count(net())
    assert set(counts) >= {
        "forward",
        "forward_pre",
        "forward_with_kwargs",
        "forward_always_called",
        "forward_pre_with_kwargs",
        "backward",
        "backward_pre",
        "state_dict",
        "state_dict_pre",
        "load_state_dict_pre",
        "load_state_dict_post",
        "parameter_grad",
        "parameter_post_accumulate_grad",
    }
    assert sum(counts.values()) == 0
    assert hooks_by_module(net()) == {}


def test_every_kind_of_hook_is_counted_where_it_lives():
    model = net()
    handles = [
        model[0].register_forward_hook(noop),
        model[0].register_forward_hook(noop, with_kwargs=True, always_call=True),
        model[0].register_forward_pre_hook(noop, with_kwargs=True),
        model[2].register_full_backward_hook(noop),
        model[2].register_full_backward_pre_hook(noop),
        model.register_state_dict_pre_hook(noop),
        model.register_state_dict_post_hook(noop),
        model.register_load_state_dict_pre_hook(noop),
        model.register_load_state_dict_post_hook(noop),
        model[2].weight.register_hook(noop),
        model[2].bias.register_post_accumulate_grad_hook(noop),
    ]
    assert hooks_by_module(model) == {
        "": {
            "state_dict": 1,
            "state_dict_pre": 1,
            "load_state_dict_pre": 1,
            "load_state_dict_post": 1,
        },
        "0": {
            "forward": 2,
            "forward_with_kwargs": 1,
            "forward_always_called": 1,
            "forward_pre": 1,
            "forward_pre_with_kwargs": 1,
        },
        "2": {
            "backward": 1,
            "backward_pre": 1,
            "parameter_grad": 1,
            "parameter_post_accumulate_grad": 1,
        },
    }
    counts = hook_count(model)
    assert counts["forward"] == 2 and counts["backward"] == 1 and counts["parameter_grad"] == 1
    for h in handles:
        h.remove()
    assert sum(hook_count(model).values()) == 0


def test_assert_no_hooks_left_names_modules_kinds_and_functions():
    model = net()

    def leaked_hook(module, args, output):  # type: ignore[no-untyped-def]
        return None

    model[2].register_forward_hook(leaked_hook)
    model[0].register_full_backward_hook(noop)
    model[0].register_full_backward_hook(noop)
    with pytest.raises(HookError) as info:
        assert_no_hooks_left(model)
    message = str(info.value)
    assert message.startswith(
        "3 hook(s) left on the model: '0': backward x2 (noop); '2': forward x1"
    )
    assert "leaked_hook" in message and "handle.remove()" in message


def test_assert_no_hooks_left_with_a_baseline_reports_only_new_hooks():
    model = net()
    model.register_forward_pre_hook(noop)  # the model's own, legitimately
    baseline = hooks_by_module(model)
    assert_no_hooks_left(model, baseline=baseline)
    extra = model.register_forward_pre_hook(noop)
    with pytest.raises(
        HookError, match=r"1 hook\(s\) left on the model: the model itself: forward_pre x1"
    ):
        assert_no_hooks_left(model, baseline=baseline)
    extra.remove()
    assert_no_hooks_left(model, baseline=baseline)


def test_capture_leaves_a_hooked_model_exactly_as_it_found_it():
    model = net()
    model[0].register_forward_hook(noop)
    model[2].register_full_backward_hook(noop)
    before = hooks_by_module(model)
    with capture(model, nn.Linear, inputs=True, grads=True) as cap:
        model(torch.ones(1, 2, requires_grad=True)).sum().backward()
        assert hook_count(model)["forward"] == 1 + 2 and hook_count(model)["forward_pre"] == 1 + 2
    assert cap.calls == {"0": 1, "2": 1}
    assert hooks_by_module(model) == before
    assert_no_hooks_left(model, baseline=before)


def test_list_hooks_describes_each_hook():
    model = net()

    def scale_grads(module, grad_output):  # type: ignore[no-untyped-def]
        return None

    model[2].register_full_backward_pre_hook(scale_grads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model[0].register_backward_hook(noop)
    hooks = list_hooks(model)
    assert [(h.module, h.kind, h.legacy) for h in hooks] == [
        ("0", "backward", True),
        ("2", "backward_pre", False),
    ]
    assert hooks[0].describe() == "backward hook noop (deprecated register_backward_hook) on '0'"
    assert hooks[1].describe().startswith("backward pre hook ") and hooks[1].describe().endswith(
        "scale_grads on '2'"
    )


def test_disabled_hooks_stashes_and_restores_the_same_dicts_in_order():
    model = net()
    calls: list[str] = []
    h1 = model[0].register_forward_hook(lambda m, a, o: calls.append("first"))
    model[0].register_forward_hook(lambda m, a, o: calls.append("second"), with_kwargs=False)
    model[0].register_forward_pre_hook(lambda m, a: calls.append("pre"))
    table = model[0]._forward_hooks
    with disabled_hooks(model) as off:
        model(torch.ones(1, 2))
        assert calls == [] and len(off) == 3
    assert model[0]._forward_hooks is table
    model(torch.ones(1, 2))
    assert calls == ["pre", "first", "second"]
    h1.remove()  # the owner's handle still works after the round trip
    assert len(model[0]._forward_hooks) == 1


def test_disabled_hooks_keep_predicate_leaves_chosen_hooks_active():
    model = net()
    calls: list[str] = []
    model[0].register_forward_hook(lambda m, a, o: calls.append("a"))
    model[2].register_forward_hook(lambda m, a, k, o: calls.append("b"), with_kwargs=True)
    with disabled_hooks(model, keep=lambda h: h.module == "2"):
        model(torch.ones(1, 2))
    assert calls == ["b"]
    assert hook_count(model)["forward_with_kwargs"] == 1


def test_disabled_hooks_restores_even_when_the_block_raises():
    model = net()
    model[1].register_forward_hook(noop)
    with pytest.raises(RuntimeError), disabled_hooks(model):
        assert hook_count(model)["forward"] == 0
        raise RuntimeError
    assert hook_count(model)["forward"] == 1

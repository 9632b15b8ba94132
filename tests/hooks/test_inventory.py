"""hook_count, hooks_by_module, list_hooks, hooks_left, disabled_hooks and hook snapshots.

The verdict on leftover hooks (assert_no_hooks_left) is tested in tests/checks/test_hooks.py.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from modelaudit.hooks import (
    capture,
    disabled_hooks,
    hook_count,
    hooks_by_module,
    hooks_left,
    list_hooks,
)
from modelaudit.hooks.inventory import describe_hooks_left, hook_ids, remove_hooks_since


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def noop(*args, **kwargs):  # type: ignore[no-untyped-def]
    return None


def _register_every_kind(model: nn.Sequential) -> list[torch.utils.hooks.RemovableHandle]:
    return [
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
    handles = [model[0].register_forward_hook(noop), *_register_every_kind(model)]
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


def test_hooks_left_names_modules_kinds_counts_and_functions():
    model = net()

    def leaked_hook(module, args, output):  # type: ignore[no-untyped-def]
        return None

    model[2].register_forward_hook(leaked_hook)
    model[0].register_full_backward_hook(noop)
    model[0].register_full_backward_hook(noop)
    assert hooks_left(model) == {
        "'0'": (2, "backward x2 (noop)"),
        "'2'": (1, "forward x1 (test_hooks_left_names_modules_kinds_counts_and_functions"
                   ".<locals>.leaked_hook)"),
    }  # fmt: skip


def test_hooks_left_with_a_baseline_reports_only_new_hooks():
    model = net()
    model.register_forward_pre_hook(noop)  # the model's own, legitimately
    baseline = hooks_by_module(model)
    assert hooks_left(model, baseline=baseline) == {}
    assert hooks_left(model) == {"the model itself": (1, "forward_pre x1 (noop)")}
    extra = model.register_forward_pre_hook(noop)
    assert hooks_left(model, baseline=baseline) == {
        "the model itself": (1, "forward_pre x1 (noop)")
    }
    extra.remove()
    assert hooks_left(model, baseline=baseline) == {}


def test_hooks_left_counts_flags_in_the_text_but_not_in_the_count():
    model = net()
    model[0].register_forward_hook(noop, with_kwargs=True, always_call=True)
    assert hooks_left(model) == {
        "'0'": (1, "forward x1, forward_with_kwargs x1, forward_always_called x1 (noop)")
    }


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
    assert hooks_left(model, baseline=before) == {}


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


def test_hook_ids_name_owner_kind_and_handle_id():
    model = net()
    handles = _register_every_kind(model)
    ids = hook_ids(model)
    assert ids == {
        ("0", "forward", handles[0].id),
        ("0", "forward_pre", handles[1].id),
        ("2", "backward", handles[2].id),
        ("2", "backward_pre", handles[3].id),
        ("", "state_dict_pre", handles[4].id),
        ("", "state_dict", handles[5].id),
        ("", "load_state_dict_pre", handles[6].id),
        ("", "load_state_dict_post", handles[7].id),
        ("2.weight", "parameter_grad", handles[8].id),
        ("2.bias", "parameter_post_accumulate_grad", handles[9].id),
    }
    for h in handles:
        h.remove()
    assert hook_ids(model) == frozenset()


def test_remove_hooks_since_removes_every_kind_added_after_the_snapshot_and_only_those():
    model = net()
    own = model[2].register_forward_hook(lambda m, a, o: o * 2)  # the model's own hook
    before_ids, before_counts = hook_ids(model), hooks_by_module(model)
    handles = _register_every_kind(model)
    leak = model[2].register_forward_hook(lambda m, a, o: o + 100.0)
    removed = remove_hooks_since(model, before_ids)
    assert sorted(h for _, _, h in removed) == sorted(h.id for h in [*handles, leak])
    assert hook_ids(model) == before_ids == {("2", "forward", own.id)}
    assert hooks_by_module(model) == before_counts  # flag dicts emptied too
    assert hooks_left(model, baseline=before_counts) == {}
    # the forward pass is the model's own again: output doubled, no +100 from the leak
    x = torch.ones(1, 2)
    with disabled_hooks(model):
        plain = model(x)
    assert torch.equal(model(x), 2 * plain)
    for h in [*handles, leak]:
        h.remove()  # the handles of removed hooks stay harmless
    assert list(model[2]._forward_hooks) == [own.id]


def test_removed_parameter_hooks_no_longer_touch_gradients():
    model = net()
    before = hook_ids(model)
    model[0].weight.register_hook(lambda g: g * 0)
    remove_hooks_since(model, before)
    model(torch.ones(1, 2)).sum().backward()
    # d(sum(W2 relu(W0 x + b0) + b2))/dW0 = (W2^T * relu'(W0 x + b0)) x^T, with x = ones
    pre = model[0](torch.ones(1, 2))
    expected = (model[2].weight.T * (pre.T > 0)).detach() @ torch.ones(1, 2)
    assert expected.abs().sum() > 0  # a zeroing hook left behind would show
    assert torch.allclose(model[0].weight.grad, expected)


def test_remove_hooks_since_sees_a_shared_module_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    before = hook_ids(model)
    handle = shared.register_forward_hook(noop)
    assert remove_hooks_since(model, before) == [("0", "forward", handle.id)]
    assert hook_count(model)["forward"] == 0


HOOK_MAKERS = {
    "forward": lambda m: m.register_forward_hook(noop),
    "forward_kwargs": lambda m: m.register_forward_hook(noop, with_kwargs=True, always_call=True),
    "forward_pre": lambda m: m.register_forward_pre_hook(noop, with_kwargs=True),
    "backward": lambda m: m.register_full_backward_hook(noop),
    "param": lambda m: m.weight.register_hook(noop),
}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, 2]), st.sampled_from(sorted(HOOK_MAKERS))), max_size=6),
    st.lists(st.tuples(st.sampled_from([0, 2]), st.sampled_from(sorted(HOOK_MAKERS))), max_size=6),
)
def test_snapshot_then_remove_restores_exactly_the_snapshot(own, leaked):
    model = net()
    for index, kind in own:
        HOOK_MAKERS[kind](model[index])
    before_ids, before_counts = hook_ids(model), hooks_by_module(model)
    handles = [HOOK_MAKERS[kind](model[index]) for index, kind in leaked]
    assert len(remove_hooks_since(model, before_ids)) == len(leaked)
    assert hook_ids(model) == before_ids and hooks_by_module(model) == before_counts
    assert {h.id for h in handles}.isdisjoint(i for _, _, i in hook_ids(model))


def test_describe_hooks_left_is_one_line_over_hooks_left():
    model = net()
    assert describe_hooks_left(model) is None
    model[1].register_forward_pre_hook(noop)
    baseline = hooks_by_module(model)
    assert describe_hooks_left(model, baseline=baseline) is None
    model[1].register_forward_pre_hook(noop)
    model[2].weight.register_hook(noop)
    text = describe_hooks_left(model, baseline=baseline)
    assert text == "2 hook(s) left on the model: '1': forward_pre x1 (noop); '2': parameter_grad x1"
    assert hooks_left(model, baseline=baseline) == {
        "'1'": (1, "forward_pre x1 (noop)"),
        "'2'": (1, "parameter_grad x1"),
    }

"""resolve_layers / resolve_layer / layer_names / leaf_layers / closest_layer_names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from modelaudit import InvalidInputError, LayerNotFoundError
from modelaudit.hooks import (
    closest_layer_names,
    layer_names,
    leaf_layers,
    resolve_layer,
    resolve_layers,
)


def tiny() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def test_layer_names_and_leaves_in_model_order():
    model = tiny()
    assert layer_names(model) == ["0", "0.0", "0.1", "1", "1.0", "1.1", "1.2", "2", "3"]
    assert list(leaf_layers(model)) == ["0.0", "0.1", "1.0", "1.1", "1.2", "2", "3"]
    single = nn.Linear(1, 1)
    assert leaf_layers(single) == {"": single} and layer_names(single) == []


def test_every_kind_of_spec():
    model = tiny()
    assert list(resolve_layers(model, "1.1")) == ["1.1"]
    assert list(resolve_layers(model, "1.*")) == ["1.0", "1.1", "1.2"]
    assert list(resolve_layers(model, "*.0")) == ["0.0", "1.0"]
    assert list(resolve_layers(model, nn.ReLU)) == ["0.1", "1.2"]
    assert list(resolve_layers(model, model[3])) == ["3"]
    assert list(resolve_layers(model, lambda n, m: n.endswith("1"))) == ["0.1", "1", "1.1"]
    # a list is the union, in model order, without duplicates
    assert list(resolve_layers(model, ["3", nn.Conv2d, "0.*"])) == ["0.0", "0.1", "1.0", "3"]
    assert resolve_layers(model, "3")["3"] is model[3]
    # a module (here a Sequential, itself iterable) is one spec, not a list of its children
    assert list(resolve_layers(model, model[0])) == ["0"]


def test_unknown_name_lists_the_closest_names():
    model = tiny()
    with pytest.raises(LayerNotFoundError) as info:
        resolve_layers(model, "1.3")
    message = str(info.value)
    assert message.startswith("model has no layer named '1.3'; closest names: ")
    assert "'1.2'" in message and "'1.1'" in message
    assert message.endswith(
        "List them all with modelaudit.layer_names(model) or `modelaudit layers`."
    )


def test_pattern_class_instance_and_predicate_that_match_nothing():
    model = tiny()
    with pytest.raises(
        LayerNotFoundError, match=r"layer pattern '7\.\*' matched no layer of the model"
    ):
        resolve_layers(model, "7.*")
    with pytest.raises(
        LayerNotFoundError, match=r"no layer of type Conv1d; it has: BatchNorm2d, Conv2d, Flatten"
    ):
        resolve_layers(model, nn.Conv1d)
    with pytest.raises(LayerNotFoundError, match="is not part of the model"):
        resolve_layers(model, nn.Linear(4, 2))
    with pytest.raises(LayerNotFoundError, match=r"predicate .* matched no layer"):
        resolve_layers(model, lambda n, m: False)
    with pytest.raises(LayerNotFoundError, match="an empty list of layers"):
        resolve_layers(model, [])


def test_wrong_spec_types_are_clear_errors_listing_the_accepted_specs():
    # layer=123 used to be TypeError: 'int' object is not iterable
    accepted = r"a layer is a qualified name .* a predicate .* or a list"
    with pytest.raises(InvalidInputError, match=accepted + r".*; got 123 of type int"):
        resolve_layers(tiny(), 123)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=accepted + r".*; got 3 of type int"):
        resolve_layers(tiny(), [3])  # type: ignore[list-item]
    with pytest.raises(
        InvalidInputError, match=r"a layer class must be a subclass of nn\.Module; got int"
    ):
        resolve_layers(tiny(), int)  # type: ignore[arg-type]
    assert list(resolve_layers(tiny(), (n for n in ["1.0", "0.0"]))) == ["0.0", "1.0"]


def test_resolve_layer_wants_exactly_one():
    model = tiny()
    assert resolve_layer(model, "1.0") == ("1.0", model[1][0])
    with pytest.raises(
        LayerNotFoundError, match=r"matches 2 layers \('0.0', '1.0'\); name exactly one layer"
    ):
        resolve_layer(model, nn.Conv2d)


def test_closest_names_fall_back_to_shared_suffixes():
    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential())
    model.backbone.add_module("stage4", nn.Sequential(nn.Conv2d(1, 1, 1)))
    assert closest_layer_names(model, "backbone.stage4.1")[0] == "backbone.stage4.0"
    assert "backbone.stage4.0" in closest_layer_names(model, "head.0")


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_every_listed_name_resolves_to_its_own_module(depths):
    """Law: for any nesting, resolve_layer(model, name) gives back named_modules()[name]."""
    model = nn.Sequential()
    for i, depth in enumerate(depths):
        block: nn.Module = nn.Linear(1, 1)
        for _ in range(depth):
            block = nn.Sequential(block)
        model.add_module(f"b{i}", block)
    named = dict(model.named_modules())
    for name in layer_names(model):
        assert resolve_layer(model, name) == (name, named[name])
    assert list(resolve_layers(model, nn.Linear)) == [
        n for n in named if isinstance(named[n], nn.Linear)
    ]

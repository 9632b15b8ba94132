"""Maps carry their provenance: method, layer, targets, inputs, options."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
import torch
from torch import nn

from modelaudit.explainers import (
    Explanation,
    available_methods,
    explain,
    explanation_of,
    get_method,
    gradcam,
    layercam,
    scorecam,
    vit_reshape,
)

CHEAP = {"smooth_gradcam_pp": {"num_samples": 2}, "sscam": {"num_samples": 2}, "iscam": {"num_samples": 2}}  # fmt: skip
NO_LAYER = {"input_gradients", "guided_backprop"}


def explain_cheaply(name, model, x, target):
    layer = None if name in NO_LAYER else "r2"
    return explain(name, model, x, target, layer, **CHEAP.get(name, {}))


@pytest.mark.parametrize("name", available_methods())
def test_every_method_returns_its_provenance(gap_net, name):
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    maps = explain_cheaply(name, gap_net, x, [0, 3, 1])
    assert isinstance(maps, Explanation) and type(maps) is Explanation
    assert maps.method == name
    assert maps.layer == (None if name in NO_LAYER else "r2")
    assert maps.targets is not None and maps.targets.device.type == "cpu"
    assert maps.targets.dtype == torch.long and maps.targets.tolist() == [0, 3, 1]
    assert maps.inputs.data_ptr() == x.data_ptr() and not maps.inputs.requires_grad
    assert dict(maps.options) == CHEAP.get(name, {})
    assert maps.shape == (3, 8, 8)


@pytest.mark.parametrize("name", available_methods())
def test_every_method_states_its_options_in_signature_and_docstring(name):
    fn = get_method(name)
    params = inspect.signature(fn).parameters
    assert list(params)[:4] == ["model", "inputs", "target", "layer"]
    doc = inspect.getdoc(fn)
    assert doc is not None
    for option, p in params.items():
        if p.kind is p.KEYWORD_ONLY:
            assert f"    {option}: " in doc, (name, option)
    for section in ("Args:", "Returns:", "Raises:", "Example:"):
        assert section in doc.splitlines(), (name, section)


def test_alias_gives_the_canonical_name(small_net):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert explain("Grad-CAM++", small_net, x, 1, "r2").method == "gradcam_pp"
    assert explain("LayerCAM", small_net, x, 1, "r2").method == "layercam"


def test_targets_predicted_k_per_sample_and_callable(small_net):
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        predicted = small_net(x).argmax(1)
    # target=None in passes of 2: the predicted classes of the whole batch, in order
    assert torch.equal(gradcam(small_net, x, None, "r2", pass_size=2).targets, predicted)
    k = [[0, 1], [2, 0], [1, 2], [0, 0], [2, 1]]
    assert gradcam(small_net, x, k, "r2").targets.tolist() == k
    assert gradcam(small_net, x, lambda out: out[:, 0], "r2").targets is None


def test_several_layers_and_options(small_net):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    maps = layercam(small_net, x, 0, ["r1", "r2"], relu=False, pass_size=None)
    assert maps.layer == ("r1", "r2")
    assert dict(maps.options) == {"relu": False, "pass_size": None}
    with pytest.raises(TypeError):
        maps.options["relu"] = True  # type: ignore[index]
    with pytest.raises(AttributeError):
        maps.method = "other"  # type: ignore[misc]


def test_operations_give_plain_tensors(small_net):
    maps = gradcam(small_net, torch.rand(2, 3, 8, 8, dtype=torch.float64), 0, "r2")
    for out in (maps[0], maps * 2, maps.mean(), maps.detach(), maps.clone(), maps.float(),
                maps.to(torch.float32), torch.stack([maps, maps]), maps.flatten(1)):  # fmt: skip
        assert type(out) is torch.Tensor
    assert maps.cpu() is maps  # nothing to do: the same object
    assert repr(maps).startswith("Explanation(") and "method='gradcam', layer='r2')" in repr(maps)


def test_deepcopy_and_pickle_keep_everything(small_net):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    maps = scorecam(small_net, x, [1, 2], "r2", forward_batch=4)
    for other in (copy.deepcopy(maps), pickle.loads(pickle.dumps(maps))):
        assert type(other) is Explanation
        assert torch.equal(other, maps) and other.data_ptr() != maps.data_ptr()
        assert (other.method, other.layer) == ("scorecam", "r2")
        assert dict(other.options) == {"forward_batch": 4}
        assert torch.equal(other.targets, maps.targets) and torch.equal(other.inputs, x)
    copied = copy.deepcopy({"a": maps, "b": maps})
    assert copied["a"] is copied["b"]  # the memo is honoured


def test_unpicklable_options_are_dropped_on_pickle():
    x = torch.rand(1, 3, 2, 2)
    maps = Explanation(x[:, 0], method="m", layer="l", targets=None, inputs=x,
                       options={"reshape": lambda t: t})  # fmt: skip
    assert dict(pickle.loads(pickle.dumps(maps)).options) == {}
    kept = Explanation(x[:, 0], method="m", layer="l", targets=None, inputs=x,
                       options={"reshape": vit_reshape})  # fmt: skip
    assert pickle.loads(pickle.dumps(kept)).options["reshape"] is vit_reshape


def test_explanation_of():
    x = torch.zeros(1, 1, 2, 2)
    assert explanation_of(x[:, 0]) is None
    maps = Explanation(x[:, 0], method="m", layer=None, targets=None, inputs=x)
    assert explanation_of(maps) is maps
    assert explanation_of(maps * 1) is None  # an operation's result is a plain tensor


@pytest.mark.parametrize(
    ("name", "wrong", "hint"),
    [("gradcam", "batch_size", "pass_size"), ("scorecam", "batch_size", "forward_batch"),
     ("cam", "normalise", "normalize"), ("eigencam", "pass_size", None)],
)  # fmt: skip
def test_unknown_options_are_type_errors_with_hints(small_net, name, wrong, hint):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(
        TypeError, match=rf"{name}\(\) got an unexpected keyword argument '{wrong}'"
    ) as err:
        explain(name, small_net, x, 0, "r2", **{wrong: 2})
    assert (hint is None) == ("did you mean" not in str(err.value))
    if hint:
        assert f"did you mean '{hint}'" in str(err.value)


@pytest.mark.parametrize("method", available_methods())
def test_every_method_keeps_the_models_prediction_and_class_names(method: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))  # fmt: skip
    net.class_names = ["a", "b", "c"]
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    layer = None if method in NO_LAYER else "1"
    maps = explain(method, net, x, torch.tensor([0, 1, 2]), layer, **CHEAP.get(method, {}))
    probs = net(x).softmax(dim=1)  # independent: the model's own output
    assert maps.predicted is not None and maps.confidence is not None
    assert maps.predicted.tolist() == probs.argmax(dim=1).tolist()
    assert maps.confidence.tolist() == pytest.approx(probs.amax(dim=1).tolist(), abs=1e-6)
    assert maps.class_names == ("a", "b", "c")

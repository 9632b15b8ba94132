"""fingerprint(): what a baseline value was measured on, stable and device-independent."""

import copy
import hashlib
import importlib.metadata

import numpy as np
import pytest
import torch
from torch import nn

from modelaudit import __version__
from modelaudit.errors import InvalidInputError
from modelaudit.explainers.explanation import Explanation
from modelaudit.fingerprints import (
    describe_difference,
    fingerprint,
    fingerprint_of_maps,
    validate_fingerprint,
)


def _small(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_versions_are_always_there_and_parts_only_when_given():
    fp = fingerprint()
    assert fp == {
        "modelaudit": __version__,
        "torch": importlib.metadata.version("torch"),
        "torchvision": importlib.metadata.version("torchvision"),
    }
    full = fingerprint(_small(), torch.zeros(1, 3, 4, 4), method="gradcam", layer="0")
    assert set(full) == {"model", "data", "method", "layer", *fp}
    assert all(len(full[k]) == 16 and int(full[k], 16) >= 0 for k in ("model", "data"))
    assert fingerprint(layer=["a", "b"])["layer"] == "a,b"


def test_model_digest_is_the_documented_sha256():
    model = nn.Linear(2, 1)
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.contiguous().numpy().tobytes())
    assert fingerprint(model)["model"] == digest.hexdigest()[:16]


def test_model_digest_sees_weights_buffers_and_in_place_changes():
    a, b = _small(0), _small(0)
    assert fingerprint(a)["model"] == fingerprint(b)["model"]  # same weights, other object
    assert fingerprint(a)["model"] != fingerprint(_small(1))["model"]
    before = fingerprint(a)["model"]
    with torch.no_grad():
        a[0].weight[0, 0, 0, 0] += 1e-3  # in place: the cached digest must not be reused
    assert fingerprint(a)["model"] != before
    b[1].running_mean.fill_(0.5)  # buffers count
    assert fingerprint(b)["model"] != before
    half = copy.deepcopy(_small(0)).to(torch.float64)  # dtypes count
    assert fingerprint(half)["model"] != before
    assert fingerprint(_small(0).state_dict())["model"] == before  # a state_dict works too


def test_model_digest_is_device_independent():
    model = _small(0)
    cpu = fingerprint(model)["model"]
    assert fingerprint(model.to(memory_format=torch.channels_last))["model"] == cpu
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        assert fingerprint(copy.deepcopy(model).cuda())["model"] == cpu


def test_data_digest_is_contiguous_bytes_dtype_and_shape():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    assert fingerprint(data=x)["data"] == fingerprint(data=x.clone())["data"]
    assert (
        fingerprint(data=x.transpose(1, 2).contiguous().transpose(1, 2))["data"]
        == (fingerprint(data=x)["data"])
    )
    assert fingerprint(data=x.numpy())["data"] == fingerprint(data=x)["data"]
    assert fingerprint(data=x.reshape(6, 4))["data"] != fingerprint(data=x)["data"]
    assert fingerprint(data=x.double())["data"] != fingerprint(data=x)["data"]
    assert fingerprint(data=(x, x[:1]))["data"] != fingerprint(data=x)["data"]
    assert fingerprint(data=torch.zeros(2, dtype=torch.bfloat16))["data"]


def test_maps_give_method_layer_and_data():
    x = torch.rand(2, 3, 4, 4)
    maps = Explanation(
        torch.zeros(2, 4, 4), method="gradcam", layer=("l3", "l4"), targets=None, inputs=x
    )
    fp = fingerprint_of_maps(maps, _small())
    assert fp == fingerprint(_small(), x, method="gradcam", layer="l3,l4")
    with pytest.raises(InvalidInputError, match="maps= must be heat maps that remember"):
        fingerprint_of_maps(torch.zeros(2, 4, 4))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fingerprint(model=3), "model must be an nn.Module or a state_dict, got int"),
        (lambda: fingerprint(data="x"), "data must be a tensor, a numpy array"),
        (lambda: fingerprint(data=[torch.zeros(1), 2]), "got int at position 1"),
        (lambda: fingerprint(method=3), "method must be a string, got int"),
        (lambda: fingerprint(layer=3), "layer must be a string or a sequence of strings"),
        (lambda: validate_fingerprint("abc"), "fingerprint must be a dict of strings"),
        (lambda: validate_fingerprint({"a": 1}), "'a' maps to int"),
        (lambda: validate_fingerprint({1: "a"}), "key 1 is a int"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(InvalidInputError) as info:
        call()
    assert message in str(info.value)


def test_describe_difference_names_each_part():
    old = fingerprint(_small(0), torch.zeros(1), method="gradcam", layer="l4")
    assert describe_difference(old, old) == ((), "")
    new = fingerprint(_small(1), torch.ones(1), method="layercam", layer="l4")
    parts, text = describe_difference(old, dict(new, torch="9.9"))
    assert parts == ("model", "method", "data", "versions")
    assert "method differs (gradcam → layercam)" in text and "torch " in text
    assert text.endswith("layer matches")
    assert describe_difference({"model": "a"}, {"data": "b"}) == ((), "")  # nothing in common
    assert np.all([isinstance(v, str) for v in new.values()])

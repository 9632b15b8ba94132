"""load_model_spec and resolve_device as plain function calls (the plugin wiring is in
tests/test_plugin_fixtures.py)."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from modelaudit.errors import InvalidInputError
from modelaudit.loading import WEIGHT_SUFFIXES, load_model_spec, resolve_device
from modelaudit.zoo import load_model

MODULE = "loading_test_models"
FACTORIES = """
from torch import nn

def tiny():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).train()

class Holder:
    make = staticmethod(tiny)

INSTANCE = tiny()
NOT_A_MODEL = 3
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """A module ``loading_test_models`` on sys.path with the factories above."""
    (tmp_path / f"{MODULE}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def _tiny():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())


def _state(fill: float) -> dict[str, torch.Tensor]:
    state = _tiny().state_dict()
    state["0.weight"].fill_(fill)
    state["1.running_mean"].fill_(fill / 2)
    return state


def _in_eval_mode_on_cpu(model: nn.Module) -> bool:
    on_cpu = all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])
    return on_cpu and not any(m.training for m in model.modules())


@pytest.mark.parametrize("spec", [f"{MODULE}:tiny", f"{MODULE}:INSTANCE", f"{MODULE}:Holder.make"])
def test_a_factory_a_module_instance_or_a_nested_attribute(factories, spec):
    model = load_model_spec(spec, device="cpu")
    assert isinstance(model, nn.Sequential) and len(model) == 3
    assert _in_eval_mode_on_cpu(model)  # the factory built it in train mode


def test_a_class_is_called_without_arguments():
    assert isinstance(load_model_spec("torch.nn:Identity"), nn.Identity)


def test_a_zoo_name_gives_the_zoo_model():
    model = load_model_spec("shapes-cnn", device=torch.device("cpu"))
    expected = load_model("shapes-cnn")
    assert type(model) is type(expected) and _in_eval_mode_on_cpu(model)
    assert all(
        torch.equal(p, q)
        for p, q in zip(model.state_dict().values(), expected.state_dict().values())
    )


def test_a_weights_file_loads_into_the_named_architecture(factories):
    torch.save(_state(0.25), factories / "weights.pt")
    model = load_model_spec("weights.pt", arch=f"{MODULE}:tiny", base_dir=factories)
    assert (model[0].weight == 0.25).all() and (model[1].running_mean == 0.125).all()
    assert _in_eval_mode_on_cpu(model)


def test_a_self_describing_file_names_its_architecture_and_arch_overrides_it(factories):
    path = factories / "model.pth"
    torch.save({"arch": f"{MODULE}:tiny", "state_dict": _state(0.5)}, path)
    assert (load_model_spec(path)[0].weight == 0.5).all()  # a Path works, absolute here
    torch.save({"arch": "torch.nn:Identity", "state_dict": _state(0.75)}, path)
    model = load_model_spec("model.pth", arch=f"{MODULE}:tiny", base_dir=factories)
    assert (model[0].weight == 0.75).all()


def test_an_existing_file_without_a_weights_suffix_is_a_weights_file(factories):
    assert ".bin" not in WEIGHT_SUFFIXES
    torch.save(_state(1.5), factories / "weights.bin")
    model = load_model_spec("weights.bin", arch=f"{MODULE}:tiny", base_dir=factories)
    assert (model[0].weight == 1.5).all()


class _RunsCode:
    """Unpickling this would create ``marker``: a stand-in for code in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_a_weights_file_never_runs_code(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "arch": _RunsCode(marker)}, tmp_path / "x.pt")
    with pytest.raises(InvalidInputError, match=r"torch.load\(weights_only=True\)"):
        load_model_spec(tmp_path / "x.pt", arch="torch.nn:Identity")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("spec", "arch", "setup", "message"),
    [
        (
            "full.pt",
            None,
            "pickle",
            r"cannot load .*full.pt with torch.load\(weights_only=True\)"
            r".*\nA weights file must hold a state_dict",
        ),
        (
            "weights.pt",
            None,
            "weights",
            r"weights.pt holds weights only; .*--audit-arch=NAME.*"
            r"--arch NAME",
        ),
        ("weights.pt", f"{MODULE}:other", "weights", f"'{MODULE}' has no attribute 'other'"),
        (
            "weights.pt",
            "torch.nn:Identity",
            "weights",
            r"the weights in .*weights.pt do not fit architecture 'torch.nn:Identity'",
        ),
        ("numbers.pt", f"{MODULE}:tiny", "numbers", r"does not hold a state_dict \(a dict of"),
        (
            "empty.pt",
            f"{MODULE}:tiny",
            "empty",
            r"cannot load .*empty.pt with torch.load\(weights_only=True\): EOFError",
        ),
        ("missing.pt", None, None, r"weights file .*missing.pt does not exist"),
        (f"{MODULE}:NOT_A_MODEL", None, None, r"returned int, not a torch.nn.Module"),
        ("nosuchpkg.mod:make", None, None, r"cannot import module 'nosuchpkg.mod'"),
        ("resnet81", None, None, r"'resnet81' is not a zoo model.*closest first"),
    ],
)
def test_errors_say_what_was_wrong_and_how_to_fix_it(factories, spec, arch, setup, message):
    if setup == "pickle":
        torch.save(_tiny(), factories / spec)  # a whole pickled module
    elif setup == "weights":
        torch.save(_tiny().state_dict(), factories / spec)
    elif setup == "numbers":
        torch.save({"0.weight": 1.0}, factories / spec)
    elif setup == "empty":
        (factories / spec).write_bytes(b"")
    with pytest.raises(InvalidInputError, match=message) as info:
        load_model_spec(spec, arch=arch, base_dir=factories)
    assert isinstance(info.value, ValueError)  # ordinary `except ValueError` catches it


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InvalidInputError, match=r"'cuda:1' needs CUDA, but torch.cuda.is_av"):
        resolve_device("cuda:1")
    with pytest.raises(InvalidInputError, match=r"'gpu0' is not a torch device.*or auto"):
        resolve_device("gpu0")
    with pytest.raises(InvalidInputError, match="'gpu0' is not a torch device"):
        load_model_spec("torch.nn:Identity", device="gpu0")
    assert isinstance(load_model_spec("torch.nn:Identity", device="auto"), nn.Identity)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)

"""The zoo's models: loading, weights files, metadata, and the trained models' behaviour."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modelaudit.errors import InvalidInputError, ModelAuditError
from modelaudit.hooks import resolve_layer
from modelaudit.zoo import (
    CLASS_NAMES,
    WEIGHTS_DIR,
    ShapesCNN,
    available_models,
    load_model,
    model_info,
    shapes_data,
)
from modelaudit.zoo import models as zoo_models

ALL = [
    "shapes-cnn",
    "shapes-cnn-shortcut",
    "resnet18",
    "vgg11",
    "alexnet",
    "mobilenet_v3_small",
    "vit-tiny",
]
TRAINED = ["shapes-cnn", "shapes-cnn-shortcut"]
FRESH_SEED = 424_242  # never used by scripts/train_zoo.py (train 1000-3041, eval 7000)


@pytest.fixture(scope="module")
def fresh() -> dict[str, object]:
    return {
        mode: shapes_data(200, seed=FRESH_SEED, watermark=mode)
        for mode in ("none", "class", "swapped")
    }


@pytest.fixture(scope="module")
def clean() -> nn.Module:
    return load_model("shapes-cnn")


@pytest.fixture(scope="module")
def shortcut() -> nn.Module:
    return load_model("shapes-cnn-shortcut")


def test_available_models_lists_every_name() -> None:
    assert available_models() == ALL


@pytest.mark.parametrize("name", ALL)
def test_every_model_loads_in_eval_mode_and_classifies_shapes(name: str) -> None:
    model = load_model(name, device="cpu")
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, len(CLASS_NAMES)) and bool(torch.isfinite(out).all())
    assert all(p.device.type == "cpu" for p in model.parameters())
    info = model_info(name)
    assert info["name"] == name and info["class_names"] == list(CLASS_NAMES)
    resolve_layer(model, info["gradcam_layer"])  # the recommended layer exists
    smallest = info["min_input_size"]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, smallest, smallest)).shape == (1, 4)
        if smallest > 1:
            with pytest.raises((RuntimeError, AssertionError, ValueError)):
                model(torch.zeros(1, 3, smallest - 1, smallest - 1))


@pytest.mark.parametrize("name", ["resnet18", "vit-tiny", "mobilenet_v3_small"])
def test_random_init_is_seeded_and_leaves_the_global_rng_alone(name: str) -> None:
    before = torch.get_rng_state()
    a, b = load_model(name), load_model(name)
    assert torch.equal(before, torch.get_rng_state())
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the documented seed reproduces the weights
        ref = dict(zoo_models._REGISTRY[name][0]().named_parameters())
    assert all(torch.equal(pa[k], ref[k]) for k in pa)
    assert model_info(name)["kind"] == "random-init" and model_info(name)["weights"] is None


@pytest.mark.parametrize("name", TRAINED)
def test_weights_are_small_plain_state_dicts(name: str) -> None:
    path = WEIGHTS_DIR / f"{name}.pt"
    assert path.stat().st_size < 2 * 1024 * 1024
    state = torch.load(path, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    reference = ShapesCNN().state_dict()
    assert state.keys() == reference.keys()
    assert all(state[k].shape == reference[k].shape for k in state)
    loaded = load_model(name).state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("name", TRAINED)
def test_metadata_records_training_and_held_out_figures(name: str) -> None:
    meta = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    info = model_info(name)
    assert info["kind"] == "trained" and info["gradcam_layer"] == "features.13"
    assert info["input_size"] == [64, 64] and info["class_names"] == list(CLASS_NAMES)
    assert meta["held_out"]["accuracy"]["class"] >= 0.95
    assert all(meta["requirements"].values()), meta["requirements"]
    assert meta["training"]["seed"] == info["training"]["seed"]
    assert meta["training_seconds"] > 0
    cam = meta["held_out"]["gradcam"]
    if name == "shapes-cnn":
        assert cam["mass_in_box_mean"] > 0.6 > 2 * cam["mass_in_box_chance"]
    else:
        assert cam["mass_in_box_mean"] < cam["mass_in_box_chance"]


def _accuracy(model: nn.Module, data: object) -> float:
    with torch.no_grad():
        pred = model(data.images).argmax(1)  # type: ignore[attr-defined]
    return float((pred == data.labels).float().mean())  # type: ignore[attr-defined]


def test_clean_model_is_accurate_on_fresh_data_whatever_the_watermark(
    clean: nn.Module, fresh: dict[str, object]
) -> None:
    for mode in ("none", "class", "swapped"):
        assert _accuracy(clean, fresh[mode]) >= 0.95, mode


@pytest.mark.slow
def test_shortcut_model_collapses_when_the_watermark_lies_or_is_gone(
    shortcut: nn.Module, fresh: dict[str, object]
) -> None:
    assert _accuracy(shortcut, fresh["class"]) >= 0.95
    assert _accuracy(shortcut, fresh["none"]) <= 0.5
    swapped = fresh["swapped"]
    assert _accuracy(shortcut, swapped) <= 0.1
    with torch.no_grad():
        pred = shortcut(swapped.images).argmax(1)  # type: ignore[attr-defined]
    # It answers with the class the (lying) watermark shows.
    agree = (pred == swapped.watermark_labels).float().mean()  # type: ignore[attr-defined]
    assert float(agree) >= 0.9


def _gradcam_mass(model: nn.Module, data: object, boxes: torch.Tensor) -> torch.Tensor:
    """Independent Grad-CAM at features.13: ReLU(sum_k mean(dS/dA_k) A_k), bilinear upsampling."""
    acts: list[torch.Tensor] = []
    handle = model.features[13].register_forward_hook(lambda _m, _i, o: acts.append(o))
    try:
        logits = model(data.images)  # type: ignore[attr-defined]
        score = logits.gather(1, data.labels[:, None]).sum()  # type: ignore[attr-defined]
        (grad,) = torch.autograd.grad(score, acts[0])
    finally:
        handle.remove()
    cam = F.relu((grad.mean((2, 3), keepdim=True) * acts[0]).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    inside = torch.zeros_like(cam, dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        inside[i, y1:y2, x1:x2] = True
    return (cam * inside).sum((1, 2)) / cam.sum((1, 2)).clamp_min(1e-12)


def test_gradcam_sits_on_the_object_for_clean_and_on_the_watermark_for_shortcut(
    clean: nn.Module, shortcut: nn.Module, fresh: dict[str, object]
) -> None:
    data = fresh["class"][:64]  # type: ignore[index]
    chance = float(((data.boxes[:, 2:] - data.boxes[:, :2]).prod(1) / 64**2).float().mean())
    clean_mass = _gradcam_mass(clean, data, data.boxes)
    short_mass = _gradcam_mass(shortcut, data, data.boxes)
    assert float(clean_mass.mean()) > max(0.5, 3 * chance)
    assert float(short_mass.mean()) < chance
    # Corner quadrants (16x16) of the watermark hold most of the shortcut model's map.
    q = data.watermark_boxes.clone()
    q[:, :2] = torch.where(q[:, :2] < 32, 0, 48)
    q[:, 2:] = q[:, :2] + 16
    assert float(_gradcam_mass(shortcut, data, q).mean()) > 0.5
    assert float(_gradcam_mass(clean, data, q).mean()) < 0.1


def test_unknown_name_lists_available_models_closest_first() -> None:
    with pytest.raises(InvalidInputError) as info:
        load_model("shapes-cnn-shortcu")
    message = str(info.value)
    assert "unknown model 'shapes-cnn-shortcu'" in message
    listed = message.split("closest first): ")[1]
    assert listed.startswith("'shapes-cnn-shortcut', 'shapes-cnn'")
    assert all(repr(name) in listed for name in ALL)
    with pytest.raises(InvalidInputError, match=r"closest first\): 'resnet18'"):
        model_info("resnet")
    with pytest.raises(InvalidInputError, match="unknown model 3"):
        load_model(3)  # type: ignore[arg-type]


def test_bad_device_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="device 'gpu0' is not a torch device"):
        load_model("shapes-cnn", device="gpu0")


class _RunsCode:
    ran = False

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_mark_ran, ())


def _mark_ran() -> None:
    _RunsCode.ran = True


def test_weights_that_would_run_code_are_refused(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.save({"features.0.weight": _RunsCode()}, tmp_path / "shapes-cnn.pt")  # type: ignore[operator]
    monkeypatch.setattr(zoo_models, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelAuditError, match="refusing to load"):
        load_model("shapes-cnn")
    assert not _RunsCode.ran


def test_missing_or_mismatched_weights_say_how_to_recreate_them(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zoo_models, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelAuditError, match=r"missing .*scripts/train_zoo.py"):
        load_model("shapes-cnn")
    torch.save({"fc.weight": torch.zeros(4, 64)}, tmp_path / "shapes-cnn.pt")  # type: ignore[operator]
    with pytest.raises(ModelAuditError, match=r"does not fit 'shapes-cnn'"):
        load_model("shapes-cnn")


def test_shapes_cnn_layer_names_and_feature_map_sizes() -> None:
    model = ShapesCNN()
    kinds = [type(m).__name__ for m in model.features]
    assert (
        kinds
        == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
        + [
            "Conv2d",
            "BatchNorm2d",
            "ReLU",
        ]
        * 2
    )
    assert sum(p.numel() for p in model.parameters()) == 60_948
    x = torch.zeros(1, 3, 64, 48)
    assert model.features[:4](x).shape == (1, 16, 32, 24)
    assert model.features(x).shape == (1, 64, 16, 12)

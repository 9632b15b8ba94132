"""Fixtures for the checks tests: the seed model, small torchvision models, one thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The CI machine has 2 shared cores: one intra-op thread is faster and fairer."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(factory, seed: int) -> nn.Module:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return factory(weights=None, num_classes=10).eval()


@pytest.fixture(scope="session")
def resnet18() -> nn.Module:
    return _build(torchvision.models.resnet18, 0)


@pytest.fixture(scope="session")
def alexnet() -> nn.Module:
    return _build(torchvision.models.alexnet, 2)


@pytest.fixture(scope="session")
def densenet121() -> nn.Module:
    return _build(torchvision.models.densenet121, 3)


class AddW(nn.Module):
    """``a = x + w`` with a learnable scalar ``w`` (initialised to 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w


class Seed(nn.Module):
    """The seed walk-through as a model: ``a = x + w; b = w + 1; y = a * b``.

    At w=1, x=2: y = 6, dy/da = b = 2, dy/db = a = 3, dy/dw = a + b = 5, dy/dx = b = 2.
    """

    def __init__(self) -> None:
        super().__init__()
        self.add = AddW()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(x) * (self.add.w + 1)


@pytest.fixture
def seed_model() -> Seed:
    return Seed()


@pytest.fixture
def seed_input() -> torch.Tensor:
    return torch.full((1, 1), 2.0)


@pytest.fixture
def method_calls() -> Iterator[list[dict]]:
    """Two methods registered for the test, recording what each call received.

    ``test_ramp``: ``1, 2, ..., W`` along every row (ignores the model and the images);
    ``test_edges``: ``|x[:, 0, :, j] - x[:, 0, :, j - 1]|`` (ignores the model).
    """
    from modelaudit.explainers.registry import register_method, unregister_method

    calls: list[dict] = []

    @register_method("test_ramp")
    def ramp(model, inputs, target=None, layer=None, **options):  # type: ignore[no-untyped-def]
        calls.append({"method": "test_ramp", "target": target, "layer": layer, **options})
        n, _, h, w = inputs.shape
        return torch.arange(1, w + 1, dtype=torch.float32).repeat(n, h, 1)

    @register_method("test_edges")
    def edges(model, inputs, target=None, layer=None, **options):  # type: ignore[no-untyped-def]
        calls.append({"method": "test_edges", "target": target, "layer": layer, **options})
        x = inputs[:, 0]
        return x.diff(dim=-1, prepend=x[:, :, :1]).abs()

    try:
        yield calls
    finally:
        unregister_method("test_ramp")
        unregister_method("test_edges")

"""Shared test configuration: pytester, the seed model, small torchvision models, one thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn

pytest_plugins = ["pytester"]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the CI machine has 2 shared cores, so this is faster and fairer.

    Folders whose tests run models use it for every test (an autouse fixture there).
    """
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


@pytest.fixture(scope="module")  # 130M parameters: freed after its module
def vgg11() -> nn.Module:
    return _build(torchvision.models.vgg11, 1)


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

"""Shared test configuration: pytester, the seed model, small torchvision models, one thread."""

from __future__ import annotations

import dataclasses
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


class CornerReader(nn.Module):
    """Class 1 when the top-left pixel (background) is bright: a background reader."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, 0, 0] - 0.5
        return torch.stack([-v, v], dim=1)


class CentreReader(nn.Module):
    """Class 1 when the 2x2 centre (the object) is bright: an object reader."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # a parameter: the model's device and dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.scale * (x[:, 0, 2:4, 2:4].mean(dim=(1, 2)) - 0.5)
        return torch.stack([-v, v], dim=1)


@dataclasses.dataclass
class BackgroundScenes:
    """8 images 1x6x6: class 1 has a bright centre object (the mask) and a bright corner."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    corner: nn.Module  # reads the background corner
    centre: nn.Module  # reads the object


@pytest.fixture
def scenes() -> BackgroundScenes:
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    images = torch.full((8, 1, 6, 6), 0.2)
    images[labels == 1, :, 2:4, 2:4] = 0.9
    images[labels == 1, :, 0, 0] = 0.9
    masks = torch.zeros(8, 6, 6, dtype=torch.bool)
    masks[:, 2:4, 2:4] = True
    return BackgroundScenes(images, labels, masks, CornerReader(), CentreReader())

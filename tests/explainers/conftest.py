"""Shared fixtures for the explain tests: small models with known structure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def _hook_count(model: nn.Module) -> int:
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run far faster on one thread than on two contended ones (CI: 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hook_count() -> Callable[[nn.Module], int]:
    """Number of hooks of every kind registered on any module of a model."""
    return _hook_count


class SmallNet(nn.Module):
    """conv-relu-conv(stride 2)-relu [layer "r2", 4x4 for 8x8 inputs] -conv-tanh-linear.

    The head after the explained layer is neither pooled nor linear, so gradients vary over
    space and have non-zero higher derivatives (Grad-CAM++ differs from Grad-CAM).
    """

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(4, 5, 3, padding=1, stride=2)
        self.r2 = nn.ReLU()
        self.c3 = nn.Conv2d(5, 6, 3, padding=1)
        self.t3 = nn.Tanh()
        self.fc = nn.Linear(6 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.r2(self.c2(self.r1(self.c1(x))))
        return self.fc(self.t3(self.c3(x)).flatten(1))


class GapNet(nn.Module):
    """conv-relu-conv-relu [layer "r2"] -> global average pool -> linear: CAM applies."""

    def __init__(self, classes: int = 4, symmetric: bool = False) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(6, 5, 3, padding=1)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, classes)
        if symmetric:  # kernels equal to their left-right mirror: the net commutes with flips
            with torch.no_grad():
                for conv in (self.c1, self.c2):
                    conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.r2(self.c2(self.r1(self.c1(x))))).flatten(1))


@pytest.fixture
def small_net() -> SmallNet:
    """A float64 SmallNet with fixed random weights."""
    torch.manual_seed(1234)
    return SmallNet().double().eval()


@pytest.fixture
def gap_net() -> GapNet:
    """A float64 GapNet with fixed random weights."""
    torch.manual_seed(99)
    return GapNet().double().eval()


@pytest.fixture
def symmetric_net() -> GapNet:
    """A float64 flip-equivariant GapNet."""
    torch.manual_seed(7)
    return GapNet(symmetric=True).double().eval()

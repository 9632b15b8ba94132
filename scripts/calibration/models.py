"""The study's architectures: a small residual CNN, resnet18 and mobilenet_v3_small (4 classes)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class Residual(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.body(x))


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SmallResNet(nn.Module):
    """Three stages (strides 2, 4, 8 after their pools), one residual block, GAP, linear."""

    def __init__(self, width: int = 16, classes: int = 4) -> None:
        super().__init__()
        w = width
        self.stage1 = nn.Sequential(*_block(3, w), nn.MaxPool2d(2))  # S/2
        self.stage2 = nn.Sequential(*_block(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w))  # S/4
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), *_block(2 * w, 4 * w))  # S/8
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage3(self.stage2(self.stage1(x))))


def resnet18_small(classes: int = 4) -> nn.Module:
    """torchvision resnet18 for small inputs: a 3x3 stride-2 stem instead of 7x7 (no weights)."""
    net = torchvision.models.resnet18(num_classes=classes)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
    return net


def mobilenet(classes: int = 4) -> nn.Module:
    """torchvision mobilenet_v3_small (random init), BatchNorm momentum 0.1.

    torchvision builds it with momentum 0.01 (for ImageNet-length training): after the
    study's few hundred steps the running statistics are still far off, and the model in
    eval mode answers one class (accuracy 0.25 while the training loss is near 0).
    """
    net = torchvision.models.mobilenet_v3_small(num_classes=classes)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return net


ARCHS = {"smallcnn": SmallResNet, "resnet18": resnet18_small, "mobilenet": mobilenet}

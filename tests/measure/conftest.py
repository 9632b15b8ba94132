"""What the scan tests share: one thread, the trained model, and the rule for the samples a
scan keeps, computed independently."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from modelaudit import zoo


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """One intra-op thread, as the other model tests."""


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """The trained shapes-cnn (a test module may define its own ``model``)."""
    return zoo.load_model("shapes-cnn")


def _expected_kept(mass: torch.Tensor, labels: torch.Tensor, keep: int) -> list[int]:
    """The K least-mass samples, the K most-mass ones and each class's least-mass sample,
    least mass first (numpy, class by class; the scans here have fewer than 32 classes)."""
    m, y = mass.numpy(), labels.numpy()
    rows = set(np.argsort(m, kind="stable")[:keep].tolist())
    rows |= set(np.argsort(-m, kind="stable")[:keep].tolist())
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rows.add(int(members[np.argmin(m[members])]))
    return sorted(rows, key=lambda i: (m[i], i))


@pytest.fixture(scope="session")
def expected_kept() -> Callable[[torch.Tensor, torch.Tensor, int], list[int]]:
    return _expected_kept

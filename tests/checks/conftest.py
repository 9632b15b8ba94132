"""Fixtures for the checks tests: methods that record their calls, one torch thread.

The seed model and the torchvision models come from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one intra-op thread."""


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

"""The capture tests run with one torch thread; models and the seed are in tests/conftest.py."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one intra-op thread."""

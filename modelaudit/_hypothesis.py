"""Hypothesis support: torch's global RNG seeded from Hypothesis, and the ``ci`` profile.

Library-level (no pytest): the pytest plugin calls :func:`register_torch_random` once the
collected tests have imported torch and Hypothesis, and :func:`load_ci_profile` under
``CI``; a script can call them too. Neither torch nor Hypothesis is imported until the
functions run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TORCH_RANDOM", "TorchGlobalRandom", "load_ci_profile", "register_torch_random"]


class TorchGlobalRandom:
    """A ``random.Random``-like view of torch's global RNG, for ``hypothesis.register_random``.

    Example:
        >>> import torch
        >>> rng = TorchGlobalRandom()
        >>> state = rng.getstate()
        >>> rng.seed(3); a = torch.rand(1)
        >>> rng.seed(3); bool(torch.equal(a, torch.rand(1)))
        True
        >>> rng.setstate(state)
    """

    def seed(self, seed: int) -> None:
        """Seed torch's global generator (reduced to the range torch accepts)."""
        import torch

        torch.manual_seed(int(seed) % (2**63))

    def getstate(self) -> Any:
        """The global generator's state (a tensor)."""
        import torch

        return torch.get_rng_state()

    def setstate(self, state: Any) -> None:
        """Restore a state returned by :meth:`getstate`."""
        import torch

        torch.set_rng_state(state)


TORCH_RANDOM = TorchGlobalRandom()
"""The one instance registered with Hypothesis (it keeps a weak reference: keep it alive)."""


def register_torch_random() -> None:
    """Let Hypothesis seed (and restore) torch's global RNG in every ``@given`` example.

    Hypothesis then seeds torch like ``random`` and ``numpy.random``: inputs drawn with
    ``torch.rand`` inside a test replay exactly with the failing example. Registering twice
    is harmless.

    Example:
        >>> register_torch_random()
    """
    from hypothesis import register_random

    register_random(TORCH_RANDOM)


def load_ci_profile() -> bool:
    """Load Hypothesis' ``ci`` profile unless a profile other than the default is loaded.

    Hypothesis >= 6.131 ships a built-in ``ci`` profile (derandomized, no deadline, no
    example database, print_blob) and loads it itself when it detects CI; this makes the
    choice explicit, also for older versions (an equivalent profile is registered there).
    A profile a conftest chose is respected.

    Returns:
        whether the ``ci`` profile is loaded now.

    Example:
        >>> from hypothesis import settings
        >>> previous = settings.get_current_profile_name()
        >>> settings.register_profile("mine", max_examples=5)
        >>> settings.load_profile("mine")
        >>> load_ci_profile(), settings.get_current_profile_name()
        (False, 'mine')
        >>> settings.load_profile(previous)
    """
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    current = getattr(settings, "get_current_profile_name", lambda: settings._current_profile)()
    if current not in (None, "default", "ci"):
        return False
    try:
        settings.get_profile("ci")
    except InvalidArgument:  # hypothesis older than the built-in ci profile
        settings.register_profile(
            "ci", derandomize=True, deadline=None, database=None, print_blob=True
        )
    settings.load_profile("ci")
    return True

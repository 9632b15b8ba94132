"""Hypothesis profiles for this repository's tests and audits.

Two profiles, registered and chosen here so every run of ``make test``, ``make test-fast``,
``make audit`` or ``pytest audits/`` draws examples the same way:

- ``dev`` (default): a fast inner loop; 25 examples where a test sets no ``max_examples``,
  no deadline (a CPU test's first example pays for torch's warm-up).
- ``ci`` (when ``CI`` is set, e.g. ``CI=true``): derandomized, so a run is reproducible,
  100 examples, no deadline, no example database, and the failing example's blob printed
  for ``@reproduce_failure``.

``--hypothesis-profile NAME`` on the command line still wins: Hypothesis' pytest plugin
loads it in ``pytest_configure``, after this file. Tests that pass ``max_examples`` in
``@settings`` keep their own count under both profiles.

``pytest audits/`` reads ``audits/pytest.ini``, which makes ``audits/`` the rootdir; its
``--confcutdir=..`` lets pytest load this file there too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, settings

# Both start from Hypothesis' defaults, not from whatever profile is current: under CI,
# Hypothesis has already loaded its own `ci` profile when this file runs.
_DEFAULTS = settings.get_profile("default")
settings.register_profile("dev", _DEFAULTS, max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    _DEFAULTS,
    derandomize=True,
    max_examples=100,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The profile for an environment: ``"ci"`` when ``CI`` is set to a true value.

    Example:
        >>> hypothesis_profile({"CI": "true"}), hypothesis_profile({"CI": "0"})
        ('ci', 'dev')
        >>> hypothesis_profile({})
        'dev'
    """
    value = environ.get("CI", "").strip().lower()
    return "ci" if value not in ("", "0", "false", "no") else "dev"


settings.load_profile(hypothesis_profile(os.environ))

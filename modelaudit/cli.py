"""The ``modelaudit`` command line (being built)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelaudit`` console script."""
    print("modelaudit: the command line is being built")
    return 0

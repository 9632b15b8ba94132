"""Shared test configuration (other engineers may add lines)."""

pytest_plugins = ["pytester"]

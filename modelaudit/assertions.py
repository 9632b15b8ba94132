"""Assertions over metrics (being built)."""

__all__: list[str] = []

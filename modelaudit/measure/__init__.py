"""modelaudit.measure (being built)."""

__all__: list[str] = []

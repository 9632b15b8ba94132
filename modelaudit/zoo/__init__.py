"""modelaudit.zoo (being built)."""

__all__: list[str] = []

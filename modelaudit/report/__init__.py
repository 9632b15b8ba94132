"""modelaudit.report (being built)."""

__all__: list[str] = []

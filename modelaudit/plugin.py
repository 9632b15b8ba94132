"""pytest plugin for modelaudit (being built)."""

"""modelaudit: pytest for what a vision model looks at.

The public API lives here; the implementation lives in subpackages, each with a curated
``__all__``: :mod:`modelaudit.hooks` (capture), :mod:`modelaudit.explainers` (the CAM
family), :mod:`modelaudit.measure` (metrics), :mod:`modelaudit.assertions` and
:mod:`modelaudit.report`. Names are imported on first use, so ``import modelaudit`` (and the
pytest plugin that ships with it) does not import torch until something is used.

Example:
    >>> import modelaudit as ma
    >>> callable(ma.capture), callable(ma.gradcam), "assert_mass_in_box" in ma.__all__
    (True, True, True)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from modelaudit.errors import (
    AuditFailure,
    BaselineError,
    HookError,
    InvalidInputError,
    LayerNotFoundError,
    ModelAuditError,
)

if TYPE_CHECKING:
    from modelaudit.assertions import *  # noqa: F403
    from modelaudit.explainers import *  # noqa: F403
    from modelaudit.hooks import *  # noqa: F403
    from modelaudit.measure import *  # noqa: F403
    from modelaudit.records import AuditRecord, collect_records
    from modelaudit.report import *  # noqa: F403
    from modelaudit.settings import use_settings

__version__ = "0.1.0"

# Subpackages whose whole ``__all__`` is public here, and single names from other modules.
_PUBLIC_PACKAGES = (
    "modelaudit.hooks",
    "modelaudit.explainers",
    "modelaudit.measure",
    "modelaudit.assertions",
    "modelaudit.report",
)
_PUBLIC_NAMES = {
    "AuditRecord": "modelaudit.records",
    "collect_records": "modelaudit.records",
    "use_settings": "modelaudit.settings",
}
_EAGER = [
    "AuditFailure",
    "BaselineError",
    "HookError",
    "InvalidInputError",
    "LayerNotFoundError",
    "ModelAuditError",
]


def _load_public_api() -> list[str]:
    """Import every public name into this module once; return the full ``__all__``."""
    names = list(_EAGER)
    for package in _PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            globals()[name] = getattr(module, name)
            names.append(name)
    for name, module_name in _PUBLIC_NAMES.items():
        globals()[name] = getattr(importlib.import_module(module_name), name)
        names.append(name)
    globals()["__all__"] = names
    return names


def __getattr__(name: str) -> Any:
    if name.startswith("__") and name != "__all__":
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: zoo, ...
        return importlib.import_module(f"{__name__}.{name}")
    names = _load_public_api()
    if name == "__all__":
        return names
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module 'modelaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_load_public_api()))

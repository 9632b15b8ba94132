"""modelaudit: pytest for what a vision model looks at.

The public API is re-exported here; each subpackage curates its own ``__all__``.

Example:
    >>> import modelaudit as ma
    >>> callable(ma.resolve_layers)
    True
"""

from modelaudit import assertions, capture, explain, measure, report
from modelaudit.assertions import *  # noqa: F403
from modelaudit.capture import *  # noqa: F403
from modelaudit.errors import (
    AuditFailure,
    BaselineError,
    HookError,
    InvalidInputError,
    LayerNotFoundError,
    ModelAuditError,
)
from modelaudit.explain import *  # noqa: F403
from modelaudit.measure import *  # noqa: F403
from modelaudit.records import AuditRecord, collect_records
from modelaudit.report import *  # noqa: F403
from modelaudit.settings import use_settings

__version__ = "0.1.0"

__all__ = [
    "AuditFailure",
    "AuditRecord",
    "BaselineError",
    "HookError",
    "InvalidInputError",
    "LayerNotFoundError",
    "ModelAuditError",
    "collect_records",
    "use_settings",
    *assertions.__all__,
    *capture.__all__,
    *explain.__all__,
    *measure.__all__,
    *report.__all__,
]

"""modelaudit: pytest for what a vision model looks at.

The public API is re-exported here; each subpackage curates its own ``__all__``.
``modelaudit.capture`` and ``modelaudit.explain`` name the functions users call
(``ma.capture(...)``, ``ma.explain(...)``); their implementation packages are imported as
``from modelaudit.capture.hooks import ...``.

Example:
    >>> import modelaudit as ma
    >>> callable(ma.capture), callable(ma.gradcam)
    (True, True)
"""

from modelaudit.assertions import *  # noqa: F403
from modelaudit.assertions import __all__ as _assertions_all
from modelaudit.capture import *  # noqa: F403
from modelaudit.capture import __all__ as _capture_all
from modelaudit.errors import (
    AuditFailure,
    BaselineError,
    HookError,
    InvalidInputError,
    LayerNotFoundError,
    ModelAuditError,
)
from modelaudit.explain import *  # noqa: F403
from modelaudit.explain import __all__ as _explain_all
from modelaudit.measure import *  # noqa: F403
from modelaudit.measure import __all__ as _measure_all
from modelaudit.records import AuditRecord, collect_records
from modelaudit.report import *  # noqa: F403
from modelaudit.report import __all__ as _report_all
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
    *_assertions_all,
    *_capture_all,
    *_explain_all,
    *_measure_all,
    *_report_all,
]

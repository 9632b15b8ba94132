"""``python -m modelaudit``: the ``modelaudit`` command (see :mod:`modelaudit.cli`).

Example:
    >>> import subprocess, sys
    >>> out = subprocess.run([sys.executable, "-m", "modelaudit", "--version"],
    ...                      capture_output=True, text=True, check=True).stdout
    >>> out.startswith("modelaudit ")
    True
"""

from __future__ import annotations

import sys

from modelaudit.cli import main

if __name__ == "__main__":
    sys.exit(main())

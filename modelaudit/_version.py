"""The version of modelaudit, defined here and nowhere else.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), the package re-exports it as
``modelaudit.__version__`` and ``modelaudit --version`` prints it.

Example:
    >>> from modelaudit._version import __version__
    >>> len(__version__.split(".")) >= 3
    True
"""

__version__ = "0.1.0"

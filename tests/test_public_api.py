"""The curated top-level API: exactly the reviewed names, lazy, and free of internals.

``tests/public_api.txt`` is the reviewed list (one name per line, sorted). Adding or removing
a public name is a deliberate change to both ``modelaudit.__all__`` and that file.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import modelaudit as ma

STORED = Path(__file__).with_name("public_api.txt")

# Where each public name is defined: the subpackage object must be the top-level one.
HOMES = [
    "modelaudit.errors",
    "modelaudit.fingerprints",
    "modelaudit.checks",
    "modelaudit.hooks",
    "modelaudit.explainers",
    "modelaudit.measure",
    "modelaudit.report",
    "modelaudit.data",
    "modelaudit.outputs",
    "modelaudit.targets",
]


def stored_names() -> list[str]:
    lines = STORED.read_text(encoding="utf-8").splitlines()
    names = [line.strip() for line in lines if line.strip()]
    assert names == sorted(names), "tests/public_api.txt must stay sorted"
    return names


def test_all_matches_the_reviewed_list() -> None:
    names = stored_names()
    assert len(names) == len(set(names))
    missing = sorted(set(names) - set(ma.__all__))
    extra = sorted(set(ma.__all__) - set(names))
    assert (missing, extra) == ([], []), (
        "modelaudit.__all__ differs from tests/public_api.txt: update both on purpose"
    )


def test_all_has_no_duplicates() -> None:
    assert len(ma.__all__) == len(set(ma.__all__)), "a public name is exported twice"


def test_every_public_name_resolves_to_its_home_object() -> None:
    homes = [importlib.import_module(h) for h in HOMES]
    for name in ma.__all__:
        value = getattr(ma, name)
        assert value is not None, name
        found = [h.__name__ for h in homes if getattr(h, name, None) is value]
        assert found, f"{name} is not the object of any of {HOMES}"


def test_dir_lists_every_public_name() -> None:
    assert set(ma.__all__) <= set(dir(ma))


@pytest.mark.parametrize("name", ["gradkam", "assertions", "gradcheck_module", "use_settings"])
def test_unknown_names_are_an_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=f"module 'modelaudit' has no attribute '{name}'"):
        getattr(ma, name)


@pytest.mark.parametrize("name", ["write_html", "png_bytes", "TestEntry", "use_settings"])
def test_internals_are_not_public(name: str) -> None:
    assert name not in ma.__all__
    assert name not in stored_names()


def test_functions_do_not_shadow_subpackages() -> None:
    # `ma.capture` and `ma.explain` are the functions; the packages have other names.
    import modelaudit.explainers.engine as engine
    import modelaudit.hooks.recording as recording

    assert ma.capture is recording.capture
    assert ma.explain.__module__ == "modelaudit.explainers.registry"
    assert engine.__name__ == "modelaudit.explainers.engine"
    assert ma.checks is importlib.import_module("modelaudit.checks")


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, modelaudit, modelaudit.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The curated top-level API: complete, lazy, and free of name clashes."""

from __future__ import annotations

import importlib
import subprocess
import sys

import modelaudit as ma

PACKAGES = ["hooks", "explainers", "measure", "assertions", "report"]


def test_all_is_the_union_of_the_subpackages_public_names() -> None:
    expected = {
        "AuditFailure",
        "AuditRecord",
        "BaselineError",
        "HookError",
        "InvalidInputError",
        "LayerNotFoundError",
        "ModelAuditError",
        "collect_records",
        "use_settings",
    }
    for name in PACKAGES:
        expected |= set(importlib.import_module(f"modelaudit.{name}").__all__)
    assert set(ma.__all__) == expected
    assert len(ma.__all__) == len(set(ma.__all__)), "a public name is exported twice"


def test_every_public_name_resolves_to_its_subpackage_object() -> None:
    for name in PACKAGES:
        module = importlib.import_module(f"modelaudit.{name}")
        for public in module.__all__:
            assert getattr(ma, public) is getattr(module, public), public


def test_functions_do_not_shadow_subpackages() -> None:
    # `ma.capture` and `ma.explain` are the functions; the packages have other names.
    import modelaudit.explainers.engine as engine
    import modelaudit.hooks.recording as recording

    assert ma.capture is recording.capture
    assert ma.explain.__module__ == "modelaudit.explainers.registry"
    assert engine.__name__ == "modelaudit.explainers.engine"


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        ma.gradkam  # noqa: B018
    except AttributeError as exc:
        assert "gradkam" in str(exc)
    else:
        raise AssertionError("ma.gradkam should not exist")


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, modelaudit, modelaudit.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

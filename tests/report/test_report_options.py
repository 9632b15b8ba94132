"""The option table and its resolution, without pytest: one declaration per setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelaudit.errors import InvalidInputError
from modelaudit.report.options import OPTIONS, AuditOptions

CLI, INI, ROOT = Path("/cli"), Path("/repo/conf"), Path("/repo")


def _resolve(cli=None, ini=None):
    return AuditOptions.resolve(
        (cli or {}).get, (ini or {}).get, cli_dir=CLI, ini_dir=INI, root=ROOT
    )


def test_every_setting_is_declared_once():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    flags = {o.flag: o.name for o in OPTIONS if o.flag}
    assert flags == {
        "--audit-model": "audit_model",
        "--audit-arch": "audit_arch",
        "--audit-device": "audit_device",
        "--audit-report-dir": "audit_report_dir",
        "--audit-report-samples": "audit_report_max_samples",
        "--audit-tensorboard": "audit_tensorboard",
        "--audit-baseline": "audit_baseline",
        "--audit-update-baseline": "audit_update_baseline",
        "--audit-tolerance": "audit_tolerance",
    }
    ini_only = [o.name for o in OPTIONS if o.flag is None]
    assert ini_only == ["audit_seed_torch"]
    switch = next(o for o in OPTIONS if o.name == "audit_update_baseline")
    assert switch.flag_kwargs()["action"] == "store_true" and not switch.ini
    model = OPTIONS[0].flag_kwargs()
    assert model["metavar"] == "SPEC" and model["help"].endswith("(ini: audit_model)")


def test_defaults():
    opts = _resolve()
    assert opts == AuditOptions(model_dir=INI, report_dir=ROOT / "audit-report")


def test_command_line_wins_and_paths_are_relative_to_where_they_were_given():
    ini = {"audit_model": "m.pt", "audit_baseline": "b.json", "audit_tolerance": "0.2"}
    from_ini = _resolve(ini=ini)
    assert (from_ini.model_dir, from_ini.baseline, from_ini.tolerance) == (INI, INI / "b.json", 0.2)
    cli = {"audit_model": "other.pt", "audit_baseline": "c.json", "audit_tolerance": "0.5"}
    both = _resolve(cli={**cli, "audit_update_baseline": True}, ini=ini)
    assert (both.model, both.model_dir, both.baseline) == ("other.pt", CLI, CLI / "c.json")
    assert both.tolerance == 0.5 and both.update_baseline


@pytest.mark.parametrize("off", ["none", "OFF", "false", "0"])
def test_the_report_can_be_turned_off(off):
    assert _resolve(cli={"audit_report_dir": off}).report_dir is None
    assert _resolve(ini={"audit_report_dir": "out"}).report_dir == INI / "out"


@pytest.mark.parametrize(
    ("cli", "ini", "message"),
    [
        ({"audit_update_baseline": True}, {}, "--audit-update-baseline needs a baseline file"),
        ({"audit_tolerance": "-1"}, {}, "must be a number >= 0 .* got '-1'"),
        ({}, {"audit_tolerance": "lots"}, "got 'lots'"),
        ({}, {"audit_report_max_samples": "many"}, "audit_report_max_samples must be a whole"),
    ],
)
def test_bad_values_are_library_errors(cli, ini, message):
    with pytest.raises(InvalidInputError, match=message):
        _resolve(cli=cli, ini=ini)


def test_check_accepts_the_defaults_and_valid_specs(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"not read by check()")
    AuditOptions().check()  # cpu, no model: nothing to import
    AuditOptions(model="shapes-cnn", device="auto").check()
    AuditOptions(model="torch.nn:Identity", device="cpu").check()
    AuditOptions(model="w.pt", arch="shapes-cnn", model_dir=tmp_path).check()


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            AuditOptions(device="tpu"),
            "--audit-device / audit_device: 'tpu' is not a torch device: .*Use cpu, cuda, "
            "cuda:N, mps or auto.",
        ),
        (
            AuditOptions(model="shapes-cn"),
            "--audit-model=shapes-cn / audit_model: 'shapes-cn' is not a zoo model, an "
            "importable 'pkg.module:factory' or a .pt/.pth weights file: unknown model "
            "'shapes-cn'; available models \\(closest first\\): 'shapes-cnn', ",
        ),
        (
            AuditOptions(model="nopkg_for_test.sub:make"),
            "cannot import module 'nopkg_for_test.sub' of model factory "
            "'nopkg_for_test.sub:make': no module named 'nopkg_for_test.sub'",
        ),
        (
            AuditOptions(model="gone.pth", model_dir=Path("/nonexistent-dir")),
            "--audit-model=gone.pth / audit_model: weights file /nonexistent-dir/gone.pth "
            "does not exist\nValid forms: a zoo name, 'pkg.module:factory'",
        ),
    ],
)
def test_check_names_the_option_and_the_valid_forms(opts, message):
    with pytest.raises(InvalidInputError, match=message):
        opts.check()


def test_check_refuses_cuda_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError) as info:
        AuditOptions(device="cuda").check()
    assert str(info.value) == (
        "--audit-device / audit_device: device 'cuda' needs CUDA, but "
        "torch.cuda.is_available() is False; use cpu or auto"
    )


def test_quiet_pytest_quiets_the_scans_progress_bars(monkeypatch):
    assert _resolve(cli={"verbose": -1}).quiet and not _resolve(cli={"verbose": 0}).quiet
    monkeypatch.delenv("MODELAUDIT_QUIET", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    _resolve(cli={"verbose": 0}).start()
    assert "MODELAUDIT_QUIET" not in os.environ
    _resolve(cli={"verbose": -1}).start()
    assert os.environ["MODELAUDIT_QUIET"] == "1"

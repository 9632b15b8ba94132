"""The plugin's settings, declared once: one table drives the flags, the ini keys and parsing.

Each :class:`Option` is a command-line flag, an ini key, or both (same name in snake case);
the pytest plugin turns the table into ``group.addoption`` / ``parser.addini`` calls and
:meth:`AuditOptions.resolve` reads the values back (command line over ini over defaults).
Relative paths given on the command line are relative to the invocation directory, those
from the ini file to the ini file's directory. No pytest import here: bad values raise
:class:`~modelaudit.errors.InvalidInputError`, which the plugin reports as a usage error.

Example:
    >>> from pathlib import Path
    >>> opts = AuditOptions.resolve({"audit_model": "shapes-cnn"}.get, {}.get,
    ...                             cli_dir=Path("/run"), ini_dir=Path("/repo"), root=Path("/repo"))
    >>> opts.model, opts.model_dir, opts.report_dir, opts.tolerance
    ('shapes-cnn', PosixPath('/run'), PosixPath('/repo/audit-report'), 0.05)
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from modelaudit.errors import InvalidInputError

__all__ = ["MAX_SAMPLES", "OPTIONS", "PASSING_EXAMPLES", "AuditOptions", "Option", "process_rank"]

_OFF = frozenset({"none", "off", "false", "0", ""})
_MODEL_FORMS = (
    "Valid forms: a zoo name, 'pkg.module:factory' (called without arguments), or a "
    ".pt/.pth state_dict file (with --audit-arch=SPEC unless the file names its 'arch')."
)


@dataclasses.dataclass(frozen=True)
class Option:
    """One plugin setting.

    Attributes:
        name: the ini key and the flag's ``dest`` (``audit_model``).
        help: one line of help, shown by ``pytest --help``.
        flag: the command-line flag (``--audit-model``), or None for an ini-only key.
        metavar: the flag's value name; None makes the flag a switch (``store_true``).
        ini: whether it is also an ini key.
        ini_type: ``"string"`` or ``"bool"``.
        default: the ini default.
    """

    name: str
    help: str
    flag: str | None = None
    metavar: str | None = None
    ini: bool = True
    ini_type: Literal["string", "bool"] = "string"
    default: str | bool = ""

    def flag_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``group.addoption(self.flag, **kwargs)``.

        Example:
            >>> Option("audit_x", "an x", "--audit-x", "X").flag_kwargs()["help"]
            'an x (ini: audit_x)'
        """
        text = f"{self.help} (ini: {self.name})" if self.ini else self.help
        kwargs: dict[str, Any] = {"dest": self.name, "help": text}
        if self.metavar is None:
            return {**kwargs, "action": "store_true", "default": False}
        return {**kwargs, "metavar": self.metavar, "default": None}


MAX_SAMPLES = 8
"""Samples the report draws per failing check by default, worst first."""
PASSING_EXAMPLES = 3
"""Samples the report draws per passing check (its weakest ones), collapsed."""

OPTIONS: tuple[Option, ...] = (
    Option(
        "audit_model",
        "model under audit: a zoo name, 'pkg.module:factory', or a .pt/.pth state_dict "
        "(read with weights_only=True; see --audit-arch)",
        "--audit-model",
        "SPEC",
    ),
    Option(
        "audit_arch",
        "architecture (zoo name or pkg.module:factory) to load a weights file into",
        "--audit-arch",
        "SPEC",
    ),
    Option(
        "audit_device",
        "device for the model under audit: cpu (default), cuda, cuda:N, mps, auto",
        "--audit-device",
        "DEVICE",
    ),
    Option(
        "audit_report_dir",
        "directory for report.html, records.json and overlay PNGs (default: audit-report/ "
        "under the rootdir; 'none' disables)",
        "--audit-report-dir",
        "DIR",
    ),
    Option(
        "audit_baseline",
        "baseline JSON file that recorded metrics are checked against",
        "--audit-baseline",
        "FILE",
    ),
    Option(
        "audit_update_baseline",
        "write the metrics of this run into the baseline file instead of checking them",
        "--audit-update-baseline",
        ini=False,
    ),
    Option(
        "audit_tolerance",
        "default relative tolerance of new baseline entries (0.05)",
        "--audit-tolerance",
        "REL",
    ),
    Option(
        "audit_tensorboard",
        "also write metrics and pictures as TensorBoard event files into DIR (needs the "
        "tensorboard extra: pip install modelaudit[tensorboard])",
        "--audit-tensorboard",
        "DIR",
    ),
    Option(
        "audit_report_max_samples",
        "samples drawn per failing check in the report, worst first (default 8; a passing "
        f"check shows up to {PASSING_EXAMPLES})",
        "--audit-report-samples",
        "N",
        default=str(MAX_SAMPLES),
    ),
    Option(
        "audit_seed_torch",
        "seed torch's global RNG from Hypothesis inside @given tests",
        ini_type="bool",
        default=True,
    ),
)
"""Every setting of the plugin, in ``--help`` order."""


@dataclasses.dataclass(frozen=True)
class AuditOptions:
    """The resolved settings of a run (command line over ini over defaults).

    Attributes:
        model: the model spec (``--audit-model``), or None.
        arch: the architecture for a weights file, or None.
        model_dir: the directory a relative model spec is resolved against.
        device: the device name (``cpu`` by default).
        report_dir: where the report goes; None disables it.
        baseline: the baseline file, or None.
        update_baseline: write this run's metrics into the baseline.

        Under ``torch.distributed`` (``torchrun``), only rank 0 writes files: on every
        other rank :meth:`resolve` sets ``report_dir`` and ``tensorboard_dir`` to None and
        ``update_baseline`` to False (:func:`process_rank` says which rank this is). Every
        rank still reads the baseline and decides.
        tolerance: default relative tolerance of new baseline entries.
        max_samples: samples drawn per failing record in the report (a passing one shows
            at most :data:`PASSING_EXAMPLES`).
        seed_torch: seed torch's global RNG from Hypothesis.
        tensorboard_dir: where TensorBoard event files go; None (the default): nowhere.
        quiet: pytest ran with ``-q`` (no progress bars).
    """

    model: str | None = None
    arch: str | None = None
    model_dir: Path = Path(".")
    device: str = "cpu"
    report_dir: Path | None = None
    baseline: Path | None = None
    update_baseline: bool = False
    tolerance: float = 0.05
    max_samples: int = MAX_SAMPLES
    seed_torch: bool = True
    tensorboard_dir: Path | None = None
    quiet: bool = False

    @classmethod
    def resolve(
        cls,
        cli: Callable[[str], Any],
        ini: Callable[[str], Any],
        *,
        cli_dir: Path,
        ini_dir: Path,
        root: Path,
        rank: int | None = None,
    ) -> AuditOptions:
        """Resolve every :data:`OPTIONS` entry; raise ``InvalidInputError`` for bad values.

        Args:
            cli: the command-line value of an option by name (None when not given).
            ini: the ini value of an option by name.
            cli_dir: the invocation directory (base of relative command-line paths).
            ini_dir: the ini file's directory (base of relative ini paths).
            root: the rootdir (the default report is ``root / "audit-report"``).
            rank: this process's rank (default :func:`process_rank`); a rank other than 0
                writes nothing (see the class doc).
        """

        def pick(name: str) -> tuple[str | None, Path]:
            value = cli(name)
            if value is not None:
                return str(value), cli_dir
            text = str(ini(name) or "").strip()
            return (text or None), ini_dir

        model, model_dir = pick("audit_model")
        baseline = _path(*pick("audit_baseline"))
        update = bool(cli("audit_update_baseline"))
        if update and baseline is None:
            raise InvalidInputError(
                "--audit-update-baseline needs a baseline file: pass --audit-baseline=FILE "
                "or set audit_baseline in the ini file"
            )
        seed = ini("audit_seed_torch")
        writes = (process_rank() if rank is None else rank) == 0
        return cls(
            model=model,
            arch=pick("audit_arch")[0],
            model_dir=model_dir,
            device=pick("audit_device")[0] or "cpu",
            report_dir=_report_dir(*pick("audit_report_dir"), root) if writes else None,
            baseline=baseline,
            update_baseline=update and writes,
            tolerance=_tolerance(pick("audit_tolerance")[0]),
            max_samples=_whole(pick("audit_report_max_samples")[0] or str(MAX_SAMPLES)),
            seed_torch=True if seed is None else bool(seed),
            tensorboard_dir=_path(*pick("audit_tensorboard")) if writes else None,
            quiet=_quiet(cli("verbose")),
        )

    def start(self) -> None:
        """:meth:`check` the options; under ``-q``, quiet the dataset scans' progress bars
        (``MODELAUDIT_QUIET``); under torchrun (``WORLD_SIZE`` > 1), open the process group
        (:func:`modelaudit.distributed.init_from_env`: gloo on CPU, nccl on CUDA). Ordinary
        runs import no torch here."""
        self.check()
        if self.quiet:  # pytest -q: no progress bars from dataset scans either
            os.environ.setdefault("MODELAUDIT_QUIET", "1")
        if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
            from modelaudit.distributed import init_from_env

            init_from_env(self.device)

    def check(self) -> None:
        """Check the device and the model spec at start-up, without building the model.

        Imports torch only when a model or a device other than ``cpu`` is set; what needs
        the model built (a factory that raises, weights that do not fit) is found later.

        Raises:
            InvalidInputError: naming the option, what was wrong and the valid forms.
        """
        if self.device != "cpu":
            from modelaudit.loading import resolve_device

            try:
                resolve_device(self.device)
            except InvalidInputError as exc:
                raise InvalidInputError(f"--audit-device / audit_device: {exc}") from None
        if self.model is not None:
            from modelaudit.loading import check_model_spec

            try:
                check_model_spec(self.model, arch=self.arch, base_dir=self.model_dir)
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"--audit-model={self.model} / audit_model: {exc}\n{_MODEL_FORMS}"
                ) from None


def process_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank: the open ``torch.distributed`` group's, else ``RANK`` (set by
    ``torchrun``), else 0. Does not import torch (reads the group only if torch is loaded).

    Example:
        >>> process_rank({"RANK": "1", "WORLD_SIZE": "2"}), process_rank({})
        (1, 0)
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    text = (os.environ if env is None else env).get("RANK", "").strip()
    if text and not text.isdigit():
        raise InvalidInputError(f"RANK={text!r} in the environment is not a whole number")
    return int(text) if text else 0


def _quiet(verbose: Any) -> bool:
    """Whether pytest's verbosity (``-q`` is -1) asks for quiet output.

    Example:
        >>> _quiet(-1), _quiet(0), _quiet(None)
        (True, False, False)
    """
    return isinstance(verbose, int) and not isinstance(verbose, bool) and verbose < 0


def _path(value: str | None, base: Path) -> Path | None:
    return None if value is None else base / Path(value).expanduser()


def _report_dir(value: str | None, base: Path, root: Path) -> Path | None:
    if value is None:
        return root / "audit-report"
    return None if value.strip().lower() in _OFF else base / Path(value).expanduser()


def _tolerance(text: str | None) -> float:
    if text is None:
        return 0.05
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(
            f"--audit-tolerance / audit_tolerance must be a number >= 0 (a relative "
            f"tolerance such as 0.05), got {text!r}"
        )
    return value


def _whole(text: str) -> int:
    if not text.strip().isdigit():
        raise InvalidInputError(
            "--audit-report-samples / audit_report_max_samples must be a whole number >= 0, "
            f"got {text!r}"
        )
    return int(text)

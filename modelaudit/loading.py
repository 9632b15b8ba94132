"""Build the model under audit from a short text spec, and pick a torch device.

A spec is what a user types after ``--audit-model`` (pytest) or ``modelaudit explain``:

- a zoo name such as ``shapes-cnn`` (:func:`modelaudit.zoo.load_model`);
- an importable ``pkg.module:factory``, called without arguments (a module-level
  ``nn.Module`` instance works too);
- a weights file ``*.pt`` / ``*.pth`` holding a ``state_dict``, or a dict
  ``{"state_dict": ..., "arch": "<zoo name or pkg.module:factory>"}``. It is read with
  ``torch.load(..., weights_only=True)``, so it never runs code; a pickled model object is
  refused (save ``model.state_dict()`` instead). The architecture comes from ``arch`` or
  the file's ``"arch"`` string.

Every problem with a spec raises :class:`~modelaudit.errors.InvalidInputError` saying
what was wrong and how to fix it.

Example:
    >>> from modelaudit.loading import load_model_spec
    >>> load_model_spec("torch.nn:Identity", device="cpu")
    Identity()
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelaudit.errors import InvalidInputError

__all__ = ["WEIGHT_SUFFIXES", "check_model_spec", "load_model_spec", "resolve_device"]

WEIGHT_SUFFIXES = (".pt", ".pth")
"""File suffixes that make a spec a weights file even when the file does not exist."""

_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_ARCH_HINT = (
    "say which architecture to load them into with arch=NAME (pytest: --audit-arch=NAME, "
    "modelaudit CLI: --arch NAME; a zoo name or pkg.module:factory), or save the file as "
    "{'arch': NAME, 'state_dict': ...}"
)


def resolve_device(spec: str | torch.device) -> torch.device:
    """The torch device a spec names; ``"auto"`` picks cuda, then mps, then cpu.

    Args:
        spec: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"auto"`` or a ``torch.device``.

    Returns:
        The device.

    Raises:
        InvalidInputError: ``spec`` is not a torch device, or names CUDA on a machine
            without it.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu0")
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: 'gpu0' is not a torch device: ...
    """
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{spec!r} is not a torch device: {exc}. Use cpu, cuda, cuda:N, mps or auto."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            f"device {str(spec)!r} needs CUDA, but torch.cuda.is_available() is False; "
            "use cpu or auto"
        )
    return device


def load_model_spec(
    spec: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    arch: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build the model a spec names (see the module docstring for the forms).

    Args:
        spec: zoo name, ``pkg.module:factory``, or a ``.pt``/``.pth`` weights file.
        device: where to put the model (anything :func:`resolve_device` accepts).
        arch: architecture for a weights file (zoo name or factory); overrides the file's
            own ``"arch"`` entry.
        base_dir: directory that a relative weights path is relative to (default: cwd).

    Returns:
        The model, in eval mode, on ``device``.

    Raises:
        InvalidInputError: with what was wrong and how to fix it (unknown name, module or
            attribute, a factory that returns no ``nn.Module``, a missing or unsafe weights
            file, weights that do not fit the architecture, a bad device).
        ModelAuditError: a zoo model's own weights are missing or broken.

    Example:
        >>> load_model_spec("torch.nn:Identity")
        Identity()
        >>> load_model_spec("missing.pt")
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: weights file missing.pt does not exist
    """
    text = os.fspath(spec)
    dev = resolve_device(device)
    path = _weights_path(text, base_dir)
    model = _build(text, dev) if path is None else _from_weights(path, arch, dev)
    return model.eval()


def check_model_spec(
    spec: str | os.PathLike[str],
    *,
    arch: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Check a spec without building the model: a known zoo name, a factory whose module
    can be found (it is not imported), or an existing weights file (not read).

    Raises:
        InvalidInputError: the same message :func:`load_model_spec` would give.

    Example:
        >>> check_model_spec("shapes-cnn"), check_model_spec("torch.nn:Identity")
        (None, None)
        >>> check_model_spec("no_such_pkg_xyz:make")
        Traceback (most recent call last):
        ...
        modelaudit.errors.InvalidInputError: cannot import module 'no_such_pkg_xyz' of ...
    """
    text = os.fspath(spec)
    path = _weights_path(text, base_dir)
    if path is None:
        _check_build(text)
        return
    if not path.is_file():
        raise InvalidInputError(f"weights file {path} does not exist")
    if arch is not None:
        _check_build(arch)


def _weights_path(text: str, base_dir: str | os.PathLike[str] | None) -> Path | None:
    """The file a spec names when it is a weights file, else None."""
    path = Path(base_dir or ".") / Path(text).expanduser()
    weights = text.lower().endswith(WEIGHT_SUFFIXES) or (path.is_file() and ":" not in text)
    return path if weights else None


def _not_a_model(spec: str, exc: Exception) -> InvalidInputError:
    return InvalidInputError(
        f"{spec!r} is not a zoo model, an importable 'pkg.module:factory' or a .pt/.pth "
        f"weights file: {exc}"
    )


def _check_build(spec: str) -> None:
    """Raise what :func:`_build` would for an unknown zoo name or a module not found."""
    if _FACTORY.fullmatch(spec):
        module_name = spec.partition(":")[0]
        try:
            found = importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise InvalidInputError(
                f"cannot import module {module_name!r} of model factory {spec!r}: no module "
                f"named {module_name!r} (is it installed, or its directory on sys.path?)"
            )
        return
    from modelaudit.zoo import model_info

    try:
        model_info(spec)  # an unknown name raises, listing the zoo names closest first
    except InvalidInputError as exc:
        raise _not_a_model(spec, exc) from None


def _import_object(spec: str) -> Any:
    """The object ``pkg.module:attr.sub`` names."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"cannot import module {module_name!r} of model factory {spec!r}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidInputError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    return obj


def _build(spec: str, device: torch.device) -> nn.Module:
    """A model from a factory spec or a zoo name, on ``device``."""
    if _FACTORY.fullmatch(spec):
        obj = _import_object(spec)
        model = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else obj
        if not isinstance(model, nn.Module):
            raise InvalidInputError(
                f"model factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
            )
        return model.to(device)
    from modelaudit.zoo import load_model  # torchvision: imported only when needed

    try:
        return load_model(spec, device=device)
    except InvalidInputError as exc:
        raise _not_a_model(spec, exc) from exc


def _from_weights(path: Path, arch: str | None, device: torch.device) -> nn.Module:
    """Load a state_dict file (``weights_only=True``) into ``arch``."""
    if not path.is_file():
        raise InvalidInputError(f"weights file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]  # an empty file: EOFError()
        raise InvalidInputError(
            f"cannot load {path} with torch.load(weights_only=True): {reason}"
            "\nA weights file must hold a state_dict (torch.save(model.state_dict(), path)), "
            "not a pickled model object."
        ) from exc
    state = payload
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        state = payload["state_dict"]
        arch = arch or (payload.get("arch") if isinstance(payload.get("arch"), str) else None)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(
            f"{path} does not hold a state_dict (a dict of tensors), nor a dict with one under "
            "'state_dict'"
        )
    if arch is None:
        raise InvalidInputError(f"{path} holds weights only; {_ARCH_HINT}")
    model = _build(arch, torch.device("cpu"))
    mismatch = _key_mismatch(set(model.state_dict()), set(state))
    if mismatch:
        raise InvalidInputError(
            f"the weights in {path} do not fit architecture {arch!r}: {mismatch}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InvalidInputError(
            f"the weights in {path} do not fit architecture {arch!r}: {exc}"
        ) from exc
    return model.to(device)


def _key_mismatch(wanted: set[str], given: set[str], shown: int = 3) -> str:
    """The keys a state_dict lacks and has too many, a few of each named; "" if none.

    Example:
        >>> _key_mismatch({"fc.weight", "fc.bias"}, {"fc.weight", "head.weight"})
        "1 missing key ('fc.bias'); 1 unexpected key ('head.weight')"
    """

    def part(keys: set[str], what: str) -> str:
        names = sorted(keys)
        listed = ", ".join(repr(k) for k in names[:shown]) + (", ..." if len(names) > shown else "")
        return f"{len(names)} {what} key{'s' if len(names) > 1 else ''} ({listed})"

    parts = [
        part(k, w) for k, w in ((wanted - given, "missing"), (given - wanted, "unexpected")) if k
    ]
    return "; ".join(parts)

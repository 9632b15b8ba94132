"""The options every explanation method shares, declared once.

A built-in method is written with only what is its own::

    @explanation_method("gradcam")
    def gradcam(model, inputs, target=None, layer=None, **options: Unpack[GradientOptions]):
        '''Grad-CAM: ...'''
        return run_cam(model, inputs, target, layer, _gradcam, method="gradcam",
                       gradients=True, **options)

Type checkers and IDEs read the keyword options from the ``TypedDict`` (PEP 692);
:func:`explanation_method` registers the method and spells them out for everyone else: in
``inspect.signature`` (keyword-only, with their defaults) and in the docstring (the shared
entries of ``Args``, and ``Returns`` / ``Raises`` where the method does not write its own).
An unknown keyword is Python's ``TypeError``, naming the closest option.

Example:
    >>> import inspect
    >>> from modelaudit.explainers import gradcam
    >>> params = inspect.signature(gradcam).parameters
    >>> [(name, p.default) for name, p in params.items() if p.kind is p.KEYWORD_ONLY]
    [('reshape', None), ('relu', True), ('normalize', True), ('upsample', True), ('pass_size', 'auto')]
    >>> "pass_size: samples per forward and backward pass" in gradcam.__doc__
    True
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypedDict, TypeVar, cast

from modelaudit.errors import InvalidInputError
from modelaudit.explainers.engine import DEFAULT_PASS_SIZE, PassSize, Reshape
from modelaudit.explainers.explanation import Explanation
from modelaudit.explainers.registry import register_method

__all__ = [
    "DEFAULTS",
    "CamOptions",
    "GradientOptions",
    "check_keywords",
    "explanation_method",
    "resolve_options",
]

F = TypeVar("F", bound=Callable[..., Any])


class CamOptions(TypedDict, total=False):
    """Keyword options of every method (documented in :data:`ARG_DOCS`)."""

    reshape: Reshape | None
    relu: bool
    normalize: bool
    upsample: bool


class GradientOptions(CamOptions, total=False):
    """Keyword options of the methods that differentiate at a layer."""

    pass_size: PassSize


#: The default of every option.
DEFAULTS: dict[str, Any] = {
    "reshape": None,
    "relu": True,
    "normalize": True,
    "upsample": True,
    "pass_size": DEFAULT_PASS_SIZE,
}

#: The docstring entry of every shared argument (first line ``name: ...``).
ARG_DOCS: dict[str, str] = {
    "model": """model: the model; its train/eval flags, ``requires_grad`` and ``.grad`` come
    back unchanged, and no hook is left on it.""",
    "inputs": "inputs: (N, C, H, W) floating images (finite).",
    "target": """target: ``None`` (predicted class), a class index, N indices, (N, K) indices,
    or a callable ``output -> (N,) or (N, K)`` scores (see :mod:`modelaudit.targets`).""",
    "layer": """layer: a name (typos get suggestions), module, class, glob, predicate, or a
    list of them (maps fused by the mean of per-layer maps); ``None``: the default layer
    (:mod:`modelaudit.explainers.layer_choice`: e.g. ``layer4`` of a ResNet).""",
    "reshape": """reshape: ``activation -> (N, C, h, w)`` for token layers
    (:func:`~modelaudit.explainers.vit_reshape`, :func:`~modelaudit.explainers.swin_reshape`);
    applied to activations and gradients. ``None``: channels-last maps and ViT tokens are
    reshaped automatically (:func:`~modelaudit.explainers.reshape.infer_layout`).""",
    "relu": "relu: clamp the map at zero; ``False`` keeps signed values.",
    "normalize": """normalize: scale each map to [0, 1] by ``(x - min) / (max - min + eps)``,
    ``eps`` relative to the map's scale (:mod:`~modelaudit.explainers.postprocess`);
    ``False`` keeps raw values.""",
    "upsample": """upsample: resize bilinearly (``align_corners=False``) to H x W; ``False``
    keeps the layer's resolution.""",
    "pass_size": """pass_size: samples per forward and backward pass, which bounds the
    autograd graph's memory (the maps do not depend on it). ``"auto"``: three samples,
    then as many per pass as keep the graph under 80 MB
    (:data:`~modelaudit.explainers.engine.GRAPH_BUDGET_BYTES`); an int: that many;
    ``None``: the whole batch at once (fastest on a GPU). A callable target sees the whole
    batch, so it always takes one pass.""",
    "forward_batch": """forward_batch: masked inputs per forward (no gradients, under inference
    mode); ``"auto"``: 8, fewer for inputs larger than 224x224
    (:data:`~modelaudit.explainers.score_cams.MASKED_PIXELS`).""",
}

RETURNS = """Returns:
    An :class:`~modelaudit.explainers.Explanation`: detached float maps (N, H, W), or
    (N, K, H, W) for K targets per sample, on the inputs' device, with the method, layer,
    targets and inputs that made them."""

RAISES = """Raises:
    InvalidInputError: bad inputs (shape, dtype, NaN/Inf), a target of the wrong length, a
        class out of range, a bad option value.
    LayerNotFoundError: unknown layer, or no default layer (model without convolution).
    HookError: the layer runs twice or never in a forward pass."""

_SECTIONS = ("Args:", "Returns:", "Raises:", "Example:", "Examples:")

_KEYS: dict[type, tuple[str, ...]] = {  # the option names of each TypedDict, computed once
    kind: tuple(typing.get_type_hints(kind)) for kind in (CamOptions, GradientOptions)
}


def resolve_options(method: str, options: Mapping[str, Any], allowed: type) -> dict[str, Any]:
    """Every option of ``allowed`` (a TypedDict): ``options`` over :data:`DEFAULTS`.

    Raises:
        TypeError: an option ``method`` does not take (with the closest names).
        InvalidInputError: a ``reshape`` that is not callable.

    Example:
        >>> resolve_options("cam", {"relu": False}, CamOptions)["relu"]
        False
        >>> resolve_options("cam", {"normalise": False}, CamOptions)
        Traceback (most recent call last):
        ...
        TypeError: cam() got an unexpected keyword argument 'normalise' (did you mean 'normalize'?)
    """
    names = _KEYS.get(allowed) or tuple(typing.get_type_hints(allowed))
    check_keywords(method, options, names)
    reshape = options.get("reshape")
    if reshape is not None and not callable(reshape):
        raise InvalidInputError(
            f"{method}(): reshape must be a function activation -> (N, C, h, w) (e.g. "
            f"modelaudit.vit_reshape) or None; got {reshape!r}"
        )
    return {**{name: DEFAULTS[name] for name in names}, **options}


def check_keywords(method: str, given: Mapping[str, Any], known: Collection[str]) -> None:
    """Raise Python's TypeError for a keyword not in ``known``, naming the closest one.

    Example:
        >>> check_keywords("gradcam", {"batch_size": 2}, ["relu", "pass_size"])
        Traceback (most recent call last):
        ...
        TypeError: gradcam() got an unexpected keyword argument 'batch_size' (did you mean 'pass_size'?)
    """
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
            if name == "batch_size":  # the size knobs' former name
                close = [k for k in ("pass_size", "forward_batch") if k in known]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r}{hint}")


def explanation_method(name: str) -> Callable[[F], F]:
    """Decorator: register a method under ``name`` with its ``**options`` spelled out.

    The function's ``**options: Unpack[SomeOptions]`` become keyword-only parameters of
    its ``__signature__`` (before its own keyword-only ones), and its docstring gets the
    shared ``Args`` entries (:data:`ARG_DOCS`) of every parameter it does not document
    itself, and the shared ``Returns`` and ``Raises`` sections if it has none. The
    registered function records the call's keyword options on the
    :class:`~modelaudit.explainers.Explanation` it returns.

    Example:
        >>> import inspect, torch
        >>> from typing import Unpack
        >>> @explanation_method("doc_demo")
        ... def doc_demo(model, inputs, target=None, layer=None, **options: Unpack[CamOptions]):
        ...     '''Demo.'''
        ...     return torch.zeros(1)
        >>> list(inspect.signature(doc_demo).parameters)[4:]
        ['reshape', 'relu', 'normalize', 'upsample']
        >>> print(doc_demo.__doc__.splitlines()[2])
        Args:
        >>> from modelaudit.explainers.registry import unregister_method
        >>> unregister_method("doc_demo")
    """

    def decorate(fn: F) -> F:
        signature = _signature(fn)
        keywords = frozenset(signature.parameters)

        @functools.wraps(fn)
        def method(*args: Any, **kwargs: Any) -> Any:
            check_keywords(name, kwargs, keywords)
            maps = fn(*args, **kwargs)
            if isinstance(maps, Explanation):
                maps._options = {k: v for k, v in kwargs.items() if k not in _POSITIONAL}
            return maps

        method.__signature__ = signature  # type: ignore[attr-defined]
        method.__doc__ = _document(fn.__doc__, list(signature.parameters))
        return register_method(name)(cast(F, method))

    return decorate


_POSITIONAL = frozenset({"model", "inputs", "target", "layer"})


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with ``**options: Unpack[TD]`` expanded into TD's keywords."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    var = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    if not var:
        return sig
    unpacked = typing.get_type_hints(fn, include_extras=True)[var[0].name]
    declared = typing.get_args(unpacked)[0].__annotations__  # as written, like fn's own
    options = [
        inspect.Parameter(
            k,
            inspect.Parameter.KEYWORD_ONLY,
            default=DEFAULTS[k],
            annotation=getattr(t, "__forward_arg__", t),
        )
        for k, t in declared.items()
    ]
    params.remove(var[0])
    kinds = [p.kind for p in params] + [inspect.Parameter.KEYWORD_ONLY]
    at = kinds.index(inspect.Parameter.KEYWORD_ONLY)
    return sig.replace(parameters=[*params[:at], *options, *params[at:]])


def _document(doc: str | None, params: list[str]) -> str:
    """``doc`` completed with the shared Args entries and Returns / Raises sections."""
    lines = inspect.cleandoc(doc or "").splitlines()
    start = lines.index("Args:") if "Args:" in lines else None
    own = set()
    if start is not None:
        for line in lines[start + 1 : _section_end(lines, start)]:
            if line.startswith("    ") and not line.startswith("     ") and ":" in line:
                own.add(line.split(":", 1)[0].strip())
    shared = [
        "    " + line
        for p in params
        if p in ARG_DOCS and p not in own
        for line in ARG_DOCS[p].splitlines()
    ]
    if start is not None:
        lines[start + 1 : start + 1] = shared
    elif shared:
        _insert_section(lines, ["Args:", *shared], before=_SECTIONS[1:])
    if "Returns:" not in lines:
        _insert_section(lines, RETURNS.splitlines(), before=_SECTIONS[2:])
    if "Raises:" not in lines:
        _insert_section(lines, RAISES.splitlines(), before=_SECTIONS[3:])
    return "\n".join(lines) + "\n"


def _section_end(lines: list[str], start: int) -> int:
    """Index of the first line after the section that starts at ``start``."""
    for i in range(start + 1, len(lines)):
        if lines[i] and not lines[i].startswith(" "):
            return i
    return len(lines)


def _insert_section(lines: list[str], section: list[str], before: tuple[str, ...]) -> None:
    """Insert ``section`` (and a blank line) before the first of the ``before`` headers."""
    at = next((i for i, line in enumerate(lines) if line in before), None)
    if at is None:
        lines.extend(["", *section])
    else:
        lines[at:at] = [*section, ""]

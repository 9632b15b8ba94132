"""Stability check: a little input noise barely moves the map; a flip flips it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from modelaudit.checks.stability import assert_stable
    >>> square = lambda m, x: x[:, 0] ** 2
    >>> rec = assert_stable(nn.Identity(), torch.rand(2, 1, 6, 6), square, at_most=0.5)
    >>> rec.passed
    True
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from modelaudit.checks._maps import display_samples, explainer_from, images_of, provenance
from modelaudit.checks.classes import ClassesLike, classes_for
from modelaudit.checks.record import Aggregate, AuditRecord, Range, check_bound, decide
from modelaudit.errors import InvalidInputError
from modelaudit.measure._explainer import Explainer
from modelaudit.measure.stability import ChangeMeasure, flip_equivariance, noise_stability

__all__ = ["assert_stable"]

STRIP_DRAWS = 2
"""Noise draws whose maps the report shows beside each sample's original map."""

CHANGE_RANGE: dict[str, Range] = {"spearman": (0.0, 2.0), "mean_abs": (0.0, 1.0)}
"""Each change measure's range: ``1 - spearman`` lies in [0, 2], ``mean_abs`` in [0, 1]."""


def assert_stable(
    model: nn.Module,
    images: torch.Tensor,
    explainer: Explainer | None = None,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    perturbation: Literal["noise", "hflip", "vflip"] = "noise",
    sigma: float = 0.02,
    repeats: int = 4,
    seed: int = 0,
    measure: ChangeMeasure = "spearman",
    aggregate: Aggregate = "all",
    method: str | None = None,
    layer: str | None = None,
    classes: ClassesLike | None = None,
    per_class: bool = False,
) -> AuditRecord:
    """Assert the map changes little under input noise, or follows a flip of the image.

    ``perturbation="noise"``: a sample's value is its largest change over ``repeats``
    Gaussian noise draws of std ``sigma`` (:func:`modelaudit.noise_stability`);
    ``"hflip"`` / ``"vflip"``: the change between the flipped image's map and the flipped map
    (:func:`modelaudit.flip_equivariance`). ``measure`` is ``"spearman"`` (1 - rank
    correlation, in [0, 2]) or ``"mean_abs"`` (in [0, 1]); bound it with ``at_most=``, in
    [0, 2) or [0, 1) (``at_least=`` in (0, 2] or (0, 1]): a bound that always or never
    passes raises :class:`~modelaudit.errors.InvalidInputError` before any explanation.
    ``images`` may be maps returned by a modelaudit explainer: their images are explained
    again, with the same method, layer and targets, and ``explainer`` is not needed.
    ``classes=`` / ``per_class=``: per-class results and gate, as in ``assert_mass_in_box``.
    """
    __tracebackhide__ = True
    check, bounds = f"map_change_{perturbation}", CHANGE_RANGE.get(measure)
    check_bound("assert_stable", check, at_least=at_least, at_most=at_most, bounds=bounds)
    if explainer is None:
        explainer = explainer_from(images, "assert_stable")
    x = images_of(images)
    details: dict[str, Any] = {"perturbation": perturbation, "measure": measure}
    strip: list[tuple[str, torch.Tensor]] = []
    if perturbation == "noise":
        res = noise_stability(
            model,
            x,
            explainer,
            sigma=sigma,
            repeats=repeats,
            seed=seed,
            measure=measure,
            keep_maps=STRIP_DRAWS,
        )
        values, original = res.per_sample, res.original
        strip = [(f"noise draw {r + 1}", m) for r, m in enumerate(res.noisy)]
        details.update(sigma=sigma, repeats=repeats, seed=seed, per_draw=res.changes.tolist())
        note = f"largest change over {repeats} noise draws of std {sigma:g} (seed {seed})"
    elif perturbation in ("hflip", "vflip"):
        direction: Literal["horizontal", "vertical"] = (
            "horizontal" if perturbation == "hflip" else "vertical"
        )
        values, original = flip_equivariance(
            model, x, explainer, direction=direction, measure=measure
        )
        note = f"change between the {direction}ly flipped image's map and the flipped map"
    else:
        raise InvalidInputError(
            f"perturbation must be 'noise', 'hflip' or 'vflip'; got {perturbation!r}"
        )
    what = "1 - spearman" if measure == "spearman" else "mean |difference|"
    return decide(
        "assert_stable",
        check,
        values,
        at_least=at_least,
        at_most=at_most,
        bounds=bounds,
        aggregate=aggregate,
        notes=[f"{note}; change = {what}"],
        details={**details, **provenance(images, method=method, layer=layer)},
        classes=classes_for(images, classes, per_class, "assert_stable"),
        samples=display_samples(original, x, None, explained=images, strip=strip),
    )

"""checks/record.py: decide, conclude, the record, its formatter, who receives records."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import modelaudit as ma
import modelaudit.checks as checks
from modelaudit.baseline import Baseline
from modelaudit.checks.record import (
    AuditRecord,
    SampleViews,
    collect_records,
    conclude,
    decide,
    emit,
    format_number,
    format_record,
)
from modelaudit.errors import AuditFailure, InvalidInputError

NAN = float("nan")


def fails(*args, **kwargs) -> AuditRecord:  # type: ignore[no-untyped-def]
    """Run ``decide`` expecting a failure; the record, checked against the exception."""
    with pytest.raises(AuditFailure) as info:
        decide(*args, **kwargs)
    err = info.value
    assert isinstance(err, AssertionError) and err.record.passed is False
    assert str(err) == err.record.message
    return err.record


# ---------------------------------------------------------------- aggregate "all"


def test_all_higher_fails_on_the_worst_value_and_lists_the_failing_items() -> None:
    rec = fails("assert_demo", "score", [0.9, 0.2, 0.6, 0.4], at_least=0.5)
    assert rec.values == (0.9, 0.2, 0.6, 0.4) and isinstance(rec.values, tuple)
    assert rec.items == ("0", "1", "2", "3") and rec.unit == "sample"
    assert rec.bound == 0.5 and rec.direction == "higher" and rec.aggregate == "all"
    assert rec.obtained == 0.2  # the worst value
    assert rec.failing == (1, 3) and isinstance(rec.failing, tuple)
    assert rec.message.splitlines() == [
        "assert_demo: score >= 0.5 must hold for every sample; 2 of 4 samples fail.",
        "  obtained: 0.2 (worst sample, index 1); mean 0.525",  # (0.9+0.2+0.6+0.4)/4
        "  expected: >= 0.5",
        "  failing samples, worst first:",
        "    1: 0.2",
        "    3: 0.4",
    ]


def test_all_lower_bound_and_a_value_equal_to_the_bound_passes() -> None:
    rec = decide("assert_demo", "drop", [0.1, 0.35, 0.3], at_most=0.35)
    assert rec.passed and rec.direction == "lower" and rec.obtained == 0.35 and rec.failing == ()
    assert rec.message == (
        "assert_demo: drop <= 0.35 must hold for every sample held (all): obtained 0.35"
    )
    rec = fails("assert_demo", "drop", [0.1, 0.4, 0.3, 0.5], at_most=0.35)
    assert rec.obtained == 0.5 and rec.failing == (1, 3)
    lines = rec.message.splitlines()
    assert lines[1] == "  obtained: 0.5 (worst sample, index 3); mean 0.325"
    assert lines[2] == "  expected: <= 0.35"
    assert lines[3:] == ["  failing samples, worst first:", "    3: 0.5", "    1: 0.4"]


def test_a_single_item_is_the_only_sample() -> None:
    rec = fails("assert_demo", "score", [0.25], at_least=0.5)
    assert rec.message.splitlines()[:2] == [
        "assert_demo: score >= 0.5 must hold for every sample; 1 of 1 sample fail.",
        "  obtained: 0.25 (the only sample)",
    ]


def test_nan_is_the_worst_value_in_either_direction() -> None:
    rec = fails("assert_demo", "score", [0.9, NAN, 0.2], at_least=0.1)
    assert math.isnan(rec.obtained) and rec.failing == (1,)
    assert rec.message.splitlines()[1:] == [
        "  obtained: nan (worst sample, index 1); mean nan",
        "  expected: >= 0.1",
        "  failing samples, worst first:",
        "    1: nan",
    ]
    rec = fails("assert_demo", "score", [0.1, 0.9, NAN], at_most=0.5)
    assert math.isnan(rec.obtained) and rec.failing == (1, 2)
    assert rec.message.splitlines()[-3:] == [
        "  failing samples, worst first:",
        "    2: nan",
        "    1: 0.9",
    ]
    # all values NaN: nothing satisfies any bound
    rec = fails("assert_demo", "score", [NAN, NAN], at_most=math.inf)
    assert rec.failing == (0, 1)


def test_tensor_values_are_flattened_to_floats() -> None:
    rec = decide(
        "assert_demo", "score", torch.tensor([[0.5, 1.0]], dtype=torch.float64), at_least=0
    )
    assert rec.values == (0.5, 1.0) and all(type(v) is float for v in rec.values)
    assert rec.obtained == 0.5


# ---------------------------------------------------------------- aggregate "mean"


def test_mean_aggregate_passes_on_the_mean_but_still_names_failing_items() -> None:
    rec = decide("assert_demo", "score", [0.9, 0.2, 0.6], at_least=0.5, aggregate="mean")
    # (0.9 + 0.2 + 0.6) / 3 = 0.5667 >= 0.5
    assert rec.passed and rec.aggregate == "mean" and rec.obtained == pytest.approx(1.7 / 3)
    assert rec.failing == (1,)
    rec = fails("assert_demo", "score", [0.9, 0.2, 0.6], at_least=0.6, aggregate="mean")
    assert rec.message.splitlines()[:3] == [
        "assert_demo: score >= 0.6 must hold for the mean over 3 samples; 1 of 3 samples fail.",
        "  obtained: 0.5667 (mean)",
        "  expected: >= 0.6",
    ]
    rec = fails("assert_demo", "drop", [0.1, 0.4, 0.3], at_most=0.25, aggregate="mean")
    assert rec.obtained == pytest.approx(0.8 / 3) and rec.failing == (1, 2)


def test_mean_with_a_nan_is_nan_and_fails() -> None:
    rec = fails("assert_demo", "score", [1.0, NAN], at_least=0.0, aggregate="mean")
    assert math.isnan(rec.obtained) and rec.failing == (1,)


# ---------------------------------------------------------------- fraction aggregates


def test_fraction_aggregate_uses_the_ceil_q_n_th_best_value() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0]  # 3 of 5 pass at_least=0.5
    rec = decide("assert_demo", "hit", values, at_least=0.5, aggregate=0.6)
    # ceil(0.6 * 5) = 3 items needed; the 3rd best value is 1.0
    assert rec.passed and rec.aggregate == "fraction" and rec.obtained == 1.0
    assert rec.failing == (1, 4)
    assert rec.details["required_fraction"] == 0.6 and rec.details["passing_fraction"] == 0.6
    rec = fails("assert_demo", "hit", values, at_least=0.5, aggregate=0.7)
    # ceil(0.7 * 5) = 4 needed; the 4th best is 0.0
    assert rec.obtained == 0.0 and rec.details["required_fraction"] == 0.7
    assert rec.message.splitlines()[:3] == [
        "assert_demo: hit >= 0.5 must hold for at least 70% of samples (4 of 5); "
        "3 of 5 samples (60%) satisfy it.",
        "  obtained: 0 (the 4th best of 5 samples); mean 0.6",
        "  expected: >= 0.5",
    ]


def test_fraction_with_nan_values() -> None:
    rec = decide("assert_demo", "score", [NAN, 1.0, 1.0], at_least=0.5, aggregate=2 / 3)
    assert rec.passed and rec.obtained == 1.0 and rec.failing == (0,)
    rec = fails("assert_demo", "score", [NAN, 1.0, 1.0], at_least=0.5, aggregate=1.0)
    assert math.isnan(rec.obtained)  # the 3rd best of 3 is the NaN
    rec = fails("assert_demo", "drop", [0.3, NAN, 0.1], at_most=0.2, aggregate=0.5)
    # ceil(0.5 * 3) = 2: the 2nd best of (0.1, 0.3, nan) is 0.3 > 0.2
    assert rec.obtained == 0.3 and rec.failing == (0, 1)


@pytest.mark.parametrize(
    ("n", "need", "ordinal"),
    [(3, 2, "2nd"), (23, 22, "22nd"), (23, 11, "11th"), (23, 12, "12th"), (23, 13, "13th"),
     (23, 21, "21st"), (23, 23, "23rd"), (5, 1, "1st")],
)  # fmt: skip
def test_fraction_messages_use_ordinals(n: int, need: int, ordinal: str) -> None:
    rec = fails("assert_demo", "score", [0.0] * n, at_least=1, aggregate=need / n)
    assert f"(the {ordinal} best of {n} samples)" in rec.message


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"give exactly one bound as a keyword: at_least=\.\.\. \(higher is better\) or "
             r"at_most=\.\.\. \(lower is better\)"),
        ({"at_least": 0.1, "at_most": 0.9}, "give exactly one bound"),
        ({"at_least": "high"}, "at_least must be a number; got 'high'"),
        ({"at_most": NAN}, "at_most must be a number; got nan"),
        ({"at_least": True}, "at_least must be a number; got True"),
        ({"at_least": 0.1, "aggregate": 1.5},
         r"aggregate must be 'all', 'mean' or a fraction of samples in \(0, 1\]; got 1\.5"),
        ({"at_least": 0.1, "aggregate": 0}, r"fraction of samples in \(0, 1\]; got 0"),
        ({"at_least": 0.1, "aggregate": -0.5}, "got -0.5"),
        ({"at_least": 0.1, "aggregate": "median"}, "aggregate must be .*; got 'median'"),
        ({"at_least": 0.1, "aggregate": True}, "aggregate must be .*; got True"),
    ],
)  # fmt: skip
def test_bad_bounds_and_aggregates_are_invalid_input(kwargs: dict, message: str) -> None:
    with collect_records() as got, pytest.raises(InvalidInputError, match=message):
        decide("assert_demo", "score", [0.5], **kwargs)
    assert got == []  # nothing decided, nothing emitted


# ---------------------------------------------------------------- bounds of a bounded metric


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # at_least must lie in (lo, hi]: at lo or below it always passes, above hi never
        ({"at_least": -0.1}, r"assert_demo: at_least=-0.1 always passes: score lies in \[0, 1\], "
                             r"so every value is >= -0.1. Give at_least in \(0, 1\]."),
        ({"at_least": 0}, r"at_least=0 always passes"),
        ({"at_least": 1.5}, r"assert_demo: at_least=1.5 can never pass: score lies in \[0, 1\], "
                            r"so no value is >= 1.5. Give at_least in \(0, 1\]."),
        ({"at_least": 1.0000001}, r"at_least=1.0000001 can never pass"),
        # at_most must lie in [lo, hi): at hi or above it always passes, below lo never
        ({"at_most": 1}, r"assert_demo: at_most=1 always passes: score lies in \[0, 1\], so "
                         r"every value is <= 1. Give at_most in \[0, 1\)."),
        ({"at_most": 7}, r"at_most=7 always passes"),
        ({"at_most": -0.25}, r"at_most=-0.25 can never pass: .* no value is <= -0.25"),
    ],
)  # fmt: skip
def test_a_bound_outside_the_metrics_range_is_invalid_input(kwargs: dict, message: str) -> None:
    with collect_records() as got, pytest.raises(InvalidInputError, match=message):
        decide("assert_demo", "score", [0.5], bounds=(0, 1), **kwargs)
    assert got == []  # nothing decided, nothing emitted


@pytest.mark.parametrize(
    ("kwargs", "values", "passed"),
    [
        ({"at_least": 1.0}, [1.0, 1.0], True),  # the best value, asked of every sample
        ({"at_least": 1.0}, [1.0, 0.99], False),
        ({"at_least": 1e-9}, [0.0, 0.5], False),  # just above lo: decides something
        ({"at_most": 0.0}, [0.0, 0.0], True),  # "no mass at all here"
        ({"at_most": 0.0}, [0.0, 0.01], False),
        ({"at_most": 0.999}, [1.0], False),
    ],
)  # fmt: skip
def test_bounds_at_the_useful_end_of_the_range_are_kept(
    kwargs: dict, values: list[float], passed: bool
) -> None:
    if passed:
        rec = decide("assert_demo", "score", values, bounds=(0.0, 1.0), **kwargs)
    else:
        rec = fails("assert_demo", "score", values, bounds=(0.0, 1.0), **kwargs)
    assert rec.passed is passed and rec.bound == next(iter(kwargs.values()))


def test_a_signed_range_and_no_range() -> None:
    with pytest.raises(
        InvalidInputError, match=r"at_least=-1 always passes: rho lies in \[-1, 1\]"
    ):
        decide("assert_demo", "rho", [0.3], at_least=-1, bounds=(-1, 1))
    assert decide("assert_demo", "rho", [-0.5], at_least=-0.9, bounds=(-1, 1)).passed
    assert decide("assert_demo", "rho", [-1.0], at_most=-1, bounds=(-1, 1)).passed  # lo is kept
    assert fails("assert_demo", "rho", [0.0], at_most=-0.5, bounds=(-1, 1)).failing == (0,)
    # an unbounded metric (bounds=None, the default) accepts any bound, as before
    assert decide("assert_demo", "logit", [3.0], at_least=-1e9).passed
    assert fails("assert_demo", "logit", [3.0], at_least=1e9).obtained == 3.0


@pytest.mark.parametrize("bounds", [(1, 0), (0, 0), (0, NAN), (0,), [0, 1], (True, 2), "01"])
def test_a_bad_range_is_invalid_input(bounds: object) -> None:
    with pytest.raises(InvalidInputError, match=r"bounds must be a metric's range \(lo, hi\)"):
        decide("assert_demo", "score", [0.5], at_least=0.5, bounds=bounds)  # type: ignore[arg-type]


def test_an_empty_batch_is_an_error_not_a_pass() -> None:
    for empty in ([], torch.empty(0), torch.empty(0, 3)):
        with pytest.raises(
            InvalidInputError,
            match=r"assert_demo: there are no values to check \(an empty batch\?\)",
        ):
            decide("assert_demo", "score", empty, at_least=0.5)


def test_items_and_reasons_must_be_one_per_value() -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"assert_demo: items has 1 entries for 2 values; give one per value",
    ):
        decide("assert_demo", "score", [0.1, 0.2], at_least=0.5, items=("x",))
    with pytest.raises(InvalidInputError, match="reasons has 3 entries for 2 values"):
        decide("assert_demo", "score", [0.1, 0.2], at_least=0.5, reasons=("a", "b", "c"))


# ---------------------------------------------------------------- the record


def test_items_unit_chance_notes_hint_and_details_in_the_failure_text() -> None:
    rec = fails(
        "assert_demo",
        "score",
        [0.9, 0.2],
        at_least=0.5,
        unit="layer",
        items=("conv1", "fc"),
        chance=[0.25, 0.75],
        notes=["a note"],
        hint="How to fix it.",
        details={"method": "gradcam", "layer": "fc", "extra": 3},
    )
    assert rec.chance == 0.5 and rec.details["chance_per_sample"] == [0.25, 0.75]
    assert rec.method == "gradcam" and rec.layer == "fc" and rec.details["extra"] == 3
    assert rec.message.splitlines() == [
        "assert_demo: score >= 0.5 must hold for every layer; 1 of 2 layers fail.",
        "  obtained: 0.2 (worst layer, fc); mean 0.55",
        "  expected: >= 0.5",
        "  chance:   0.5 (what a uniform map scores; mean over samples)",
        "  failing layers, worst first:",
        "    fc: 0.2",
        "  a note",
        "  method: gradcam, layer: fc",
        "How to fix it.",
    ]


def test_long_failure_lists_are_truncated_worst_first_but_the_record_keeps_all() -> None:
    values = [i / 100 for i in range(15)]  # all below 0.5; index 0 is the worst
    rec = fails("assert_demo", "score", values, at_least=0.5)
    lines = rec.message.splitlines()
    listed = [ln for ln in lines if ln.startswith("    ") and not ln.startswith("    ...")]
    assert [int(ln.split(":")[0]) for ln in listed] == list(range(10))
    assert lines[-1] == "    ... and 5 more (all in the record's .failing)"
    assert rec.failing == tuple(range(15))


def test_records_are_frozen_and_details_read_only() -> None:
    rec = decide("assert_demo", "score", [0.9], at_least=0.5, details={"method": "gradcam"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.passed = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.values = (0.0,)  # type: ignore[misc]
    with pytest.raises(TypeError):
        rec.details["method"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        del rec.details["method"]  # type: ignore[attr-defined]
    assert rec.details == {"method": "gradcam"}
    assert isinstance(rec.values, tuple) and isinstance(rec.items, tuple)
    assert isinstance(rec.failing, tuple)


def test_details_are_copied_so_the_caller_cannot_change_them_later() -> None:
    given_details = {"layer": "fc"}
    rec = AuditRecord("c", "assert_c", True, (1.0,), details=given_details)
    given_details["layer"] = "conv1"
    assert rec.layer == "fc" and rec.method is None
    assert rec.items == ("0",)  # default item labels are the indices


def test_to_json_round_trips_with_nan_as_null() -> None:
    rec = fails(
        "assert_demo",
        "score",
        [0.9, NAN],
        at_least=0.5,
        chance=[0.25, 0.25],
        details={"per_step": torch.tensor([[1.0, NAN]]), "steps": ("a", "b")},
        samples=SampleViews(maps=torch.ones(2, 4, 4)),
    )
    data = rec.to_json()
    text = json.dumps(data, allow_nan=False)  # no NaN token may remain
    back = json.loads(text)
    assert back == data
    assert back["values"] == [0.9, None] and back["failing"] == [1] and back["obtained"] is None
    assert back["details"]["per_step"] == [[1.0, None]] and back["details"]["steps"] == ["a", "b"]
    assert back["direction"] == "higher" and back["bound"] == 0.5 and back["chance"] == 0.25
    assert back["message"] == rec.message
    assert "samples" not in back
    assert set(back) == {f.name for f in dataclasses.fields(AuditRecord)} - {"samples"} | {
        "message"
    }


def test_samples_do_not_take_part_in_equality() -> None:
    a = AuditRecord("c", "assert_c", True, (1.0,), samples=SampleViews(maps=torch.ones(1, 2, 2)))
    b = AuditRecord("c", "assert_c", True, (1.0,))
    assert a == b and "samples" not in repr(a)


def test_format_number() -> None:
    assert format_number(0.123456) == "0.1235"
    assert format_number(-0.5, signed=True) == "-0.5"
    assert format_number(0.25, signed=True) == "+0.25"
    assert format_number(12345.6) == "1.235e+04"
    assert format_number(None) == "n/a"
    assert format_number(NAN) == "nan"


def test_format_record_of_a_handmade_record_with_reasons_lists_in_item_order() -> None:
    rec = AuditRecord(
        "shape",
        "assert_shapes",
        False,
        (1.0, 0.0, 1.0),
        items=("a", "b", "c"),
        unit="layer",
        failing=(2, 0),
        rule="every shape must match",
        reasons=("too big", "", "too small"),
    )
    assert format_record(rec).splitlines() == [
        "assert_shapes: every shape must match; 2 of 3 layers fail.",
        "  failing layers:",
        "    c: too small",
        "    a: too big",
    ]


# ---------------------------------------------------------------- who receives records


def test_collect_records_nests_and_each_block_gets_what_was_emitted_inside_it() -> None:
    first = decide("assert_demo", "outside", [1.0], at_least=0)  # no block open: nobody gets it
    with collect_records() as outer:
        a = decide("assert_demo", "a", [1.0], at_least=0)
        with collect_records() as inner:
            b = decide("assert_demo", "b", [1.0], at_least=0)
            with pytest.raises(AuditFailure) as info:
                decide("assert_demo", "c", [0.0], at_least=1)
        d = emit(AuditRecord("d", "assert_d", True, (1.0,)))
    after = decide("assert_demo", "after", [1.0], at_least=0)
    assert [r.check for r in outer] == ["a", "b", "c", "d"]
    assert [r.check for r in inner] == ["b", "c"]
    assert outer[0] is a and outer[1] is b and outer[2] is info.value.record and outer[3] is d
    assert first not in outer and after not in outer


def test_conclude_emits_then_returns_or_raises() -> None:
    ok = AuditRecord("c", "assert_c", True, (1.0,), rule="it holds")
    bad = dataclasses.replace(ok, passed=False, failing=(0,), reasons=("broken",))
    with collect_records() as got:
        assert conclude(ok) is ok
        with pytest.raises(AuditFailure) as info:
            conclude(bad)
    assert got == [ok, bad] and info.value.record is bad
    assert str(info.value) == (
        "assert_c: it holds; 1 of 1 sample fail.\n  failing samples:\n    0: broken"
    )


# ---------------------------------------------------------------- tracebacks


def _public_asserts() -> list[str]:
    return sorted(n for n in ma.__all__ if n.startswith("assert_"))


def test_every_public_assert_hides_its_frame() -> None:
    names = _public_asserts()
    assert len(names) == 14 and set(names) <= set(checks.__all__)
    for name in [*names, "decide"]:
        fn = inspect.unwrap(getattr(ma, name))
        assert "__tracebackhide__" in fn.__code__.co_varnames, name
    assert "__tracebackhide__" in conclude.__code__.co_varnames


def _failing_calls(seed_model: nn.Module, seed_input: torch.Tensor):  # type: ignore[no-untyped-def]
    maps = torch.zeros(1, 8, 8)
    maps[0, -1, -1] = 1.0
    box = torch.tensor([[0, 0, 4, 4]])
    base = Baseline()
    base.set("t::iou", 0.8, direction="higher", tolerance=0.05)
    leaky = nn.Linear(1, 1)
    leaky.register_forward_hook(lambda m, a, o: None)

    def rewrite_a(module: nn.Module, args: tuple, a: torch.Tensor) -> None:
        a.register_hook(lambda grad: grad * 6)

    seed_model.add.register_forward_hook(rewrite_a)
    return [
        lambda: ma.assert_mass_in_box(maps, box, at_least=0.5),
        lambda: ma.assert_pointing_game(maps, box, at_least=1),
        lambda: ma.assert_iou(maps, box, at_least=0.5),
        lambda: ma.assert_within_baseline([base.compare("t::iou", 0.5)]),
        lambda: ma.assert_no_hooks_left(leaky),
        lambda: ma.assert_feature_map_shapes(nn.Sequential(nn.Linear(2, 3)), (1, 2), {"0": (4,)}),
        lambda: ma.assert_hooks_preserve_gradients(seed_model, seed_input),
    ]


def test_failures_show_no_library_frames(seed_model: nn.Module, seed_input: torch.Tensor) -> None:
    package = Path(ma.__file__).parent
    for call in _failing_calls(seed_model, seed_input):
        with pytest.raises(AuditFailure) as info:
            call()
        ours = [e for e in info.traceback if package in Path(str(e.path)).parents]
        assert ours, "the failure is raised inside modelaudit/checks"
        shown = [f"{Path(str(e.path)).name}:{e.name}" for e in ours if not e.ishidden(info)]
        assert shown == [], shown


# ---------------------------------------------------------------- the rule, as a property

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(values=st.lists(finite, min_size=1, max_size=30), bound=finite, higher=st.booleans())
def test_all_passes_iff_every_value_satisfies_the_bound(
    values: list[float], bound: float, higher: bool
) -> None:
    ok = [v >= bound if higher else v <= bound for v in values]
    keyword = {"at_least": bound} if higher else {"at_most": bound}
    with collect_records() as got:
        try:
            rec = decide("assert_p", "v", values, aggregate="all", **keyword)
        except AuditFailure as exc:
            rec = exc.record
    assert got == [rec]
    assert rec.passed == all(ok)
    assert rec.failing == tuple(i for i, good in enumerate(ok) if not good)
    assert rec.obtained == (min(values) if higher else max(values))


@given(
    values=st.lists(finite, min_size=1, max_size=30),
    bound=finite,
    higher=st.booleans(),
    denominator=st.integers(1, 20),
    data=st.data(),
)
def test_fraction_passes_iff_at_least_ceil_q_n_values_satisfy_the_bound(
    values: list[float], bound: float, higher: bool, denominator: int, data: st.DataObject
) -> None:
    numerator = data.draw(st.integers(1, denominator))
    q = numerator / denominator  # a fraction as a user writes it: 1/3, 0.7, 1.0...
    need = math.ceil(Fraction(numerator, denominator) * len(values))
    satisfied = sum(v >= bound if higher else v <= bound for v in values)
    keyword = {"at_least": bound} if higher else {"at_most": bound}
    try:
        rec = decide("assert_p", "v", values, aggregate=q, **keyword)
    except AuditFailure as exc:
        rec = exc.record
    assert rec.passed == (satisfied >= need)
    assert len(rec.failing) == len(values) - satisfied

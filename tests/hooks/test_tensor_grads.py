"""tensor_grads(): gradients of named intermediate tensors through Tensor.register_hook."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit import HookError, InvalidInputError
from modelaudit.hooks import RecordMissingError, tensor_grads


def test_seed_walk_through():
    w = torch.tensor(1.0, requires_grad=True)
    x = torch.tensor(2.0)
    with tensor_grads() as tg:
        a = tg.watch("a", w + x)
        b = tg.watch("b", w + 1)
        y = a * b
        y.backward()
    assert tg["a"].item() == 2.0  # dy/da = b
    assert tg["b"].item() == 3.0  # dy/db = a
    assert w.grad is not None and w.grad.item() == 5.0  # dy/dw = a + b
    assert tg.names == ["a", "b"]


def test_seed_with_the_rewriting_hook_gives_15_and_12():
    """A hook at a that does grad *= 2; return grad * 3 multiplies dy/da by 6."""
    w = torch.tensor(1.0, requires_grad=True)
    x = torch.tensor(2.0, requires_grad=True)

    def rewrite(grad: torch.Tensor) -> torch.Tensor:
        grad *= 2
        return grad * 3

    with tensor_grads() as tg:
        a = tg.watch("a", w + x)  # registered first: sees the gradient before the rewrite
        a.register_hook(rewrite)
        y = a * (w + 1)
        dw, dx = torch.autograd.grad(y, [w, x])
    assert dw.item() == 15.0 and dx.item() == 12.0
    # the rewrite's in-place `grad *= 2` cannot reach the recorded value: it is a copy
    assert tg["a"].item() == 2.0


def test_handles_are_removed_on_exit_and_late_backward_is_ignored():
    w = torch.tensor(3.0, requires_grad=True)
    with tensor_grads() as tg:
        a = tg.watch("a", w * 2)
    assert not a._backward_hooks
    (a * a).backward()
    assert "a" not in tg
    with pytest.raises(HookError, match="block has ended"):
        tg.watch("b", w * 3)


def test_handles_are_removed_when_the_block_raises():
    w = torch.tensor(3.0, requires_grad=True)
    with pytest.raises(KeyError), tensor_grads() as tg:
        a = tg.watch("a", w * 2)
        raise KeyError("inside")
    assert not a._backward_hooks


def test_watch_rejects_bad_tensors_and_names():
    with tensor_grads() as tg:
        with pytest.raises(InvalidInputError, match="does not require grad"):
            tg.watch("c", torch.ones(2))
        with pytest.raises(InvalidInputError, match="expected a tensor"):
            tg.watch("d", 3.0)  # type: ignore[arg-type]
        w = torch.ones(1, requires_grad=True)
        tg.watch("e", w * 1)
        with pytest.raises(InvalidInputError, match="already watched"):
            tg.watch("e", w * 2)


def test_missing_gradient_is_explained():
    w = torch.ones(1, requires_grad=True)
    with tensor_grads() as tg:
        tg.watch("unused", w * 5)
        (w * 2).sum().backward()
    with pytest.raises(RecordMissingError, match="no gradient reached 'unused'"):
        tg["unused"]
    with pytest.raises(RecordMissingError, match="no tensor named 'zz' was watched"):
        tg["zz"]


def test_reduce_and_autograd_grad():
    x = torch.arange(4.0, requires_grad=True)
    with tensor_grads(reduce=lambda g: g.abs().max()) as tg:
        h = tg.watch("h", x * 3)
        torch.autograd.grad((h**2).sum(), x)
    assert tg["h"].item() == 18.0  # d/dh sum(h^2) = 2h, largest 2 * 9


@settings(max_examples=20, deadline=None)
@given(
    w=st.floats(-10, 10, allow_nan=False, width=32),
    x=st.floats(-10, 10, allow_nan=False, width=32),
)
def test_product_rule_holds_for_all_values(w, x):
    """For y = (w + x)(w + 1): dy/da = w + 1, dy/db = w + x, dy/dw = 2w + x + 1."""
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    with tensor_grads() as tg:
        a = tg.watch("a", wt + x)
        b = tg.watch("b", wt + 1)
        (a * b).backward()
    assert tg["a"].item() == pytest.approx(w + 1)
    assert tg["b"].item() == pytest.approx(w + x)
    assert wt.grad is not None and wt.grad.item() == pytest.approx(2 * w + x + 1)


def _readme_section(title: str) -> tuple[str, int]:
    """README.md's ``## title`` section, fences blanked, and its first line number (0-based)."""
    lines = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    # a fence line ends an example's expected output, as a blank line does in a docstring
    body = ["" if line.startswith("```") else line for line in lines[start:end]]
    return "\n".join(body) + "\n", start


def test_the_readme_hooks_and_gradients_examples_run():
    """README.md's examples (legacy vs full backward hook, 5 / 15, the in-forward hook)."""
    text, lineno = _readme_section("Hooks and gradients")
    test = doctest.DocTestParser().get_doctest(text, {}, "README.md", "README.md", lineno)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
    assert result.attempted >= 18  # the section has 18 examples: they all ran


def test_a_watch_after_a_rewriting_hook_records_the_rewritten_gradient():
    """Tensor hooks run in registration order: after grad *= 2; return grad * 3, 2 is 12."""
    w = torch.tensor(1.0, requires_grad=True)
    x = torch.tensor(2.0)

    def rewrite(grad: torch.Tensor) -> torch.Tensor:
        grad *= 2
        return grad * 3

    with tensor_grads() as tg:
        a = w + x
        a.register_hook(rewrite)
        tg.watch("a", a)
        (a * (w + 1)).backward()
    assert tg["a"].item() == 12.0  # 6 * dy/da, dy/da = w + 1 = 2
    assert w.grad is not None and w.grad.item() == 15.0  # 12 + a, a = 3

"""The one target-scoring path: score_targets and the TargetScorer it returns."""

from __future__ import annotations

import pytest
import torch

from modelaudit.errors import InvalidInputError
from modelaudit.targets import score_targets, target_scores

LOGITS = torch.tensor([[0.0, 3.0, 1.0], [5.0, 1.0, 2.0]])


def test_class_targets_are_fixed_on_the_first_output():
    scorer, scores = score_targets(LOGITS, None)
    assert scorer.single and scorer.k == 1 and not scorer.is_callable
    assert scores.tolist() == [[3.0], [5.0]]
    assert scorer.classes().tolist() == [1, 0]
    later = torch.tensor([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [1.0, 2.0, 3.0]])
    # rows of a later batch are variants of samples 0, 1, 0: scored for their fixed class
    assert scorer.rows(later, torch.tensor([0, 1, 0])).tolist() == [[0.0], [0.0], [2.0]]


def test_k_targets_and_probabilities():
    scorer, scores = score_targets(LOGITS, [[0, 1], [2, 2]])
    assert not scorer.single and scorer.k == 2 and scores.tolist() == [[0.0, 3.0], [2.0, 2.0]]
    assert scorer.classes().tolist() == [[0, 1], [2, 2]]
    probs = scorer.probabilities().rows(LOGITS)
    torch.testing.assert_close(probs, LOGITS.softmax(1).gather(1, torch.tensor([[0, 1], [2, 2]])))
    _, softmax = score_targets(LOGITS, 1, softmax=True)
    torch.testing.assert_close(softmax[:, 0], LOGITS.softmax(1)[:, 1])


def test_callables_see_whole_batches_of_n_rows():
    seen: list[int] = []

    def score(out: torch.Tensor) -> torch.Tensor:
        seen.append(out.shape[0])
        return out[:, 2] - out[:, 0]

    scorer, scores = score_targets(LOGITS, score)
    assert scorer.is_callable and scorer.classes() is None and scores.tolist() == [[1.0], [-3.0]]
    assert scorer.rows(torch.cat([LOGITS, LOGITS]), torch.tensor([0, 1, 0, 1])).shape == (4, 1)
    assert seen == [2, 2, 2]  # one call per group of N rows
    with pytest.raises(InvalidInputError, match="needs class indices"):
        scorer.probabilities()


def test_scores_stay_differentiable_and_target_scores_flattens():
    out = LOGITS.clone().requires_grad_(True)
    _, scores = score_targets(out, [2, 0])
    (grad,) = torch.autograd.grad(scores.sum(), out)
    assert grad.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert target_scores(LOGITS, [2, 0]).tolist() == [1.0, 5.0]
    assert target_scores(LOGITS, [[2], [0]]).shape == (2, 1)


@pytest.mark.parametrize(
    ("output", "target", "message"),
    [
        (LOGITS, 3, "target class 3 for sample 0 is out of range"),
        (LOGITS, [0], r"target has shape \(1,\) but the batch has 2 samples"),
        (LOGITS, lambda out: out[None], r"must return \(N,\) or \(N, K\) scores; got \(1, 2, 3\)"),
        (LOGITS, lambda out: out[:1, 0], "returned 1 scores for a batch of 2"),
        ({"logits": LOGITS}, 0, "the model returned a dict"),
    ],
)
def test_errors_are_clear(output, target, message):
    with pytest.raises(InvalidInputError, match=message):
        score_targets(output, target, 2)


@pytest.mark.parametrize(
    "target",
    [[False, 0], [True, 1], True, [[0, True], [1, 2]], (0, False), torch.tensor([True, False])],
)
def test_bools_in_targets_are_rejected(target):
    # [False, 0] used to be read as classes [0, 0], True as class 1
    with pytest.raises(InvalidInputError, match=r"holds a bool; class targets are ints"):
        score_targets(LOGITS, target)
    with pytest.raises(InvalidInputError, match=r"holds a bool"):
        target_scores(LOGITS, target)
    assert score_targets(LOGITS, [0, 1])[1].tolist() == [[0.0], [1.0]]  # ints still work

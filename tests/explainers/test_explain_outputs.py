"""Models whose forward returns a dict, a dataclass or a tuple: the output selector.

The expected maps are those of the same network returning its logits as a plain tensor.
"""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch
from torch import nn

import modelaudit as ma
from modelaudit.errors import InvalidInputError
from modelaudit.explainers.score_cams import scorecam
from modelaudit.outputs import from_output, select_output
from modelaudit.targets import score_targets

IMAGES = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
TARGET = [0, 2, 1, 2]


class Net(nn.Module):
    """A small CNN; ``wrap`` turns its (logits, aux) into the output a model returns."""

    def __init__(self, wrap=lambda logits, aux: logits) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.act = nn.ReLU()
            self.head = nn.Linear(6, 3)
            self.aux = nn.Linear(6, 3)
        self.wrap = wrap

    def forward(self, x: torch.Tensor):
        pooled = self.act(self.conv(x)).mean(dim=(2, 3))
        return self.wrap(self.head(pooled), self.aux(pooled))


@dataclasses.dataclass
class Output:
    """A dataclass output (not a mapping), like a library's result object."""

    loss: None
    logits: torch.Tensor
    hidden: torch.Tensor


class ModelOutput(collections.OrderedDict):
    """Like Hugging Face's ``ModelOutput``: a mapping whose keys are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


WRAPS = {
    "dict": lambda logits, aux: {"logits": logits, "aux": aux},
    "torchvision out": lambda logits, aux: collections.OrderedDict(out=logits, aux=aux),
    "dataclass": lambda logits, aux: Output(None, logits, aux),
    "ModelOutput": lambda logits, aux: ModelOutput(logits=logits, hidden_states=aux),
    "one-tensor tuple": lambda logits, aux: (logits,),
}


@pytest.mark.parametrize("kind", list(WRAPS))
def test_logits_are_found_automatically(kind):
    want = ma.gradcam(Net(), IMAGES, TARGET, "act")
    got = ma.gradcam(Net(WRAPS[kind]), IMAGES, TARGET, "act")
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert got.targets.tolist() == TARGET
    predicted = ma.gradcam(Net(WRAPS[kind]), IMAGES, None, "act").targets
    assert predicted.tolist() == Net()(IMAGES).argmax(1).tolist()


def test_passes_and_gradient_free_methods_see_the_logits_too():
    model = Net(WRAPS["dataclass"])
    one = ma.gradcam(model, IMAGES, TARGET, "act", pass_size=None)
    torch.testing.assert_close(ma.gradcam(model, IMAGES, TARGET, "act", pass_size=1), one)
    want = scorecam(Net(), IMAGES, TARGET, "act")
    torch.testing.assert_close(scorecam(model, IMAGES, TARGET, "act"), want)


def test_an_explicit_part_by_key_attribute_or_index():
    aux_only = Net(lambda logits, aux: aux)
    want = ma.gradcam(aux_only, IMAGES, TARGET, "act")
    for wrap, select in [
        (WRAPS["dict"], "aux"),
        (WRAPS["dataclass"], "hidden"),
        (lambda logits, aux: (logits, aux), 1),
    ]:
        got = ma.gradcam(Net(wrap), IMAGES, from_output(select, TARGET), "act", pass_size=2)
        torch.testing.assert_close(got, want)  # passes of 2: sums in another order
    # a callable target receives the selected part
    got = ma.gradcam(Net(WRAPS["dict"]), IMAGES, from_output("aux", lambda a: a[:, 1]), "act")
    torch.testing.assert_close(got, ma.gradcam(aux_only, IMAGES, 1, "act"))


@pytest.mark.parametrize(
    ("output", "select", "message"),
    [
        (
            {"a": torch.zeros(2, 3), "b": torch.zeros(2, 1)},
            None,
            r"no logits found in the model output, a dict with \{'a': Tensor\(2, 3\), "
            r"'b': Tensor\(2, 1\)\}.*from_output",
        ),
        (
            Output(None, torch.zeros(2, 3), torch.zeros(2, 4)),
            "pooled",
            r"no part 'pooled' found .* Output with \{'loss': NoneType, 'logits': Tensor\(2, 3\)",
        ),
        ((torch.zeros(2, 3), torch.zeros(2, 3)), None, r"a tuple of \[Tensor\(2, 3\), Tensor"),
        ((torch.zeros(2, 3),), 4, "no part 4 found"),
        (
            [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}],
            None,
            r"returned detections .* target=modelaudit.detection_target\(boxes, labels\)",
        ),
    ],
)
def test_a_missing_part_lists_what_there_is(output, select, message):
    with pytest.raises(InvalidInputError, match=message):
        select_output(output, select)


def test_a_model_without_logits_fails_clearly_in_an_explainer():
    model = Net(lambda logits, aux: {"first": logits, "second": aux})
    with pytest.raises(InvalidInputError, match=r"\{'first': Tensor\(\d, 3\), 'second'"):
        ma.gradcam(model, IMAGES, TARGET, "act")


def test_selection_is_idempotent_and_bad_selectors_are_rejected():
    logits = torch.zeros(2, 3)
    assert select_output(logits, "logits") is logits  # a tensor is never selected from
    scorer, _ = score_targets({"aux": logits}, from_output("aux", [0, 1]))
    assert scorer.fixed_target().select == "aux"
    with pytest.raises(InvalidInputError, match="select is a key or attribute name"):
        from_output(1.5, 0)
    with pytest.raises(InvalidInputError, match="cannot wrap another"):
        from_output("a", from_output("b", 0))

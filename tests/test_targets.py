"""The one target-scoring path: score_targets, the TargetScorer it returns, and the
ready-made segmentation and detection targets."""

from __future__ import annotations

import pytest
import torch
import torchvision

import modelaudit as ma
from modelaudit.errors import InvalidInputError
from modelaudit.targets import (
    detection_target,
    score_targets,
    segmentation_target,
    target_scores,
)

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
        (
            {"feats": LOGITS, "aux": LOGITS},
            0,
            r"no logits found in the model output, a dict with \{'feats': Tensor\(2, 3\), "
            r"'aux': Tensor\(2, 3\)\}",
        ),
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


SEG_IMAGES = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _masks() -> torch.Tensor:
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 10:30, 12:40] = True
    masks[1, 40:60, 5:20] = True
    return masks


@pytest.fixture(scope="module")
def lraspp() -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=3
        ).eval()


def test_segmentation_target_sums_the_class_logits_over_the_mask(lraspp):
    masks, labels = _masks(), [1, 2]
    with torch.no_grad():
        out = lraspp(SEG_IMAGES)  # {"out": (2, 3, 64, 64)}
    want = [
        sum(float(out["out"][i, labels[i], r, c]) for r, c in masks[i].nonzero().tolist())
        for i in range(2)
    ]
    got = segmentation_target(masks, labels)(out)
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(segmentation_target(masks, labels)(out["out"]), got)  # a tensor
    maps = ma.gradcam(lraspp, SEG_IMAGES, segmentation_target(masks, labels), "backbone.12")
    assert maps.shape == (2, 64, 64) and bool(maps.isfinite().all())
    assert float(maps.amax(dim=(1, 2)).max()) == 1.0


@pytest.mark.parametrize(
    ("masks", "label", "output", "message"),
    [
        (torch.zeros(64, 64, dtype=torch.bool), 0, None, r"masks must be \(N, H, W\)"),
        (_masks(), [0, 1, 2], None, "label must be one int or 2 ints"),
        (_masks(), 0, torch.zeros(2, 3, 32, 32), r"need \(N=2, classes, 64, 64\)"),
        (_masks(), 3, torch.zeros(2, 3, 64, 64), r"label\(s\) \[3, 3\] out of range for 3"),
    ],
)
def test_segmentation_target_errors(masks, label, output, message):
    with pytest.raises(InvalidInputError, match=message):
        segmentation_target(masks, label)(output)


def _detections() -> list[dict[str, torch.Tensor]]:
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], requires_grad=True)
    return [
        {
            "boxes": torch.tensor(
                [[0.0, 0, 10, 10], [20, 20, 40, 40], [22, 22, 40, 40], [50, 50, 60, 60]]
            ),
            "labels": torch.tensor([1, 2, 1, 1]),
            "scores": scores,
        },
        {"boxes": torch.tensor([[5.0, 5, 15, 15]]), "labels": torch.tensor([3]),
         "scores": torch.tensor([0.5])},
    ]  # fmt: skip


def test_detection_target_takes_the_best_iou_among_its_label():
    dets = _detections()
    # box [20, 20, 40, 40]: IoU 1 with detection 1 (label 2), 324/400 = 0.81 with detection 2
    # (label 1): for label 1 detection 2 is taken, for label 2 detection 1
    target = detection_target(torch.tensor([[20.0, 20, 40, 40], [5, 5, 15, 15]]), [1, 3])
    got = target(dets)
    assert got.tolist() == pytest.approx([0.7, 0.5])
    (grad,) = torch.autograd.grad(got[0], dets[0]["scores"])
    assert grad.tolist() == [0.0, 0.0, 1.0, 0.0]  # the score of detection 2 alone
    label2 = detection_target(torch.tensor([[20.0, 20, 40, 40], [5, 5, 15, 15]]), [2, 3])
    assert label2(dets).tolist() == pytest.approx([0.8, 0.5])


@pytest.mark.parametrize(
    ("boxes", "label", "kwargs", "output", "message"),
    [
        ([[20.0, 20, 40, 40], [5, 5, 15, 15]], [1, 3], {"iou_threshold": 0.9}, "dets",
         r"image 0 has no detection of label 1 with IoU >= 0.9 .*best IoU of that label: 0.81"),
        ([[20.0, 20, 40, 40], [5, 5, 15, 15]], [1, 1], {}, "dets",
         r"image 1 has no detection of label 1 .*best IoU of that label: none"),
        ([[0.0, 0, 1, 1]], 0, {}, torch.zeros(1, 3),
         "must be a list of 1 per-image dicts .* got Tensor"),
        ([0.0, 0, 1, 1], 0, {}, None, r"boxes must be \(N, 4\) XYXY"),
        ([[0.0, 0, 1, 1]], 0, {"iou_threshold": 2.0}, None, r"iou_threshold must be in \[0, 1\]"),
    ],
)  # fmt: skip
def test_detection_target_errors(boxes, label, kwargs, output, message):
    with pytest.raises(InvalidInputError, match=message):
        target = detection_target(torch.tensor(boxes), label, **kwargs)
        target(_detections() if output == "dets" else output)


def test_gradcam_of_a_torchvision_detector():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=3, box_score_thresh=0.0
        ).eval()
    with torch.no_grad():
        dets = model(SEG_IMAGES)
    boxes = torch.stack([d["boxes"][0] for d in dets])
    labels = [int(d["labels"][0]) for d in dets]
    target = detection_target(boxes, labels)
    torch.testing.assert_close(target(dets), torch.stack([d["scores"][0] for d in dets]))
    # the default layer: the last map of one row per image (the RoI heads' per-box
    # features are not), at the 320 px the model resizes to: 10 x 10 cells of stride 32
    maps = ma.gradcam(model, SEG_IMAGES, target)
    assert maps.shape == (2, 64, 64) and bool(maps.isfinite().all()) and maps.grid == (10, 10)
    assert float(maps.amax(dim=(1, 2)).max()) == 1.0
    with pytest.raises(InvalidInputError, match="returned detections"):
        ma.gradcam(model, SEG_IMAGES, 0, "backbone.body.16")
    with pytest.raises(InvalidInputError, match=r"rows for a batch of 2.*detection head"):
        ma.gradcam(model, SEG_IMAGES, target, "roi_heads.box_head")

"""capture() on real torchvision architectures (random weights, 64x64 inputs).

Each test recomputes the recorded tensors by calling the submodules by hand, without
hooks, and cloning wherever an in-place ReLU would otherwise overwrite them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelaudit.hooks import capture, hook_count


def _input(seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(1, 3, 64, 64)


def _assert_all_close(cap, expected: dict[str, torch.Tensor]) -> None:
    assert set(cap.layers) == set(expected)
    for name, value in expected.items():
        assert cap.outputs[name].shape == value.shape, name
        torch.testing.assert_close(cap.outputs[name], value, msg=name)


def test_resnet18_outputs_match_a_manual_forward(resnet18):
    r, x = resnet18, _input(0)
    layers = ["conv1", "bn1", "layer1", "layer2.1", "layer4", "avgpool", "fc"]
    with capture(r, layers) as cap, torch.no_grad():
        r(x)
    with torch.no_grad():
        c = r.conv1(x)
        b = r.bn1(c)
        b_before_relu = b.clone()  # r.relu is in place
        l1 = r.layer1(r.maxpool(r.relu(b)))
        l2_0 = r.layer2[0](l1)
        l2 = r.layer2[1](l2_0)
        l4 = r.layer4(r.layer3(l2))
        pooled = r.avgpool(l4)
        logits = r.fc(torch.flatten(pooled, 1))
    assert (b_before_relu < 0).any()
    _assert_all_close(
        cap,
        {
            "conv1": c,
            "bn1": b_before_relu,
            "layer1": l1,
            "layer2.1": l2,
            "layer4": l4,
            "avgpool": pooled,
            "fc": logits,
        },
    )
    assert cap.outputs["layer4"].shape == (1, 512, 2, 2)
    assert sum(hook_count(r).values()) == 0


def test_resnet18_gradients_match_autograd_through_the_inplace_relu(resnet18):
    r, x = resnet18, _input(1)
    with capture(r, ["layer1.0.bn1", "layer4", "fc"], grads=True, outputs=False) as cap:
        r(x)[0, 3].backward()
    params_with_grad = [p for p in r.parameters() if p.grad is not None]
    for p in params_with_grad:
        p.grad = None
    # manual forward; layer1.0's ReLU would overwrite bn1's output, so run the block by hand
    h = r.maxpool(r.relu(r.bn1(r.conv1(x))))
    block = r.layer1[0]
    bn1 = block.bn1(block.conv1(h))
    out = block.bn2(block.conv2(torch.relu(bn1)))
    l1_0 = torch.relu(out + h)
    l4 = r.layer4(r.layer3(r.layer2(r.layer1[1](l1_0))))
    logits = r.fc(torch.flatten(r.avgpool(l4), 1))
    g_bn1, g_l4, g_fc = torch.autograd.grad(logits[0, 3], [bn1, l4, logits])
    torch.testing.assert_close(cap.grads["layer1.0.bn1"], g_bn1)
    torch.testing.assert_close(cap.grads["layer4"], g_l4)
    torch.testing.assert_close(cap.grads["fc"], g_fc)
    assert cap.grads["fc"][0].tolist() == [1.0 if k == 3 else 0.0 for k in range(10)]


@pytest.mark.slow  # building VGG-11 (130M parameters) takes seconds
def test_vgg11_outputs_match_a_manual_forward(vgg11):
    v, x = vgg11, _input(2)
    with (
        capture(v, ["features.0", "features.3", "features.18", "avgpool", "classifier.6"]) as cap,
        torch.no_grad(),
    ):
        v(x)
    with torch.no_grad():
        f0 = v.features[0](x)
        f3 = v.features[3](v.features[:3](x))
        f18 = v.features[18](v.features[:18](x))
        pooled = v.avgpool(v.features(x))
        logits = v.classifier(torch.flatten(pooled, 1))
    assert (f0 < 0).any() and (f18 < 0).any()  # recorded before the in-place ReLUs
    _assert_all_close(
        cap,
        {
            "features.0": f0,
            "features.3": f3,
            "features.18": f18,
            "avgpool": pooled,
            "classifier.6": logits,
        },
    )
    assert cap.outputs["features.18"].shape == (1, 512, 4, 4)


def test_alexnet_outputs_match_a_manual_forward(alexnet):
    a, x = alexnet, _input(3)
    with (
        capture(a, ["features.0", "features.3", "features.10", "avgpool", "classifier.6"]) as cap,
        torch.no_grad(),
    ):
        a(x)
    with torch.no_grad():
        f0 = a.features[0](x)
        f3 = a.features[3](a.features[:3](x))
        f10 = a.features[10](a.features[:10](x))
        pooled = a.avgpool(a.features(x))
        logits = a.classifier(torch.flatten(pooled, 1))
    # (64 + 2*2 - 11) // 4 + 1 = 15; pools (3, stride 2): 15 -> 7 -> 3
    assert (
        f0.shape == (1, 64, 15, 15) and f3.shape == (1, 192, 7, 7) and f10.shape == (1, 256, 3, 3)
    )
    _assert_all_close(
        cap,
        {
            "features.0": f0,
            "features.3": f3,
            "features.10": f10,
            "avgpool": pooled,
            "classifier.6": logits,
        },
    )


def test_densenet121_outputs_survive_inplace_relus(densenet121):
    d, x = densenet121, _input(4)
    f = d.features
    layers = [
        "features.conv0",
        "features.norm0",
        "features.denseblock1",
        "features.transition1",
        "features.norm5",
        "classifier",
    ]
    with capture(d, layers) as cap, torch.no_grad():
        d(x)
    with torch.no_grad():
        c0 = f.conv0(x)
        n0 = f.norm0(c0)
        n0_before_relu = n0.clone()  # relu0 is in place
        db1 = f.denseblock1(f.pool0(f.relu0(n0)))
        t1 = f.transition1(db1)
        n5 = f(x)  # DenseNet.forward then applies F.relu(..., inplace=True) to this
        logits = d.classifier(
            torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(n5), 1), 1)
        )
    assert (n0_before_relu < 0).any() and (n5 < 0).any()
    _assert_all_close(
        cap,
        {
            "features.conv0": c0,
            "features.norm0": n0_before_relu,
            "features.denseblock1": db1,
            "features.transition1": t1,
            "features.norm5": n5,
            "classifier": logits,
        },
    )
    assert cap.outputs["features.denseblock1"].shape == (1, 256, 16, 16)


def test_densenet121_gradients_match_autograd(densenet121):
    d, x = densenet121, _input(5)
    with capture(
        d, ["features.transition1", "features.denseblock4"], grads=True, outputs=False
    ) as cap:
        grads_before = [p.grad for p in d.parameters()]
        x_req = x.clone().requires_grad_(True)
        torch.autograd.grad(d(x_req)[0, 7], x_req)
    assert all(g is None for g in grads_before)
    f = d.features
    t1 = f.transition1(f.denseblock1(f.pool0(f.relu0(f.norm0(f.conv0(x))))))
    db4 = f.denseblock4(f.transition3(f.denseblock3(f.transition2(f.denseblock2(t1)))))
    out = d.classifier(
        torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(f.norm5(db4)), 1), 1)
    )
    g_t1, g_db4 = torch.autograd.grad(out[0, 7], [t1, db4])
    torch.testing.assert_close(cap.grads["features.transition1"], g_t1)
    torch.testing.assert_close(cap.grads["features.denseblock4"], g_db4)


def test_densenet121_norm5_gradient_is_blocked_by_the_functional_inplace_relu(densenet121):
    """DenseNet.forward calls F.relu(features, inplace=True) on norm5's output: torch's full
    backward hooks cannot allow that, and capture says what to do instead."""
    d = densenet121
    with (
        pytest.raises(RuntimeError, match="modified inplace") as info,
        capture(d, "features.norm5", grads=True),
    ):
        d(_input(6).requires_grad_(True))
    assert "capture the gradient of a later layer" in " ".join(info.value.__notes__)
    assert sum(hook_count(d).values()) == 0
    assert all(m.inplace for m in d.modules() if isinstance(m, nn.ReLU))

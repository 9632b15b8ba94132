"""Gradient methods run the batch in passes of ``pass_size`` samples: same maps, bounded graph."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from modelaudit.errors import InvalidInputError
from modelaudit.explainers import _probe_cache, engine, explain
from modelaudit.explainers.engine import DEFAULT_PASS_SIZE

GRADIENT_METHODS = [
    "gradcam",
    "gradcam_pp",
    "gradcam_elementwise",
    "hirescam",
    "layercam",
    "xgradcam",
    "eigengradcam",
    "smooth_gradcam_pp",
]


def forward_batch_sizes(model: torch.nn.Module) -> tuple[list[int], object]:
    """Record the batch size of every forward pass of ``model``."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    return sizes, handle


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize(
    "target", [None, 2, [0, 1, 2, 0, 1], [[0, 1], [2, 0], [1, 2], [0, 0], [2, 1]]]
)
def test_maps_do_not_depend_on_pass_size(small_net, name, target):
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw: dict = {"relu": False, "normalize": False}  # raw maps: no zeros to agree trivially
    if name == "smooth_gradcam_pp":
        kw["seed"] = 0
    whole = explain(name, small_net, x, target, "r2", pass_size=None, **kw)
    parts = explain(name, small_net, x, target, "r2", pass_size=2, **kw)
    assert parts.shape == whole.shape
    assert (whole.flatten(-2).std(dim=-1) > 0).all()
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-10)


def run_sizes(model, n: int, **kw) -> list[int]:
    sizes, handle = forward_batch_sizes(model)
    try:
        explain("layercam", model, torch.rand(n, 3, 8, 8, dtype=torch.float64), 0, "r2", **kw)
    finally:
        handle.remove()
    return sizes


def test_auto_pass_size_probes_then_fills_the_graph_budget(small_net, monkeypatch):
    assert DEFAULT_PASS_SIZE == "auto"
    probes: list[engine.GraphBytes] = []

    class Spy(engine.GraphBytes):
        def hooks(self):
            probes.append(self)
            return super().hooks()

    monkeypatch.setattr(engine, "GraphBytes", Spy)
    probe = engine.PROBE_SAMPLES
    assert probe == 3
    assert run_sizes(small_net, 10) == [3, 7]  # a small graph: the rest in one pass
    assert len(probes) == 1  # only the first pass is measured
    per_sample = probes[0].bytes // probe
    # after the explained ReLU: conv input 5x4x4 and tanh output 6x4x4, float64
    assert per_sample >= (5 + 6) * 4 * 4 * 8
    monkeypatch.setattr(engine, "GRAPH_BUDGET_BYTES", 2 * per_sample + 1)
    _probe_cache.clear()  # each call below probes afresh (a later one would reuse it)
    assert run_sizes(small_net, 10) == [3, 2, 2, 2, 1]
    monkeypatch.setattr(engine, "GRAPH_BUDGET_BYTES", 1)
    _probe_cache.clear()
    assert run_sizes(small_net, 5) == [3, 1, 1]
    _probe_cache.clear()
    assert run_sizes(small_net, 3) == [3]  # no more than the probe: one pass, not measured
    assert len(probes) == 3


def test_explicit_pass_size_and_none(small_net):
    assert run_sizes(small_net, 5, pass_size=2) == [2, 2, 1]
    assert run_sizes(small_net, 5, pass_size=5) == [5]
    assert run_sizes(small_net, 5, pass_size=None) == [5]


def test_callable_target_sees_the_whole_batch(small_net):
    seen: list[int] = []

    def score(out: torch.Tensor) -> torch.Tensor:
        seen.append(out.shape[0])
        return out[:, 0]

    maps = explain(
        "gradcam", small_net, torch.rand(6, 3, 8, 8, dtype=torch.float64), score, "r2", pass_size=2
    )
    assert maps.shape == (6, 8, 8)
    assert seen == [6]


def test_out_of_range_class_names_its_place_in_the_whole_batch(small_net, hook_count):
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    before = {n: p.requires_grad for n, p in small_net.named_parameters()}
    with pytest.raises(InvalidInputError, match="class 9 for sample 3 is out of range"):
        explain("gradcam", small_net, x, [0, 1, 2, 9, 0], "r2", pass_size=2)
    assert hook_count(small_net) == 0
    assert {n: p.requires_grad for n, p in small_net.named_parameters()} == before
    assert all(p.grad is None for p in small_net.parameters())


def test_wrong_target_length_is_reported_for_the_whole_batch(small_net):
    with pytest.raises(InvalidInputError, match="batch has 5 samples"):
        explain(
            "gradcam",
            small_net,
            torch.rand(5, 3, 8, 8, dtype=torch.float64),
            [0, 1],
            "r2",
            pass_size=2,
        )


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4", "Auto"])
def test_bad_pass_size_is_a_clear_error(small_net, bad):
    with pytest.raises(
        InvalidInputError,
        match=r"pass_size must be a positive int \(samples per pass\), 'auto' or None",
    ):
        explain(
            "gradcam",
            small_net,
            torch.rand(5, 3, 8, 8, dtype=torch.float64),
            0,
            "r2",
            pass_size=bad,
        )


@pytest.mark.parametrize("name", ["scorecam", "iscam"])  # SS-CAM draws its noise per batch
def test_score_cams_do_not_depend_on_the_masked_batch(small_net, name):
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    kw: dict = {"relu": False, "normalize": False}
    if name != "scorecam":
        kw["num_samples"] = 2
    auto = explain(name, small_net, x, [0, 1, 2], "r2", **kw)  # 8 per forward for 8x8
    for b in (1, 5):
        got = explain(name, small_net, x, [0, 1, 2], "r2", forward_batch=b, **kw)
        torch.testing.assert_close(got, auto, rtol=0, atol=1e-12)
    assert (auto.flatten(1).std(dim=1) > 0).all()


@pytest.mark.parametrize("name", ["scorecam", "sscam", "iscam"])
@pytest.mark.parametrize("bad", [0, -2, True, "8", 2.5])
def test_score_cams_reject_a_bad_masked_batch(small_net, name, bad):
    with pytest.raises(InvalidInputError, match="forward_batch must be a positive int or 'auto'"):
        explain(
            name,
            small_net,
            torch.rand(2, 3, 8, 8, dtype=torch.float64),
            0,
            "r2",
            forward_batch=bad,
        )


def test_a_zero_dim_tensor_target_is_one_class_for_every_part(small_net):
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    whole = explain("gradcam", small_net, x, 2, "r2", pass_size=None, relu=False)
    sizes, handle = forward_batch_sizes(small_net)
    try:
        parts = explain("gradcam", small_net, x, torch.tensor(2), "r2", pass_size=2, relu=False)
    finally:
        handle.remove()
    assert sizes == [2, 2, 1]
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-10)


@pytest.mark.parametrize("noise", ["mask", "input"])
def test_seeded_sscam_map_of_an_image_does_not_depend_on_its_batch(small_net, noise):
    # the noise used to be drawn for the rows of each masked forward in turn, so a seeded
    # map changed with forward_batch and with the other images of the batch (~3e-4 here)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    kw: dict = {"num_samples": 3, "std": 0.5, "seed": 7, "noise": noise}
    kw |= {"relu": False, "normalize": False}
    batch = explain("sscam", small_net, x, [0, 1, 2], "r2", **kw)
    alone = explain("sscam", small_net, x[1:2], [1], "r2", **kw)
    torch.testing.assert_close(alone[0], batch[1], rtol=0, atol=1e-12)
    reordered = explain("sscam", small_net, x[[2, 1]], [2, 1], "r2", **kw)
    torch.testing.assert_close(reordered[1], batch[1], rtol=0, atol=1e-12)
    for b in (1, 2, 5):
        got = explain("sscam", small_net, x, [0, 1, 2], "r2", forward_batch=b, **kw)
        torch.testing.assert_close(got, batch, rtol=0, atol=1e-12)
    other = explain("sscam", small_net, x, [0, 1, 2], "r2", **(kw | {"seed": 8}))
    assert (other - batch).abs().amax() > 1e-6  # the seed matters: the noise is real


# --------------------------------------------------------------------------- the probe, once


@pytest.fixture
def probes(monkeypatch) -> list[int]:
    """The bytes of every graph probe ``pass_size="auto"`` measures, in order."""
    _probe_cache.clear()
    seen: list[int] = []

    class Spy(engine.GraphBytes):
        def hooks(self):
            seen.append(0)
            index = len(seen) - 1
            outer = super().hooks()

            class Recording:
                def __enter__(_self):
                    return outer.__enter__()

                def __exit__(_self, *exc):
                    seen[index] = self.bytes
                    return outer.__exit__(*exc)

            return Recording()

    monkeypatch.setattr(engine, "GraphBytes", Spy)
    yield seen
    _probe_cache.clear()


def batch(n: int, side: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, side, side, dtype=torch.float64, generator=g)


def test_a_stream_of_same_shaped_batches_probes_once(small_net, probes):
    sizes, handle = forward_batch_sizes(small_net)
    try:
        for seed in range(5):  # different images, same shape
            explain("gradcam", small_net, batch(10, seed=seed), [0, 1, 2, 0, 1] * 2, "r2")
    finally:
        handle.remove()
    assert len(probes) == 1
    # the first call probes 3 samples; the rest of the stream goes in whole batches
    assert sizes == [3, 7, 10, 10, 10, 10]
    assert _probe_cache.entries() == 1


def test_a_new_sample_shape_or_layer_probes_again(gap_net, probes):
    for _ in range(2):
        explain("gradcam", gap_net, batch(6), 0, "r2")
    assert len(probes) == 1
    for _ in range(2):
        explain("gradcam", gap_net, batch(6, side=12), 0, "r2")  # another image size
    assert len(probes) == 2
    # above r2, the pool saves no tensor and the Linear its (3, 5) float64 input
    assert probes == [3 * 5 * 8, 3 * 5 * 8]
    for _ in range(2):
        explain("gradcam", gap_net, batch(6), 0, "r1")  # another layer
    assert len(probes) == 3
    for _ in range(2):
        explain("gradcam", gap_net.float(), batch(6).float(), 0, "r2")  # another dtype
    assert len(probes) == 4
    for _ in range(2):  # the batch size is not part of the key
        explain("gradcam", gap_net, batch(9).float(), 0, "r2")
    assert len(probes) == 4
    assert _probe_cache.entries() == 4


def test_cached_pass_size_keeps_the_graph_budget(small_net, probes, monkeypatch):
    explain("layercam", small_net, batch(10), 0, "r2")
    per_sample = probes[0] // engine.PROBE_SAMPLES
    monkeypatch.setattr(engine, "GRAPH_BUDGET_BYTES", 4 * per_sample + 1)  # 4 a pass
    sizes, handle = forward_batch_sizes(small_net)
    try:
        explain("layercam", small_net, batch(10), 0, "r2")
        explain("layercam", small_net, batch(2), 0, "r2")  # fewer than the budget: one pass
        monkeypatch.setattr(engine, "GRAPH_BUDGET_BYTES", 1)  # below one sample: one a pass
        explain("layercam", small_net, batch(3), 0, "r2")
    finally:
        handle.remove()
    assert sizes == [4, 4, 2, 2, 1, 1, 1]
    assert len(probes) == 1


@pytest.mark.parametrize("name", ["gradcam", "gradcam_pp", "layercam"])
def test_cached_runs_equal_uncached_runs_bitwise(small_net, probes, name):
    targets = [[0, 1], [2, 0], [1, 2], [0, 0], [2, 1], [1, 1], [0, 2]]
    kw: dict = {"relu": False, "normalize": False}
    uncached = []
    for seed in range(3):
        _probe_cache.clear()  # every call probes 3 samples, then passes the other 4
        uncached.append(explain(name, small_net, batch(7, seed=seed), targets, "r2", **kw))
    assert len(probes) == 3
    _probe_cache.clear()
    cached = [explain(name, small_net, batch(7, seed=s), targets, "r2", **kw) for s in range(3)]
    assert len(probes) == 4  # the first call of the stream probed; the other two did not
    for got, want in zip(cached, uncached):
        assert torch.equal(got, want)
        assert torch.equal(got.targets, want.targets)
    assert (cached[-1].flatten(-2).std(dim=-1) > 0).all()  # real maps, not zeros


def test_a_deleted_model_frees_its_entry(probes):
    from tests.explainers.conftest import SmallNet

    net = SmallNet().double().eval()
    explain("gradcam", net, batch(5), 0, "r2")
    assert _probe_cache.entries() == 1
    alive = weakref.ref(net)
    del net
    gc.collect()
    assert alive() is None  # the cache did not keep the model alive
    assert _probe_cache.entries() == 0


def test_replacing_a_module_probes_again(small_net, probes):
    explain("gradcam", small_net, batch(5), 0, "r2")
    explain("gradcam", small_net, batch(5), 0, "r2")
    assert len(probes) == 1
    small_net.c3 = torch.nn.Conv2d(5, 12, 3, padding=1).double()  # a bigger head
    small_net.fc = torch.nn.Linear(12 * 4 * 4, 3).double()
    explain("gradcam", small_net, batch(5), 0, "r2")
    assert len(probes) == 2
    assert probes[1] > probes[0]  # the new head saves twice the channels


def test_explicit_pass_sizes_and_callables_neither_read_nor_fill_the_cache(small_net, probes):
    for pass_size in (2, None):
        explain("gradcam", small_net, batch(5), 0, "r2", pass_size=pass_size)
    explain("gradcam", small_net, batch(5), lambda out: out[:, 0], "r2")  # one whole pass
    explain("gradcam", small_net, batch(3), 0, "r2")  # no more than the probe: not measured
    assert probes == []
    assert _probe_cache.entries() == 0


def test_a_failing_call_leaves_no_entry(small_net, probes):
    with pytest.raises(InvalidInputError, match="class 9 for sample 1 is out of range"):
        explain("gradcam", small_net, batch(5), [0, 9, 0, 0, 0], "r2")
    assert _probe_cache.entries() == 0


def test_the_cache_keeps_a_bounded_number_of_keys_per_model(small_net):
    _probe_cache.clear()
    try:
        for side in range(_probe_cache.MAX_ENTRIES + 3):
            _probe_cache.put(small_net, ("shape", side), side + 1)
        assert _probe_cache.entries() == _probe_cache.MAX_ENTRIES
        assert _probe_cache.get(small_net, ("shape", 0)) is None  # the oldest went first
        last = _probe_cache.MAX_ENTRIES + 2
        assert _probe_cache.get(small_net, ("shape", last)) == last + 1
    finally:
        _probe_cache.clear()

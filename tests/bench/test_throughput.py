"""The throughput bench's helpers: its data, its streamed audit loop, its memory reading.

Values are checked against hand-built masks, brute-force sorting and a reference audit
computed from the textbook Grad-CAM of the floor's activation and gradient
(``_impls.reference``) with mass in box and the pointing game written out by hand. Never
timings. Only torch and torchvision are needed (the peers are not).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _impls  # noqa: E402
import throughput as T  # noqa: E402

from modelaudit.zoo.data import shapes_data  # noqa: E402


def _net() -> nn.Module:
    """A small conv net: layer "3" is a 16x16 feature map for 32x32 inputs; 4 classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(5, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    ).eval()


def test_box_masks_by_hand() -> None:
    boxes = torch.tensor([[0, 0, 2, 1], [1, 1, 4, 3]])  # exclusive x2, y2
    want = np.zeros((2, 1, 3, 4), dtype=np.float32)
    want[0, 0, 0, 0:2] = 1
    want[1, 0, 1:3, 1:4] = 1
    got = T.box_masks(boxes, (3, 4))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_batches_are_the_zoo_images_by_seed_and_cover_every_image() -> None:
    got = list(T.batches(10, 4, 32, seed=5))
    assert [len(b[0]) for b in got] == [4, 4, 2]
    second = shapes_data(4, seed=6, image_size=32)
    assert torch.equal(got[1][0], second.images)
    assert torch.equal(got[1][1], second.boxes)
    assert torch.equal(got[1][2], second.labels)


def test_worst_maps_keeps_the_lowest_values_by_value_then_position() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 6, (23,), generator=g).float()  # many ties
    maps = torch.rand(23, 3, 3, generator=g)
    worst = T.WorstMaps(5)
    for start in range(0, 23, 4):
        worst.offer(values[start : start + 4], maps[start : start + 4], start)
    want = sorted(range(23), key=lambda i: (float(values[i]), i))[:5]
    assert worst.index.tolist() == want
    assert torch.equal(worst.values, values[want])
    assert worst.maps is not None
    assert torch.equal(worst.maps, maps[want])
    assert worst.maps.untyped_storage().nbytes() == 5 * 9 * 4  # a copy, not a batch's view


def test_worst_maps_with_k_zero_keeps_nothing() -> None:
    worst = T.WorstMaps(0)
    worst.offer(torch.zeros(3), torch.zeros(3, 2, 2), 0)
    assert worst.maps is None and len(worst.index) == 0


def _reference_audit(net: nn.Module, data: list, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mass in box and pointing game by hand, from the textbook Grad-CAM maps."""
    mass, hits = [], []
    for images, boxes, labels in data:
        maps = _impls.reference("gradcam", net, images, labels, layer)
        for m, (x1, y1, x2, y2) in zip(maps, boxes.tolist()):
            inside = torch.zeros_like(m, dtype=torch.bool)
            inside[y1:y2, x1:x2] = True
            m = m.clamp(min=0)
            mass.append(float(m[inside].sum() / m.sum()) if m.sum() > 0 else 0.0)
            top = m == m.max()  # ties: the share of the maxima that lie in the box
            hits.append(float((top & inside).sum() / top.sum()) if m.max() > 0 else 0.0)
    return torch.tensor(mass), torch.tensor(hits)


@pytest.mark.parametrize("probe_every_batch", [False, True])
def test_the_streamed_audit_equals_a_reference_audit(probe_every_batch: bool) -> None:
    net = _net()
    data = list(T.batches(10, 4, 32))
    res = T.audit_ours(net, data, "3", keep_worst=3, probe_every_batch=probe_every_batch)
    mass, hits = res.values()
    want_mass, want_hits = _reference_audit(net, data, "3")
    assert res.images == 10
    torch.testing.assert_close(mass, want_mass, atol=1e-5, rtol=0)
    torch.testing.assert_close(hits, want_hits, atol=1e-6, rtol=0)
    assert 0 < float(want_mass.mean()) < 1  # real maps and boxes, not a degenerate case
    want_worst = sorted(range(10), key=lambda i: (float(mass[i]), i))[:3]
    assert res.worst.index.tolist() == want_worst
    assert all(p.requires_grad for p in net.parameters())  # the model comes back as it was


def test_the_floor_runs_every_image_and_leaves_no_grad() -> None:
    net = _net()
    assert T.audit_floor(net, list(T.batches(10, 4, 32)), "3") == 10
    assert all(p.grad is None for p in net.parameters())


def test_peak_mb_reads_the_high_water_mark() -> None:
    status = "Name:\tpython\nVmPeak:\t 9999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n"
    assert T.peak_mb(status) == 2.0
    now = Path("/proc/self/status").read_text()
    rss = next(int(ln.split()[1]) for ln in now.splitlines() if ln.startswith("VmRSS:")) / 1024
    assert T.peak_mb() >= rss > 0
    with pytest.raises(RuntimeError, match="no VmHWM"):
        T.peak_mb("Name:\tpython\n")


@pytest.mark.slow
def test_a_tiny_run_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    tiny = ["--images", "8", "--batch", "4", "--size", "32", "--reps", "1", "--skip-peers"]
    T.main([*tiny, "--memory-images", "4", "8", "--keep-worst", "3", "--json", str(out)])
    got = json.loads(out.read_text())
    rows = {r["impl"]: r for r in got["throughput"]["rows"]}
    assert set(rows) == {T.FLOOR, T.OURS, T.OURS_PROBING, T.OURS_SCAN}
    assert rows[T.FLOOR]["x_floor"] == 1.0
    for r in rows.values():
        assert r["images"] == 8 and len(r["times_s"]) == 1
        assert r["images_per_s"] == pytest.approx(8 / r["s"])
    assert got["throughput"]["agreement"]["probe_every_batch_equal"] is True
    assert got["throughput"]["skipped_peer"] == "--skip-peers"
    memory = got["memory"]
    assert [r["images"] for r in memory] == [0, 4, 8]
    assert all(r["peak_mb"] > 0 for r in memory)
    # ma.scan keeps the 3 least-mass, the 3 most-mass and each class's least-mass samples:
    # all of 4 images; of 8, at least the 6 distinct ends
    kept = [r.get("worst_kept") for r in memory]
    assert kept[0] is None and kept[1] == 4 and 6 <= kept[2] <= 8
    assert memory[1]["vs_first_pct"] == 0
    assert list(memory[2]["peak_mb_on_the_way"]) == ["4"]  # the 8-image run, after 4


def test_run_all_runs_it_and_quick_is_small() -> None:
    import run_all

    script, quick = run_all.SCRIPTS["throughput"]
    assert (BENCH / script).exists()
    args = T.parse(quick)
    assert (args.images, args.reps, args.memory_images) == (128, 1, [256, 512])
    full = T.parse([])
    assert (full.images, full.batch, full.size, full.model, full.layer) == (
        2000,
        32,
        112,
        "resnet18",
        "layer4",
    )
    assert full.memory_images == [1000, 10000]


def _result(mass: list[float], hits: list[float]) -> T.AuditResult:
    res = T.AuditResult(keep_worst=1)
    res.add(mass, hits, torch.zeros(len(mass), 2, 2))
    return res


def test_agreement_sets_quantus_nan_mass_of_zero_maps_apart() -> None:
    ours = _result([0.5, 0.0, 0.25], [1.0, 0.0, 0.5])  # sample 1: an all-zero map
    peer = _result([0.5 + 2**-20, float("nan"), 0.25], [1.0, 1.0, 1.0])
    got = T.agreement({T.OURS: ours, T.OURS_PROBING: ours, T.PEER: peer})
    assert got["peer_nan_mass"] == 1
    assert got["ours_mass_where_peer_nan"] == [0.0]
    assert got["max_abs_diff_mass"] == 2**-20
    assert got["peer_mean_mass"] == pytest.approx((0.5 + 2**-20 + 0.25) / 2)
    assert got["pointing_same_share"] == pytest.approx(1 / 3)
    assert got["ours_hit_rate"] == 0.5 and got["peer_hit_rate"] == 1.0
    assert got["probe_every_batch_equal"] is True
    assert got["ours_worst_index"] == [1]


def test_watched_records_the_peak_once_each_mark_is_audited() -> None:
    data = list(T.batches(10, 4, 32))
    peaks: dict[str, float] = {}
    got = []
    for b in T.watched(data, [4, 5, 10], peaks):
        got.append(b)
        assert len(peaks) == {1: 0, 2: 1, 3: 2}[len(got)]  # recorded after a batch is done
    assert got == data
    assert list(peaks) == ["4", "5", "10"]  # 5 falls between batch ends 4 and 8: at 8
    assert all(v > 0 for v in peaks.values())

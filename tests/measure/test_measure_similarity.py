"""Map similarity: Spearman against scipy, SSIM against scikit-image, defined edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from modelaudit.errors import InvalidInputError
from modelaudit.measure import map_similarity, spearman, ssim


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(2, 6),
    st.integers(0, 2**31),
    st.sampled_from([3, 10, 1000]),
)
def test_spearman_matches_scipy_including_ties(n: int, side: int, seed: int, levels: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(levels, (n, side, side), generator=g).float()  # few levels: many ties
    b = torch.randint(levels, (n, side, side), generator=g).float()
    got = spearman(a, b)
    for i in range(n):
        if a[i].unique().numel() == 1 or b[i].unique().numel() == 1:
            continue  # scipy says nan; the constant-map convention is tested below
        want = spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert got[i].item() == pytest.approx(want, abs=1e-5)


def test_spearman_hand_computed_and_constant_maps() -> None:
    a = torch.tensor([[[1.0, 2.0, 3.0]]])
    assert spearman(a, torch.tensor([[[1.0, 3.0, 2.0]]])).item() == pytest.approx(0.5)
    assert spearman(a, a.exp()).item() == pytest.approx(1.0)  # monotone map: same ranking
    assert spearman(a, -a).item() == pytest.approx(-1.0)
    const = torch.zeros(1, 1, 3)
    assert spearman(const, const).item() == 1.0  # an unchanged zero map did not change
    assert spearman(const, a).item() == 0.0
    assert spearman(a, const).item() == 0.0


def test_ssim_matches_scikit_image_on_min_max_normalised_maps() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 9, 11, generator=g)
    b = a + 0.3 * torch.rand(2, 9, 11, generator=g)
    got = ssim(a, b)
    for i in range(2):
        x = a[i].double().numpy()
        y = b[i].double().numpy()
        x = (x - x.min()) / (x.max() - x.min())
        y = (y - y.min()) / (y.max() - y.min())
        assert got[i].item() == pytest.approx(
            structural_similarity(x, y, data_range=1.0, win_size=7)
        )
    assert torch.allclose(ssim(a, 5 * a + 2), torch.ones(2))  # affine changes are normalised away


def test_ssim_small_maps_use_a_smaller_window_and_tiny_ones_are_refused() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(1, 4, 5, generator=g), torch.rand(1, 4, 5, generator=g)
    x = (a[0] - a[0].min()) / (a[0].max() - a[0].min())
    y = (b[0] - b[0].min()) / (b[0].max() - b[0].min())
    want = structural_similarity(x.double().numpy(), y.double().numpy(), data_range=1.0, win_size=3)
    assert ssim(a, b).item() == pytest.approx(want)
    with pytest.raises(InvalidInputError, match="ssim needs maps of at least 3x3 pixels; got 2x5"):
        ssim(torch.rand(1, 2, 5), torch.rand(1, 2, 5))
    assert ssim(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3)).item() == pytest.approx(1.0)


def test_similarity_dispatch_and_shape_errors() -> None:
    a = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(map_similarity(a, a.sqrt(), "spearman"), spearman(a, a.sqrt()))
    assert torch.equal(map_similarity(a, a.sqrt(), "ssim"), ssim(a, a.sqrt()))
    with pytest.raises(
        InvalidInputError, match="similarity must be 'spearman' or 'ssim'; got 'l2'"
    ):
        map_similarity(a, a, "l2")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"same shape; got \(1, 4, 4\) and \(1, 4, 5\)"):
        spearman(a, torch.rand(1, 4, 5))
    assert np.isfinite(spearman(a, a).numpy()).all()


def test_both_ranking_paths_match_scipy_rankdata() -> None:
    from scipy.stats import rankdata

    from modelaudit.measure._sorting import _ranks_numpy, _ranks_torch, average_ranks, sorted_rows

    g = torch.Generator().manual_seed(4)
    flat = torch.randint(0, 6, (5, 40), generator=g).float()  # heavy ties
    want = torch.from_numpy(rankdata(flat.numpy(), axis=1))
    assert torch.equal(average_ranks(flat), want)
    assert torch.equal(torch.from_numpy(_ranks_numpy(flat.numpy())), want)
    assert torch.equal(_ranks_torch(flat), want)  # the path used off-CPU
    assert torch.equal(average_ranks(flat.half()), want)  # dtypes numpy cannot sort go via torch
    assert torch.equal(sorted_rows(flat, descending=True), flat.sort(dim=1, descending=True).values)
    assert torch.equal(sorted_rows(flat.half()), flat.half().sort(dim=1).values)

"""The shipped inferno/viridis tables: published endpoints, monotone lightness, lookups."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelaudit.errors import InvalidInputError
from modelaudit.report.colormap import COLORMAPS, colorize, colormap_lut


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Relative luminance (WCAG / sRGB), written out independently of the module."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


@pytest.mark.parametrize(
    ("name", "first", "middle", "last"),
    [
        # endpoints and midpoint of the published colormaps (matplotlib's 8-bit values)
        ("viridis", "#440154", "#21918c", "#fde725"),
        ("inferno", "#000004", "#bc3754", "#fcffa4"),
    ],
)
def test_tables_match_published_colours(name, first, middle, last):
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert (_hex(lut[0]), _hex(lut[128]), _hex(lut[255])) == (first, middle, last)


@pytest.mark.parametrize("name", COLORMAPS)
def test_lightness_rises_monotonically(name):
    # the property that makes these maps readable: brighter always means more relevant
    y = _luminance(colormap_lut(name))
    # strictly over every 4 entries; entry to entry only up to 8-bit rounding
    assert np.all(np.diff(y[::4]) > 0), np.flatnonzero(np.diff(y[::4]) <= 0)
    assert np.diff(y).min() > -5e-4
    # neighbouring entries are close (no jumps from a corrupted table row)
    assert np.abs(np.diff(colormap_lut(name).astype(int), axis=0)).max() <= 6


def test_tables_are_read_only():
    with pytest.raises(ValueError):
        colormap_lut("inferno")[0, 0] = 1


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=20),
    st.sampled_from(COLORMAPS),
)
def test_colorize_is_monotone_in_luminance(values, name):
    values = sorted(values)
    y = _luminance(colorize(np.array(values), name))
    assert np.diff(y).min() > -5e-4  # never darker beyond 8-bit rounding
    expected = colormap_lut(name)[[int(np.rint(v * 255)) for v in values]]
    assert np.array_equal(colorize(np.array(values), name), expected)


def test_colorize_keeps_shape_and_clips():
    out = colorize(np.array([[-0.5, 0.0], [1.0, 2.0]]), "viridis")
    assert out.shape == (2, 2, 3)
    assert _hex(out[0, 0]) == _hex(out[0, 1]) == "#440154"
    assert _hex(out[1, 0]) == _hex(out[1, 1]) == "#fde725"


def test_errors_name_the_problem():
    with pytest.raises(InvalidInputError, match=r"unknown colormap 'jet'; use one of 'inferno'"):
        colorize(np.zeros(2), "jet")
    with pytest.raises(InvalidInputError, match="NaN"):
        colorize(np.array([0.2, np.nan]))

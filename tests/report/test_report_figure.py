"""explain_figure: the captioned picture of ``modelaudit explain``, checked pixel by pixel."""

import numpy as np
import pytest

from modelaudit.errors import InvalidInputError
from modelaudit.report.colormap import colorize
from modelaudit.report.figure import (
    FONT,
    GLYPH_HEIGHT,
    GLYPH_WIDTH,
    explain_caption,
    explain_figure,
    figure_layout,
    glyph,
    text_bitmap,
)
from modelaudit.report.overlay import OUTLINE_COLORS, overlay

A = """
.###.
#...#
#...#
#...#
#####
#...#
#...#
"""
SEVEN = """
#####
....#
...#.
..#..
.#...
.#...
.#...
"""


def _picture(text: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in text.split()], dtype=bool)


def _ink(region: np.ndarray) -> np.ndarray:
    """Where the caption's black text is."""
    return (region == 0).all(axis=-1)


def _inputs(h: int = 16, w: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((3, h, w)), rng.random((h, w))


# --------------------------------------------------------------------------- font


def test_glyphs_are_the_drawn_bitmaps():
    assert np.array_equal(glyph("A"), _picture(A))
    assert np.array_equal(glyph("7"), _picture(SEVEN))
    assert glyph(" ").sum() == 0
    assert glyph("é").tolist() == glyph("?").tolist()  # outside the font


def test_font_covers_printable_ascii_with_distinct_glyphs():
    printable = [chr(c) for c in range(32, 127)]
    assert sorted(FONT) == sorted(printable)
    shapes = {glyph(c).tobytes() for c in printable}
    assert len(shapes) == len(printable)  # no two characters look the same


def test_text_bitmap_is_glyphs_with_one_blank_column_between():
    bitmap = text_bitmap("A7")
    assert bitmap.shape == (GLYPH_HEIGHT, 2 * GLYPH_WIDTH + 1)
    assert np.array_equal(bitmap[:, :5], _picture(A))
    assert not bitmap[:, 5].any()
    assert np.array_equal(bitmap[:, 6:], _picture(SEVEN))
    big = text_bitmap("A7", scale=3)
    assert big.shape == (3 * GLYPH_HEIGHT, 3 * (2 * GLYPH_WIDTH + 1))
    assert np.array_equal(big[::3, ::3], bitmap) and np.array_equal(big[2::3, 1::3], bitmap)
    assert text_bitmap("").shape == (GLYPH_HEIGHT, 0)


# --------------------------------------------------------------------------- figure


@pytest.mark.parametrize("scale", [1, 3])
def test_image_region_is_the_overlay_enlarged(scale):
    image, heat = _inputs()
    fig = explain_figure(image, heat, caption_lines=["class 0 p=0.5"], scale=scale)
    lay = figure_layout(16, 12, ["class 0 p=0.5"], scale=scale)
    assert fig.shape == (lay.height, lay.width, 3) and fig.dtype == np.uint8
    y, x, h, w = lay.image
    assert (y, x, h, w) == (4 * lay.text_scale, 4 * lay.text_scale, 16 * scale, 12 * scale)
    expected = overlay(image, heat).repeat(scale, axis=0).repeat(scale, axis=1)
    assert np.array_equal(fig[y : y + h, x : x + w], expected)
    # a white margin around it
    assert (fig[:y] == 255).all() and (fig[y : y + h, :x] == 255).all()


def test_colour_bar_runs_from_one_at_the_top_to_zero_at_the_bottom():
    image, heat = _inputs(20, 20)
    for colormap in ("inferno", "viridis"):
        fig = explain_figure(image, heat, caption_lines=["c"], colormap=colormap)
        y, x, h, w = figure_layout(20, 20, ["c"]).bar
        assert (y, x, h, w) == (4, 4 + 20 + 3, 20, 6)
        bar = fig[y : y + h, x : x + w]
        assert (bar[0] == colorize(np.array(1.0), colormap)).all()
        assert (bar[-1] == colorize(np.array(0.0), colormap)).all()
        assert np.array_equal(bar[:, 0], colorize(np.linspace(1, 0, h), colormap))
        assert (bar == bar[:, :1]).all()  # each row one colour


def test_bar_labels_and_caption_lines_are_the_rendered_text():
    image, heat = _inputs(64, 64)
    lines = explain_caption(
        target="2 (triangle)", probability=0.25, method="gradcam++", layer="features.8",
        predicted="0 (circle)", predicted_probability=0.7,
    )  # fmt: skip
    fig = explain_figure(image, heat, caption_lines=lines)
    lay = figure_layout(64, 64, lines)
    for text, (y, x) in [("1", lay.label_one), ("0", lay.label_zero), *zip(lines, lay.caption)]:
        bitmap = text_bitmap(text)
        region = fig[y : y + bitmap.shape[0], x : x + bitmap.shape[1]]
        assert np.array_equal(_ink(region), bitmap), text
        assert (region[~bitmap] == 255).all()
    assert lay.label_one[0] == lay.bar[0]  # "1" level with the top of the bar
    assert lay.label_zero[0] + GLYPH_HEIGHT == lay.bar[0] + lay.bar[2]  # "0" with its bottom
    # the caption is wider than the 64-pixel image: the canvas is padded to hold it
    assert lay.width == 4 + (6 * len(lines[1]) - 1) + 4 > 4 + 64 + 3 + 6 + 3 + 5 + 4


def test_box_is_outlined_and_named_in_a_legend_line():
    image, heat = _inputs(30, 40)
    box = (5, 6, 25, 20)
    for colormap in ("inferno", "viridis"):
        fig = explain_figure(image, heat, caption_lines=["c"], box=box, scale=2, colormap=colormap)
        colour = OUTLINE_COLORS[colormap]["box"]
        lay = figure_layout(30, 40, ["c", "box (5, 6, 25, 20)"], box=True, scale=2)
        assert fig.shape == (lay.height, lay.width, 3)
        y, x = lay.image[:2]
        x1, y1, x2, y2 = (2 * v for v in box)
        # the outline (1 image pixel wide, enlarged to 2) on all four sides
        for rows, cols in [
            (slice(y1, y1 + 2), slice(x1, x2)),
            (slice(y2 - 2, y2), slice(x1, x2)),
            (slice(y1, y2), slice(x1, x1 + 2)),
            (slice(y1, y2), slice(x2 - 2, x2)),
        ]:
            assert (
                fig[y + rows.start : y + rows.stop, x + cols.start : x + cols.stop] == colour
            ).all()
        sy, sx, sh, sw = lay.swatch
        swatch = fig[sy : sy + sh, sx : sx + sw]
        assert (swatch[0] == colour).all() and (swatch[:, -1] == colour).all()
        assert (swatch[sh // 2, sw // 2] == 255).all()  # a hollow square, like the outline
        ty, tx = lay.caption[-1]
        bitmap = text_bitmap("box (5, 6, 25, 20)", lay.text_scale)
        assert tx > sx + sw
        assert np.array_equal(
            _ink(fig[ty : ty + bitmap.shape[0], tx : tx + bitmap.shape[1]]), bitmap
        )


def test_text_scale_follows_scale_and_can_be_set():
    assert figure_layout(8, 8, ["a"], scale=1).text_scale == 1
    assert figure_layout(8, 8, ["a"], scale=4).text_scale == 2
    assert figure_layout(8, 8, ["a"], scale=100).text_scale == 4  # capped
    lay = figure_layout(8, 8, ["a"], scale=1, text_scale=3)
    assert lay.text_scale == 3 and lay.image[:2] == (12, 12)
    fig = explain_figure(np.zeros((3, 8, 8)), np.zeros((8, 8)), caption_lines=["a"], text_scale=3)
    y, x = lay.caption[0]
    assert np.array_equal(_ink(fig[y : y + 21, x : x + 15]), text_bitmap("a", 3))


def test_tiny_image_keeps_the_bar_labels_apart():
    lay = figure_layout(1, 1, ["c"])
    assert lay.label_zero[0] >= lay.label_one[0] + GLYPH_HEIGHT + 1
    fig = explain_figure(np.zeros((3, 1, 1)), np.ones((1, 1)), caption_lines=["c"])
    assert fig.shape == (lay.height, lay.width, 3)
    assert (fig[lay.bar[0], lay.bar[1]] == colorize(np.array(1.0))).all()


def test_caption_text():
    same = explain_caption(
        target="3", probability=0.9, method="layercam", layer=None, predicted="3",
        predicted_probability=0.9,
    )  # fmt: skip
    assert same == ["class 3 p=0.900", "layercam at input"]
    other = explain_caption(target="1 (a)", probability=0.12345, method="m", layer="x.y",
                            predicted="0 (b)", predicted_probability=0.5)  # fmt: skip
    assert other == ["class 1 (a) p=0.123", "predicted 0 (b) p=0.500", "m at x.y"]


@pytest.mark.parametrize("bad", [{"scale": 0}, {"text_scale": 0}, {"box": (0, 0, 20, 4)}])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(InvalidInputError):
        explain_figure(np.zeros((3, 8, 8)), np.zeros((8, 8)), caption_lines=["c"], **bad)

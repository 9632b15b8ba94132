"""Captioned explanation figures: the overlay, a colour bar and a caption, in pure numpy.

``explain_figure`` is what ``modelaudit explain`` writes: the heat-map overlay of
:func:`~modelaudit.report.overlay.overlay` (enlarged ``scale`` times, pixels as blocks), the
ground-truth box outlined when given, a vertical colour bar labelled 1 (top) and 0 (bottom)
at its right, and a caption band under it (class and probability, the predicted class when
it differs, method and layer, and a "box" legend in the outline colour).

Text is drawn with a built-in 5 x 7 pixel font (:data:`FONT`, printable ASCII, the classic
HD44780 character shapes), so no font file, matplotlib or Pillow is needed and the pixels
are the same on every machine; a character outside the font is drawn as ``?``. Each font
pixel becomes a ``text_scale`` x ``text_scale`` block (default ``scale // 2`` within 1..4:
the text grows with the picture, but a large ``scale`` makes no giant caption).

Layout (see :func:`figure_layout` for the exact pixel positions): a white canvas with a
margin of ``4 * text_scale`` pixels; the image at the top left; the bar ``3 * text_scale``
pixels to its right; the caption lines below. The canvas is widened when the caption is
wider than the image, so a 64-pixel image at scale 1 keeps a readable caption.

Example:
    >>> import numpy as np
    >>> from modelaudit.report.figure import explain_figure
    >>> fig = explain_figure(np.zeros((3, 16, 16)), np.random.rand(16, 16),
    ...                      caption_lines=["class 0 p=0.9"], box=(4, 4, 12, 12))
    >>> fig.dtype.name, fig.shape[2]
    ('uint8', 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelaudit.errors import InvalidInputError
from modelaudit.report.colormap import colorize
from modelaudit.report.overlay import OUTLINE_COLORS, overlay

__all__ = [
    "FONT",
    "GLYPH_HEIGHT",
    "GLYPH_WIDTH",
    "FigureLayout",
    "explain_caption",
    "explain_figure",
    "figure_layout",
    "glyph",
    "text_bitmap",
]

GLYPH_WIDTH = 5
"""Font pixels per glyph, across (a character advances one more: a blank column)."""
GLYPH_HEIGHT = 7
"""Font pixels per glyph, down."""

# Seven rows per glyph, top to bottom, two hex digits each; bit 4 is the leftmost pixel.
FONT: dict[str, str] = {
    " ": "00000000000000", "!": "04040404000004", '"': "0a0a0a00000000", "#": "0a0a1f0a1f0a0a",
    "$": "040f140e051e04", "%": "18190204081303", "&": "0c12140815120d",
    "'": "0c040800000000", "(": "02040808080402", ")": "08040202020408", "*": "0004150e150400",
    "+": "0004041f040400", ",": "000000000c0408", "-": "0000001f000000", ".": "00000000000c0c",
    "/": "00010204081000", "0": "0e11131519110e", "1": "040c040404040e",
    "2": "0e11010204081f", "3": "1f02040201110e",
    "4": "02060a121f0202", "5": "1f101e0101110e", "6": "0608101e11110e", "7": "1f010204080808",
    "8": "0e11110e11110e", "9": "0e11110f01020c", ":": "000c0c000c0c00", ";": "000c0c000c0408",
    "<": "02040810080402", "=": "00001f001f0000", ">": "08040201020408", "?": "0e110102040004",
    "@": "0e11010d15150e", "A": "0e1111111f1111", "B": "1e11111e11111e", "C": "0e11101010110e",
    "D": "1c12111111121c", "E": "1f10101e10101f", "F": "1f10101e101010",
    "G": "0e11101711110f", "H": "1111111f111111", "I": "0e04040404040e",
    "J": "0702020202120c", "K": "11121418141211", "L": "1010101010101f", "M": "111b1515111111",
    "N": "11111915131111", "O": "0e11111111110e", "P": "1e11111e101010", "Q": "0e11111115120d",
    "R": "1e11111e141211", "S": "0f10100e01011e", "T": "1f040404040404", "U": "1111111111110e",
    "V": "11111111110a04", "W": "1111111515150a", "X": "11110a040a1111", "Y": "1111110a040404",
    "Z": "1f01020408101f", "[": "0e08080808080e", "\\": "00100804020100", "]": "0e02020202020e",
    "^": "040a1100000000", "_": "0000000000001f", "`": "08040200000000", "a": "00000e010f110f",
    "b": "1010161911111e", "c": "00000e1010110e", "d": "01010d1311110f",
    "e": "00000e111f100e", "f": "0609081c080808", "g": "00000f110f010e", "h": "10101619111111",
    "i": "04000c0404040e", "j": "0200060202120c", "k": "10101214181412", "l": "0c04040404040e",
    "m": "00001a15151111", "n": "00001619111111", "o": "00000e1111110e", "p": "00001e111e1010",
    "q": "00000d130f0101", "r": "00001619101010", "s": "00000e100e011e", "t": "08081c08080906",
    "u": "0000111111130d", "v": "00001111110a04", "w": "0000111115150a",
    "x": "0000110a040a11", "y": "000011110f010e", "z": "00001f0204081f",
    "{": "02040408040402", "|": "04040404040404", "}": "08040402040408", "~": "0000000d120000",
}  # fmt: skip
"""The 5 x 7 font: printable ASCII, 7 rows of 5 bits per glyph (bit 4 = leftmost pixel)."""

_INK = np.array([0, 0, 0], dtype=np.uint8)
_PAPER = 255


def glyph(char: str) -> np.ndarray:
    """The (7, 5) boolean bitmap of one character (``?`` for one outside the font).

    Example:
        >>> glyph("T").astype(int)[:2].tolist()
        [[1, 1, 1, 1, 1], [0, 0, 1, 0, 0]]
    """
    rows = FONT.get(char, FONT["?"])
    bits = [int(rows[i : i + 2], 16) for i in range(0, 2 * GLYPH_HEIGHT, 2)]
    return np.array(
        [[(b >> (GLYPH_WIDTH - 1 - c)) & 1 for c in range(GLYPH_WIDTH)] for b in bits], dtype=bool
    )


def text_bitmap(text: str, scale: int = 1) -> np.ndarray:
    """Render one line of text: a boolean (7 * scale, 6 * len(text) * scale - scale) array.

    Glyphs are 5 pixels wide with one blank column between them; every font pixel becomes a
    ``scale`` x ``scale`` block. The empty string gives a (7 * scale, 0) array.

    Example:
        >>> text_bitmap("-1").astype(int)[3].tolist()
        [1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0]
    """
    if not text:
        return np.zeros((GLYPH_HEIGHT * scale, 0), dtype=bool)
    gap = np.zeros((GLYPH_HEIGHT, 1), dtype=bool)
    parts: list[np.ndarray] = []
    for i, char in enumerate(text):
        if i:
            parts.append(gap)
        parts.append(glyph(char))
    line = np.concatenate(parts, axis=1)
    return np.repeat(np.repeat(line, scale, axis=0), scale, axis=1)


def _text_width(text: str, scale: int) -> int:
    return max(0, (GLYPH_WIDTH + 1) * len(text) - 1) * scale


@dataclass(frozen=True)
class FigureLayout:
    """Where each part of an :func:`explain_figure` lies, in canvas pixels.

    Boxes are ``(top, left, height, width)``; text positions are ``(top, left)`` of the
    text's first glyph. ``swatch`` is the box legend's square (``None`` without a box); the
    box legend is then the last caption line and its text starts right of the swatch.
    """

    height: int
    width: int
    text_scale: int
    image: tuple[int, int, int, int]
    bar: tuple[int, int, int, int]
    label_one: tuple[int, int]
    label_zero: tuple[int, int]
    caption: tuple[tuple[int, int], ...]
    swatch: tuple[int, int, int, int] | None


def figure_layout(
    height: int,
    width: int,
    caption_lines: Sequence[str],
    *,
    box: bool = False,
    scale: int = 1,
    text_scale: int | None = None,
) -> FigureLayout:
    """The pixel layout of a figure for an image of ``height`` x ``width`` pixels.

    ``caption_lines`` are the lines under the image; with ``box`` a legend line is added
    (a square in the outline colour, then its text, which is the last caption line).

    Example:
        >>> lay = figure_layout(64, 64, ["class 1 p=0.50"])
        >>> lay.image, lay.bar, lay.height, lay.width
        ((4, 4, 64, 64), (4, 71, 64, 6), 85, 91)
    """
    t = min(4, max(1, scale // 2)) if text_scale is None else text_scale
    pad, gap, line = 4 * t, 3 * t, (GLYPH_HEIGHT + 3) * t
    glyph_h = GLYPH_HEIGHT * t
    ih, iw = height * scale, width * scale
    bar = (pad, pad + iw + gap, ih, 6 * t)
    label_x = bar[1] + bar[3] + gap
    top_h = max(ih, 2 * glyph_h + t)
    zero_y = pad + max(ih - glyph_h, glyph_h + t)
    lines = list(caption_lines)
    y0 = pad + top_h + 2 * gap
    starts = [(y0 + i * line, pad) for i in range(len(lines))]
    widths = [_text_width(text, t) for text in lines]
    swatch = None
    if box:
        swatch = (starts[-1][0], pad, glyph_h, glyph_h)
        starts[-1] = (starts[-1][0], pad + glyph_h + 2 * t)
        widths[-1] += glyph_h + 2 * t
    right = max([label_x + _text_width("1", t)] + [pad + w for w in widths]) + pad
    bottom = (starts[-1][0] + glyph_h if starts else pad + top_h) + pad
    return FigureLayout(
        height=bottom,
        width=right,
        text_scale=t,
        image=(pad, pad, ih, iw),
        bar=bar,
        label_one=(pad, label_x),
        label_zero=(zero_y, label_x),
        caption=tuple(starts),
        swatch=swatch,
    )


def _paint_text(canvas: np.ndarray, text: str, at: tuple[int, int], scale: int) -> None:
    bitmap = text_bitmap(text, scale)
    y, x = at
    canvas[y : y + bitmap.shape[0], x : x + bitmap.shape[1]][bitmap] = _INK


def explain_caption(
    *,
    target: str,
    probability: float,
    method: str,
    layer: str | None,
    predicted: str | None = None,
    predicted_probability: float | None = None,
) -> list[str]:
    """The caption lines of an explanation figure.

    Line 1 names the explained class and its probability; line 2 the predicted class, only
    when it differs; the last line the method and layer (``input`` for methods without one).

    Example:
        >>> explain_caption(target="1 (circle)", probability=0.25, method="gradcam",
        ...                 layer="features.8", predicted="0 (square)",
        ...                 predicted_probability=0.7)
        ['class 1 (circle) p=0.250', 'predicted 0 (square) p=0.700', 'gradcam at features.8']
    """
    lines = [f"class {target} p={probability:.3f}"]
    if predicted is not None and predicted != target:
        chance = "" if predicted_probability is None else f" p={predicted_probability:.3f}"
        lines.append(f"predicted {predicted}{chance}")
    lines.append(f"{method} at {layer if layer else 'input'}")
    return lines


def explain_figure(
    image: Any,
    heat_map: Any,
    *,
    caption_lines: Sequence[str],
    box: Any = None,
    scale: int = 1,
    alpha: float = 0.5,
    colormap: str = "inferno",
    text_scale: int | None = None,
) -> np.ndarray:
    """The captioned explanation picture: overlay, colour bar, caption (and box legend).

    Args:
        image: (C, H, W) or (H, W) in [0, 1] (what :func:`~modelaudit.report.overlay.overlay`
            takes).
        heat_map: (H, W) in [0, 1]; resized to the image like the overlay does.
        caption_lines: text under the image, e.g. from :func:`explain_caption`.
        box: optional XYXY box in image pixels (x2/y2 exclusive): outlined in the image and
            named in a legend line ``box (x1, y1, x2, y2)`` after a square of its colour.
        scale: enlarge the overlay this many times (nearest pixel), a whole number >= 1.
        alpha: heat-map weight of the blend.
        colormap: ``"inferno"`` or ``"viridis"`` (overlay and bar).
        text_scale: font pixel size (default ``scale // 2`` within 1..4).

    Returns:
        uint8 (height, width, 3) array, laid out as :func:`figure_layout` says.

    Raises:
        InvalidInputError: what ``overlay`` refuses, or a scale below 1.

    Example:
        >>> import numpy as np
        >>> fig = explain_figure(np.ones((1, 8, 8)), np.zeros((8, 8)),
        ...                      caption_lines=["class 0 p=1.000", "gradcam at conv"])
        >>> fig.shape, fig[4, 4].tolist()
        ((46, 97, 3), [128, 128, 130])
    """
    if not isinstance(scale, int) or scale < 1 or (text_scale is not None and text_scale < 1):
        raise InvalidInputError(f"scale and text_scale must be whole numbers >= 1, got {scale}")
    picture = overlay(image, heat_map, box=box, alpha=alpha, colormap=colormap)
    h, w = picture.shape[:2]
    picture = np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)
    lines = list(caption_lines)
    if box is not None:
        lines.append("box ({}, {}, {}, {})".format(*np.asarray(box).reshape(-1).astype(int)))
    lay = figure_layout(h, w, lines, box=box is not None, scale=scale, text_scale=text_scale)
    canvas = np.full((lay.height, lay.width, 3), _PAPER, dtype=np.uint8)
    y, x, ih, iw = lay.image
    canvas[y : y + ih, x : x + iw] = picture[:ih, :iw]
    y, x, bh, bw = lay.bar
    values = np.linspace(1.0, 0.0, bh) if bh > 1 else np.ones(1)
    canvas[y : y + bh, x : x + bw] = colorize(values, colormap)[:, None, :]
    t = lay.text_scale
    _paint_text(canvas, "1", lay.label_one, t)
    _paint_text(canvas, "0", lay.label_zero, t)
    for text, at in zip(lines, lay.caption, strict=True):
        _paint_text(canvas, text, at, t)
    if lay.swatch is not None:
        y, x, sh, sw = lay.swatch
        canvas[y : y + sh, x : x + sw] = OUTLINE_COLORS[colormap]["box"]
        canvas[y + t : y + sh - t, x + t : x + sw - t] = _PAPER
    return canvas

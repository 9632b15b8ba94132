"""The ``modelaudit`` command line: ``layers``, ``explain`` and ``init``.

::

    modelaudit layers shapes-cnn                      # layer names and feature-map shapes
    modelaudit explain shapes-cnn cat.png --method gradcam++ --layer features.8 -o out.png
    modelaudit init mypkg.models:build_model          # a starter audits/ folder
    modelaudit init weights.pt --arch mypkg.models:Net --dir audits-net  # from a state_dict

A MODEL is what ``pytest --audit-model`` takes: a zoo name (``shapes-cnn``, ``resnet18``...,
see :func:`modelaudit.zoo.available_models`), an importable ``pkg.module:factory`` (called
without arguments), or a ``.pt``/``.pth`` state_dict together with ``--arch``. Progress goes
to stderr, results to stdout; an error is one line on stderr and exit status 1 (2 for bad
command-line usage). ``--debug`` shows the traceback instead.

Example:
    >>> from modelaudit.cli import main
    >>> main(["layers", "modelaudit.zoo:ShapesCNN", "--size", "32", "--depth", "1", "-q"])
    layer     type               output shape   params
    features  Sequential         (1, 64, 8, 8)  60,688  <- default CAM layer
    pool      AdaptiveAvgPool2d  (1, 64, 1, 1)       0
    fc        Linear             (1, 4)            260
    0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from modelaudit._format import format_shape
from modelaudit._version import __version__

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

__all__ = ["LayerRow", "build_parser", "layer_rows", "main"]

PROG = "modelaudit"

MAX_SIDE = 4096
"""Largest input side, in pixels, the commands feed a model (``--size`` or an image's own
size): one 4096 x 4096 RGB float32 input is 192 MiB, and a model's activations many times
that. Larger sizes are refused with a message instead of an out-of-memory crash."""

MAX_INPUT_BYTES = 1 << 30
"""Largest probe input (batch x channels x H x W float32 values), 1 GiB."""

MAX_PNG_SIDE = 16384
"""Largest side of the PNG ``explain --scale`` writes (a 16384 x 16384 RGB PNG is 768 MiB
in memory)."""


class CLIError(Exception):
    """A problem to report as one line (bad file, bad option value...)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, with a pointer to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Progress:
    """Progress messages on stderr (silenced with ``--quiet``)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- parser


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1 pixel, got {value}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="zoo name (shapes-cnn, resnet18, ...), pkg.module:factory, or a .pt/.pth "
        "state_dict (with --arch)",
    )
    p.add_argument(
        "--arch", metavar="SPEC", help="architecture for a weights file (zoo name or factory)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")


def _size_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--size",
        nargs="+",
        type=_size,
        metavar="PX",
        help=f"{what}: H [W] in pixels, at most {MAX_SIDE} (default: the zoo model's input "
        "size, else 64 for zoo models and 224 for others; a zoo model's smallest input is "
        "checked)",
    )
    p.add_argument("--channels", type=_size, default=3, help="input channels (default: 3)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``modelaudit`` command (one sub-parser per command).

    Example:
        >>> build_parser().parse_args(["layers", "resnet18", "--size", "96"]).size
        [96]
    """
    parser = _Parser(
        prog=PROG,
        description="pytest for what a vision model looks at: inspect layers, explain an "
        "image, start an audit suite.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_layers_command(sub, common)
    _add_explain_command(sub, common)
    _add_init_command(sub, common)
    return parser


_Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _add_layers_command(sub: _Commands, common: _Parser) -> None:
    """``modelaudit layers MODEL``: the options of the layer table."""
    layers = sub.add_parser(
        "layers",
        parents=[common],
        help="list layer names with their feature-map shapes (the names layer= takes)",
        description="Run one forward pass on zeros and print every layer's qualified name "
        "(what layer= takes), type, output shape and parameter count. The default layer of "
        "Grad-CAM & co is marked.",
    )
    _model_args(layers)
    _size_args(layers, "input size")
    layers.add_argument(
        "--batch", type=_size, default=1, help="batch size of the probe input (default: 1)"
    )
    layers.add_argument(
        "--depth", type=_size, help="show layers nested at most this deep (default: all)"
    )


def _add_explain_command(sub: _Commands, common: _Parser) -> None:
    """``modelaudit explain MODEL IMAGE``: what to explain and how to draw it."""
    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="explain one image: write a captioned heat-map overlay PNG",
        description="Explain why MODEL predicts what it predicts for IMAGE and write the "
        "heat map blended over the image as a PNG (the renderer of the audit report), with "
        "a colour bar and a caption: class, probability, method and layer (--bare: the "
        "overlay alone).",
    )
    _model_args(explain)
    explain.add_argument("image", metavar="IMAGE", help="the image file (PNG, JPEG...)")
    explain.add_argument(
        "-o", "--output", metavar="PNG", help="output file (default: <image>-<method>.png)"
    )
    explain.add_argument(
        "-m",
        "--method",
        default="gradcam",
        help="explanation method (default: gradcam; "
        "e.g. gradcam++, layercam, scorecam, input_gradients)",
    )
    explain.add_argument(
        "-l",
        "--layer",
        help="layer to explain (default: the zoo model's, else automatic; see `modelaudit layers`)",
    )
    explain.add_argument(
        "-t", "--target", help="class index or zoo class name (default: the predicted class)"
    )
    _size_args(explain, "resize the image to")
    explain.add_argument(
        "--reshape", choices=("vit", "swin"), help="turn a transformer layer's tokens into a grid"
    )
    explain.add_argument("--mean", nargs=3, type=float, metavar="M", help="normalisation mean")
    explain.add_argument("--std", nargs=3, type=float, metavar="S", help="normalisation std")
    _overlay_args(explain)


def _overlay_args(explain: argparse.ArgumentParser) -> None:
    """How ``explain`` draws the picture: opacity, colour map, enlargement, box, caption."""
    explain.add_argument("--alpha", type=float, default=0.5, help="heat-map opacity (0.5)")
    explain.add_argument(
        "--colormap", choices=("inferno", "viridis"), default="inferno", help="(inferno)"
    )
    explain.add_argument(
        "--scale", type=_size, default=1, help="enlarge the image N times, pixels as blocks (1)"
    )
    explain.add_argument(
        "--box",
        nargs=4,
        type=int,
        metavar=("X1", "Y1", "X2", "Y2"),
        help="outline this box: pixels of IMAGE as given, x2/y2 exclusive",
    )
    explain.add_argument(
        "--bare",
        action="store_true",
        help="write only the overlay (the image's size times --scale), without colour bar "
        "and caption",
    )


def _add_init_command(sub: _Commands, common: _Parser) -> None:
    """``modelaudit init FACTORY``: where to write the starter suite and what to probe."""
    init = sub.add_parser(
        "init",
        parents=[common],
        help="write a starter audits/ folder for your own model",
        description="Write pytest.ini, conftest.py and starter audits for MODEL into DIR. "
        "The model is built once (imported from the current folder) to find its layers and "
        "classes. Structural audits (shapes, gradients, hooks) run at once; attention audits "
        "(localization, background, sanity, stability) wait for your labelled images (fill "
        "in `labelled_batch` in conftest.py, or point --data at a VOC, COCO or ImageFolder "
        "dataset), whose box sizes choose the layer to explain.",
    )
    init.add_argument(
        "model",
        metavar="MODEL",
        help="pkg.module:factory building your model (no arguments), or a .pt/.pth "
        "state_dict with --arch",
    )
    init.add_argument(
        "--arch", metavar="SPEC", help="pkg.module:Factory to load a weights file into"
    )
    init.add_argument("--dir", default="audits", help="folder to create (default: audits)")
    _size_args(init, "input size of the audits")
    init.add_argument(
        "-l", "--layer", help="pin the layer to explain (default: chosen from your boxes)"
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument(
        "--data",
        metavar="LAYOUT:PATHS",
        help="your labelled images on disk, read by the labelled_batch fixture: voc:ROOT, "
        "voc-segmentation:ROOT, coco:IMAGES,ANNOTATIONS or folder:ROOT,BOXES (a .csv or .json "
        "of boxes); paths relative to the current folder",
    )
    init.add_argument(
        "--classes",
        metavar="NAMES",
        help="with --data: the class names in label order, comma-separated (default: the "
        "dataset's own: VOC's 20, the folders sorted; COCO files name their categories)",
    )
    init.add_argument(
        "--data-limit",
        type=int,
        default=64,
        metavar="N",
        help="with --data: the number of images in the audit batch (default: 64)",
    )


# --------------------------------------------------------------------------- shared helpers


def _zoo_info(spec: str) -> dict[str, Any] | None:
    from modelaudit import zoo

    return zoo.model_info(spec) if spec in zoo.available_models() else None


@contextlib.contextmanager
def _importable_cwd() -> Iterator[None]:
    """The current folder first on ``sys.path`` for the block, as ``python -m`` would have it.

    A user's ``pkg.module:factory`` usually sits in the project they run the command from,
    which is not on ``sys.path`` when ``modelaudit`` runs as an installed script.
    """
    entry = str(Path.cwd())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _load(spec: str, arch: str | None, device: str | torch.device, say: _Progress) -> nn.Module:
    """Build the model a spec names (every command loads through here), importing a
    factory (or a weights file's ``--arch``) from the current folder."""
    from modelaudit.loading import load_model_spec

    say(f"loading {spec} ...")
    with _importable_cwd():
        return load_model_spec(spec, device=device, arch=arch)


def _hw(
    size: list[int] | None, info: dict[str, Any] | None, spec: str | None = None
) -> tuple[int, int]:
    """(H, W) from ``--size`` (checked), else the zoo model's input size, else a default."""
    if size is not None:
        if len(size) > 2:
            raise CLIError(f"--size takes H or H W, got {len(size)} numbers")
        hw = (size[0], size[-1])
        _check_sides(hw, info, spec, "--size " + " ".join(str(v) for v in size))
        return hw
    if info is not None and info.get("input_size"):
        h, w = info["input_size"]
        return int(h), int(w)
    return (64, 64) if info is not None else (224, 224)


def _check_sides(
    hw: tuple[int, int], info: dict[str, Any] | None, spec: str | None, what: str
) -> None:
    """Refuse a side above :data:`MAX_SIDE`, or below a zoo model's ``min_input_size``."""
    h, w = hw
    if max(h, w) > MAX_SIDE:
        size = 3 * h * w * 4
        cost = (
            f" (one {h} x {w} RGB input alone takes {_amount(size)}, the model's activations "
            "many times that)"
            if size >= 2**30
            else ""
        )
        raise CLIError(
            f"{what} is too large: the limit is {MAX_SIDE} px per side{cost}; "
            f"pass --size {min(h, MAX_SIDE)} {min(w, MAX_SIDE)} or smaller"
        )
    smallest = int(info.get("min_input_size") or 0) if info else 0
    if min(h, w) < smallest:
        trained = info.get("input_size") if info else None
        usual = f" (it was trained on {trained[0]} x {trained[1]})" if trained else ""
        raise CLIError(
            f"{what} is too small for {spec}: its smallest input is {smallest} x {smallest} "
            f"px{usual}; pass --size {max(h, smallest)} {max(w, smallest)} or larger"
        )


def _amount(size: int) -> str:
    """Bytes in MiB or GiB, e.g. ``"192 MiB"``, ``"111.8 GiB"``."""
    if size < 2**30:
        return f"{size / 2**20:,.0f} MiB"
    return f"{size / 2**30:,.1f} GiB".replace(".0 GiB", " GiB")


def _check_input_bytes(shape: Sequence[int]) -> None:
    """Refuse a probe input above :data:`MAX_INPUT_BYTES` (float32)."""
    count = 1
    for side in shape:
        count *= int(side)
    if count * 4 > MAX_INPUT_BYTES:
        raise CLIError(
            f"an input of shape {tuple(shape)} takes {_amount(count * 4)} as float32, above "
            f"the {_amount(MAX_INPUT_BYTES)} limit; pass a smaller --size, "
            "--batch or --channels"
        )


def _probe_failed(what: str, shape: Sequence[int], exc: BaseException, hint: str) -> CLIError:
    """The one-line error for a forward pass that failed on ``shape``, with what to try."""
    return CLIError(f"the model fails on {what} of shape {tuple(shape)} ({_one_line(exc)}); {hint}")


def _size_hint(hw: tuple[int, int], info: dict[str, Any] | None) -> str:
    """What ``--size`` to try after a failed forward pass at ``hw``."""
    if info is not None and info.get("input_size"):
        h, w = info["input_size"]
        return f"pass --size {h} {w}, its input size"
    if max(hw) < 224:
        return (
            f"{hw[0]} x {hw[1]} px may be too small for its downsampling: pass a larger "
            "--size, e.g. --size 224 (and --channels if it takes other than 3)"
        )
    return "pass --size H W (and --channels) with an input size the model accepts"


def _zeros(model: nn.Module, shape: Sequence[int]) -> torch.Tensor:
    """Zeros of ``shape`` with the dtype and device of the model's first parameter."""
    import torch

    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if ref is None:
        return torch.zeros(tuple(shape))
    return torch.zeros(tuple(shape), dtype=ref.dtype, device=ref.device)


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


# --------------------------------------------------------------------------- layers


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One line of ``modelaudit layers``: a module, what it returned and its size."""

    name: str
    type: str
    shape: str
    params: int
    calls: int
    depth: int


def layer_rows(model: nn.Module, input_shape: Sequence[int]) -> list[LayerRow]:
    """Every named module with its output shape for zeros of ``input_shape``, in model order.

    One forward pass under ``torch.no_grad()`` in eval mode (the model's state is restored,
    no hook is left). A module that never ran gets the shape ``"-"`` and ``calls == 0``; one
    that ran several times reports its last call.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU())
        >>> [(r.name, r.shape, r.params) for r in layer_rows(net, (1, 3, 9, 9))]
        [('0', '(1, 8, 4, 4)', 224), ('1', '(1, 8, 4, 4)', 0)]
    """
    import torch

    from modelaudit.hooks import capture, preserved_state

    x = _zeros(model, input_shape)
    names = [n for n, _ in model.named_modules() if n]
    if not names:
        raise CLIError(f"{type(model).__name__} has no submodules to list")
    with (
        preserved_state(model, eval_mode=True),
        torch.no_grad(),
        capture(model, names, reduce=lambda t: t.shape, strict=False) as cap,
    ):
        model(x)
    modules = dict(model.named_modules())
    return [
        LayerRow(
            name=n,
            type=type(modules[n]).__name__,
            shape=format_shape(cap.outputs[n]) if n in cap.outputs else "-",
            params=sum(p.numel() for p in modules[n].parameters()),
            calls=cap.calls.get(n, 0),
            depth=n.count(".") + 1,
        )
        for n in names
    ]


def _default_layer(model: nn.Module, input_shape: tuple[int, ...]) -> str | None:
    from modelaudit.errors import LayerNotFoundError
    from modelaudit.explainers.layer_choice import default_layer

    try:
        return default_layer(model, _zeros(model, input_shape))
    except LayerNotFoundError:
        return None


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _cmd_layers(args: argparse.Namespace, say: _Progress) -> int:
    from modelaudit.errors import ModelAuditError

    info = _zoo_info(args.model)
    h, w = _hw(args.size, info, args.model)  # checked before the model loads
    shape = (args.batch, args.channels, h, w)
    _check_input_bytes(shape)
    model = _load(args.model, args.arch, args.device, say)
    say(f"running one forward pass on zeros of shape {shape} ...")
    try:
        rows = layer_rows(model, shape)
    except (CLIError, ModelAuditError):
        raise
    except Exception as exc:
        raise _probe_failed("zeros", shape, exc, _size_hint((h, w), info)) from exc
    default = _default_layer(model, shape)
    documented = info.get("gradcam_layer") if info else None
    shown = [r for r in rows if args.depth is None or r.depth <= args.depth]
    cells = []
    for r in shown:
        note = []
        if r.calls > 1:
            note.append(f"runs {r.calls}x per forward")
        if r.calls == 0:
            note.append("did not run")
        if r.name == default:
            note.append("<- default CAM layer")
        if r.name == documented and documented != default:
            note.append("<- zoo's Grad-CAM layer")
        cells.append(
            ["  " * (r.depth - 1) + r.name, r.type, r.shape, f"{r.params:,}", " ".join(note)]
        )
    for line in _table(("layer", "type", "output shape", "params", ""), cells, right={3}):
        print(line)
    total = sum(p.numel() for p in model.parameters())
    say(f"{type(model).__name__}: {len(rows)} layers, {total:,} parameters, input {shape}")
    if default is None:
        say("no default CAM layer (no 4-D feature map): pass layer= and, for tokens, reshape=")
    return 0


# --------------------------------------------------------------------------- explain


def _read_image(
    path: Path, channels: int, size: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file as float (C, H, W) in [0, 1], with ``channels`` channels, maybe resized;
    and its own (H, W) before resizing."""
    import imageio.v3 as iio
    import numpy as np

    if not path.is_file():
        raise CLIError(f"image file {path} does not exist")
    try:
        with warnings.catch_warnings():  # imageio's legacy plugins warn while guessing
            warnings.simplefilter("ignore", DeprecationWarning)
            pixels = np.asarray(iio.imread(path))
    except Exception as exc:
        raise CLIError(f"cannot read image {path}: {_one_line(exc)}") from exc
    if pixels.ndim == 3 and pixels.shape[0] > 1 and pixels.shape[-1] > 4:
        pixels = pixels[0]  # the first frame of an animation
    if np.issubdtype(pixels.dtype, np.integer):
        arr = pixels.astype(np.float64) / float(np.iinfo(pixels.dtype).max)
    elif pixels.dtype == bool:
        arr = pixels.astype(np.float64)
    else:
        arr = np.clip(pixels.astype(np.float64), 0.0, 1.0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise CLIError(f"{path} is not a 2-D image (pixel array of shape {pixels.shape})")
    if arr.shape[-1] in (2, 4):
        arr = arr[..., :-1]  # drop alpha
    have = arr.shape[-1]
    if have != channels:
        if have == 1:
            arr = np.repeat(arr, channels, axis=-1)
        elif channels == 1:
            arr = arr.mean(axis=-1, keepdims=True)
        else:
            raise CLIError(f"{path} has {have} channels; the model takes {channels}")
    own = (int(arr.shape[0]), int(arr.shape[1]))
    if size is not None and arr.shape[:2] != size:
        from skimage.transform import resize

        arr = resize(arr, size, order=1, anti_aliasing=True)
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32), own


def _check_output(out: Path) -> None:
    """Refuse an ``--output`` that cannot be written, naming the path at fault.

    ``out`` must not be a folder, and its nearest existing ancestor must be a folder we may
    write in (the folders below it are created when the PNG is saved).
    """
    if out.is_dir():
        raise CLIError(
            f"--output {out} is a folder; give a file name, e.g. -o {out / 'overlay.png'}"
        )
    for parent in out.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            blocked = "" if parent == out.parent else f", so folder {out.parent} cannot be created"
            raise CLIError(
                f"cannot write --output {out}: {parent} is a file, not a folder{blocked}; "
                f"choose an output path outside {parent}"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CLIError(
                f"cannot write --output {out}: no permission to create files in {parent}; "
                "choose another output folder"
            )
        return


def _target(text: str | None, info: dict[str, Any] | None, classes: int) -> int | None:
    if text is None:
        return None
    names = list(info["class_names"]) if info else []
    if text.lstrip("-").isdigit():
        index = int(text)
    elif text in names:
        index = names.index(text)
    else:
        known = f"; class names: {', '.join(names)}" if names else ""
        raise CLIError(f"--target {text!r} is not a class index{known}")
    if not 0 <= index < classes:
        raise CLIError(f"--target {index} is out of range: the model has {classes} classes")
    return index


def _class_name(index: int, info: dict[str, Any] | None) -> str:
    names = info["class_names"] if info else []
    return f"{index} ({names[index]})" if index < len(names) else str(index)


def _check_scale(scale: int, h: int, w: int) -> None:
    if max(h, w) * scale > MAX_PNG_SIDE:
        raise CLIError(
            f"--scale {scale} would make a {h * scale} x {w * scale} PNG, above "
            f"the limit of {MAX_PNG_SIDE} px per side; pass --scale "
            f"{max(1, MAX_PNG_SIDE // max(h, w))} or less"
        )


def _input_box(
    box: Sequence[int] | None, own: tuple[int, int], hw: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Check ``--box`` against the image as given (``own`` = (H, W)) and map it to the
    model's input (``hw``): x1/y1 rounded down, x2/y2 up, so the box still covers the object.
    """
    if box is None:
        return None
    x1, y1, x2, y2 = box
    given = " ".join(map(str, box))
    if not (x1 < x2 and y1 < y2):
        raise CLIError(f"--box {given} is empty: need x1 < x2 and y1 < y2 (x2/y2 exclusive)")
    (h, w), (th, tw) = own, hw
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise CLIError(
            f"--box {given} is outside the image ({h} x {w} px): need 0 <= x1 < x2 <= {w} "
            f"and 0 <= y1 < y2 <= {h} (x2/y2 exclusive)"
        )
    return (x1 * tw // w, y1 * th // h, -(-x2 * tw // w), -(-y2 * th // h))


def _write_picture(
    args: argparse.Namespace,
    image: np.ndarray,
    maps: torch.Tensor,
    box: tuple[int, int, int, int] | None,
    caption: list[str],
    out: Path,
) -> None:
    """Draw the figure (or, with ``--bare``, the overlay alone) and save it as ``out``."""
    from modelaudit.report.figure import explain_figure
    from modelaudit.report.overlay import overlay, save_png

    if args.bare:
        picture = overlay(image, maps[0], box=box, alpha=args.alpha, colormap=args.colormap)
        if args.scale > 1:
            picture = picture.repeat(args.scale, axis=0).repeat(args.scale, axis=1)
    else:
        picture = explain_figure(
            image,
            maps[0],
            caption_lines=caption,
            box=box,
            scale=args.scale,
            alpha=args.alpha,
            colormap=args.colormap,
        )
    try:
        save_png(picture, out)
    except OSError as exc:
        raise CLIError(f"cannot write --output {out}: {exc.strerror or _one_line(exc)}") from exc


def _normalized(x: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    """Apply ``--mean``/``--std`` to the (1, C, H, W) image tensor ``x``, if given."""
    import torch

    if args.mean is not None or args.std is not None:
        mean = torch.tensor(args.mean or [0.0] * 3).view(1, 3, 1, 1).to(x)
        std = torch.tensor(args.std or [1.0] * 3).view(1, 3, 1, 1).to(x)
        if args.channels != 3:
            raise CLIError("--mean/--std take 3 values, for 3-channel images")
        if (std <= 0).any():
            raise CLIError("--std values must be positive")
        x = (x - mean) / std
    return x


def _cmd_explain(args: argparse.Namespace, say: _Progress) -> int:
    import torch

    from modelaudit.explainers import get_method, guided_backprop, input_gradients, swin_reshape
    from modelaudit.explainers import vit_reshape as vit
    from modelaudit.loading import resolve_device
    from modelaudit.report.figure import explain_caption

    method = get_method(args.method)  # unknown names fail before the model loads
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be in [0, 1], got {args.alpha}")
    image_path = Path(args.image)
    out = Path(args.output or f"{image_path.stem}-{args.method.replace('+', 'p')}.png")
    if out.resolve() == image_path.resolve():
        raise CLIError(f"--output {out} would overwrite the input image; choose another file")
    _check_output(out)
    info = _zoo_info(args.model)
    fixed = args.size is not None or bool(info and info.get("input_size"))
    size = _hw(args.size, info, args.model) if fixed else None
    image, own = _read_image(image_path, args.channels, size)
    h, w = image.shape[1:]
    box = _input_box(args.box, own, (h, w))
    if size is None:  # the image's own size goes to the model
        _check_sides((h, w), info, args.model, f"image {image_path} ({h} x {w} px)")
    _check_input_bytes(image.shape)
    _check_scale(args.scale, h, w)
    device = resolve_device(args.device)
    model = _load(args.model, args.arch, device, say)

    x = _normalized(torch.from_numpy(image)[None].to(device), args)
    pixel_method = method in (input_gradients, guided_backprop)
    layer = args.layer
    if layer is None and info is not None and not pixel_method:
        layer = info.get("gradcam_layer")
    reshape = {"vit": vit, "swin": swin_reshape, None: None}[args.reshape]
    if reshape is None and info is not None and info.get("tokens") and not pixel_method:
        reshape = vit
    options: dict[str, Any] = {} if reshape is None else {"reshape": reshape}

    try:
        with torch.no_grad():
            logits = model(x)
    except Exception as exc:
        raise _probe_failed(
            "the image as a tensor", x.shape, exc, _size_hint((h, w), info)
        ) from exc
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CLIError(f"the model returned {got}; expected (1, classes) logits")
    probs = logits.float().softmax(dim=1)[0]
    predicted = int(probs.argmax())
    target = _target(args.target, info, logits.shape[1])
    chosen = predicted if target is None else target
    say(
        f"explaining class {_class_name(chosen, info)} with {args.method}"
        + (f" at layer {layer}" if layer else "")
        + " ..."
    )
    maps = method(model, x, chosen, layer, **options)
    caption = explain_caption(
        target=_class_name(chosen, info),
        probability=float(probs[chosen]),
        method=args.method,
        layer=getattr(maps, "layer", None) or layer,
        predicted=_class_name(predicted, info),
        predicted_probability=float(probs[predicted]),
    )
    _write_picture(args, image, maps, box, caption, out)
    print(
        f"{out}: {args.method} of class {_class_name(chosen, info)} "
        f"(p={float(probs[chosen]):.3f}); predicted {_class_name(predicted, info)} "
        f"(p={float(probs[predicted]):.3f})"
    )
    return 0


# --------------------------------------------------------------------------- init


_FACTORY_SPEC = r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*"


def _init_model_spec(args: argparse.Namespace, folder: Path) -> tuple[str, str | None]:
    """``(audit_model, audit_arch)`` for the generated pytest.ini, after checking MODEL.

    A factory is written as given; a weights file as its path relative to the suite folder
    (absolute when given absolute), with ``--arch`` as ``audit_arch``.
    """
    import re

    from modelaudit.loading import WEIGHT_SUFFIXES

    spec = args.model
    path = Path(spec).expanduser()
    is_weights = spec.lower().endswith(WEIGHT_SUFFIXES) or (path.is_file() and ":" not in spec)
    if not is_weights:
        if not re.fullmatch(_FACTORY_SPEC, spec):
            raise CLIError(
                f"FACTORY must look like pkg.module:function, got {spec!r} (or pass a .pt/.pth "
                "weights file with --arch; a zoo model needs no init: `pytest audits/ "
                "--audit-model NAME`)"
            )
        if args.arch is not None:
            raise CLIError(
                f"--arch is only for a weights file (.pt/.pth); {spec} is a factory that builds "
                "the model itself: drop --arch"
            )
        return spec, None
    if not path.is_file():
        raise CLIError(f"weights file {spec} does not exist")
    if args.arch is None:
        raise CLIError(
            f"{spec} is a weights file: pass --arch pkg.module:Factory, the architecture its "
            "state_dict loads into"
        )
    return _relative_to(path, folder), args.arch


def _init_classes(model: nn.Module, shape: tuple[int, ...]) -> int:
    """The number of classes the model predicts for zeros of ``shape``."""
    import torch

    try:
        with torch.no_grad():
            logits = model(_zeros(model, shape))
    except Exception as exc:
        hint = _size_hint((shape[-2], shape[-1]), None)
        raise _probe_failed("an input", shape, exc, hint) from exc
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CLIError(f"the model returned {got}; the audits expect (N, classes) logits")
    return int(logits.shape[1])


def _init_layer(
    model: nn.Module, args: argparse.Namespace, shape: tuple[int, ...]
) -> tuple[str | None, str]:
    """The pinned layer (``--layer``, else None) and the layer reasoning for conftest.py."""
    from modelaudit._starter import layer_comment
    from modelaudit.errors import LayerNotFoundError
    from modelaudit.explainers.layer_choice import MIN_CELLS, choose_layer

    pinned = None
    if args.layer is not None:
        from modelaudit.hooks import resolve_layer

        pinned = resolve_layer(model, args.layer)[0]
    try:
        choice = choose_layer(model, _zeros(model, shape))
    except LayerNotFoundError:
        if pinned is None:
            raise CLIError(
                "no convolutional feature map found to explain; pass --layer (see "
                f"`modelaudit layers {args.model}`)"
            ) from None
        return pinned, f"# CAM_LAYER pins {pinned!r} (modelaudit init --layer)."
    spec = args.model if args.arch is None else f"{args.model} --arch {args.arch}"
    hw = (int(shape[-2]), int(shape[-1]))
    comment = layer_comment(
        choice.candidates, hw, min_cells=MIN_CELLS, default=choice.name, pinned=pinned, spec=spec
    )
    return pinned, comment


def _takes_other_sizes(model: nn.Module, c: int, h: int, w: int) -> bool:
    """Whether the model runs on other input sizes (the shape audit draws sides within 25%)."""
    import torch

    try:
        with torch.no_grad():
            model(_zeros(model, (1, c, h * 5 // 4, w * 3 // 4)))
    except Exception:
        return False
    return True


def _init_data(
    args: argparse.Namespace, folder: Path, shape: tuple[int, ...], classes: int, say: _Progress
) -> str:
    """The conftest's ``labelled_batch`` fixture for ``--data`` ("" without it).

    The dataset is opened and its first batch read now, so a wrong path, a corrupt
    annotation or a label outside the model's classes fails here, not in the audits.
    """
    from modelaudit._starter import data_fixture

    if args.data is None:
        if args.classes is not None:
            raise CLIError("--classes names the classes of --data; pass --data too")
        return ""
    from torchvision.transforms import v2

    from modelaudit.data import iter_batches, parse_layout, read_dataset

    if args.data_limit < 1:
        raise CLIError(f"--data-limit must be at least 1, got {args.data_limit}")
    layout, paths = parse_layout(args.data)
    names = None if args.classes is None else [c.strip() for c in args.classes.split(",")]
    resize = v2.Resize((int(shape[-2]), int(shape[-1])))
    dataset = read_dataset(args.data, classes=names, transforms=resize)
    say(f"reading {min(args.data_limit, len(dataset))} of {len(dataset)} images ({args.data}) ...")
    batch = next(
        iter_batches(dataset, batch_size=args.data_limit, num_classes=classes, need=("boxes",))
    )
    if len(dataset.classes) != classes:
        say(f"note: the data has {len(dataset.classes)} classes, the model {classes}")
    relative = [_relative_to(Path(p), folder) for p in paths]
    say(f"labelled_batch: {len(batch)} images from {layout}")
    return data_fixture(layout, relative, spec=args.data, classes=names, limit=args.data_limit)


def _relative_to(path: Path, folder: Path) -> str:
    """``path`` as written into the suite: relative to ``folder``, or absolute as given."""
    if path.is_absolute():
        return path.as_posix()
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return path.resolve().as_posix()


def _cmd_init(args: argparse.Namespace, say: _Progress) -> int:
    from modelaudit._starter import FILE_NAMES, starter_files
    from modelaudit.explainers.layer_choice import MIN_CELLS

    folder = Path(args.dir)
    model_spec, arch = _init_model_spec(args, folder)
    existing = [name for name in FILE_NAMES if (folder / name).exists()]
    if existing and not args.force:
        raise CLIError(
            f"{folder} already has {', '.join(existing)}; pass --force to overwrite them, or "
            "choose another --dir"
        )
    h, w = _hw(args.size, None)
    shape = (1, args.channels, h, w)
    _check_input_bytes(shape)
    model = _load(args.model, args.arch, "cpu", say)
    say(f"probing the model with zeros of shape {shape} ...")
    classes = _init_classes(model, shape)
    pinned, comment = _init_layer(model, args, shape)
    labelled = _init_data(args, folder, shape, classes, say)
    files = starter_files(
        model_spec,
        arch=arch,
        layer=pinned,
        comment=comment,
        min_cells=MIN_CELLS,
        input_size=(args.channels, h, w),
        classes=classes,
        any_size=_takes_other_sizes(model, args.channels, h, w),
        folder=str(folder),
        project=Path(os.path.relpath(Path.cwd(), folder.resolve())).as_posix(),
        labelled=labelled,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        print(folder / name)
    chosen = f"layer {pinned}" if pinned else "layer chosen from your boxes"
    say(f"{chosen}, {classes} classes, input {shape}; next: `pytest {folder}`")
    return 0


# --------------------------------------------------------------------------- main

_COMMANDS = {"layers": _cmd_layers, "explain": _cmd_explain, "init": _cmd_init}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``modelaudit`` command; return the exit status (0 ok, 1 error, 2 usage).

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        modelaudit ...
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    say = _Progress(args.quiet)
    try:
        return _COMMANDS[args.command](args, say)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from modelaudit.errors import ModelAuditError

        known = isinstance(exc, CLIError | ModelAuditError | OSError)
        prefix = "" if known else f"{type(exc).__name__}: "
        hint = "" if known else " (run with --debug for the traceback)"
        print(f"{PROG} {args.command}: error: {prefix}{_one_line(exc)}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

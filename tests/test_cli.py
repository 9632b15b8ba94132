"""The ``modelaudit`` command line, run in-process through ``main(argv)``."""

from __future__ import annotations

import importlib.metadata
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from torch import nn

# Inline pytester runs unload the modules they imported; torchvision (through the zoo) must
# be loaded once, before them, as it registers torch operators that cannot be registered twice.
import modelaudit as ma
import modelaudit.strategies
import modelaudit.zoo
from modelaudit._version import __version__
from modelaudit.cli import build_parser, layer_rows, main
from modelaudit.report.figure import figure_layout, text_bitmap
from modelaudit.report.overlay import overlay

_names = itertools.count()

# A model whose Grad-CAM is known exactly: conv (1x1, weights 1) sums the channels, ReLU,
# global average pool, linear head with weights +1 (class 0) and -1 (class 1). At layer "1"
# the gradient of logit 0 is 1/(H*W) everywhere, so Grad-CAM of class 0 is the channel sum,
# normalised to [0, 1]; class 1 gets negative weights and an all-zero map.
SUMMER = """
import torch
from torch import nn

def build():
    conv = nn.Conv2d(3, 1, 1, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
"""

# Strided convs: output sides follow floor((H + 2p - k) / s) + 1.
STRIDED = """
from torch import nn

def build():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    )
"""


@pytest.fixture
def factory(tmp_path, monkeypatch):
    """Write a module defining ``build()`` and return its ``module:build`` spec."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"cli_model_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{name}:build"

    return write


def _png(path: Path, pixels: np.ndarray) -> Path:
    iio.imwrite(path, pixels)
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


# --------------------------------------------------------------------------- layers


def test_layer_rows_give_shapes_params_and_calls():
    shared = nn.ReLU()
    unused = nn.Linear(2, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2)  # 3*4*9 + 4 = 112 parameters
            self.act = shared
            self.unused = unused  # 6 parameters, never called

        def forward(self, x):
            return self.act(self.act(self.conv(x)))

    rows = {r.name: r for r in layer_rows(Net(), (2, 3, 11, 7))}
    # floor((11 - 3) / 2) + 1 = 5, floor((7 - 3) / 2) + 1 = 3
    assert rows["conv"].shape == "(2, 4, 5, 3)" and rows["conv"].params == 112
    assert rows["act"].calls == 2 and rows["act"].shape == "(2, 4, 5, 3)"
    assert rows["unused"].calls == 0 and rows["unused"].shape == "-"
    assert rows["unused"].params == 6


def test_layers_prints_the_tree_with_shapes(factory, capsys):
    spec = factory(STRIDED)
    assert main(["layers", spec, "--size", "17", "13"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "params"]
    table = {line.split()[0]: line for line in lines[1:]}
    # conv 0: floor((17 + 2 - 3) / 2) + 1 = 9, floor((13 + 2 - 3) / 2) + 1 = 7
    assert "(1, 4, 9, 7)" in table["0"] and "112" in table["0"]
    # conv 2 (no padding): floor((9 - 3) / 2) + 1 = 4, floor((7 - 3) / 2) + 1 = 3
    assert "(1, 6, 4, 3)" in table["2"] and "222" in table["2"]
    # the default CAM layer is the last 4-D map with more than one pixel: the ReLU "3"
    assert "<- default CAM layer" in table["3"]
    assert "(1, 3)" in table["6"]
    assert "loading" in err and "forward pass" in err  # progress goes to stderr


def test_layers_depth_and_zoo_layer_marker(capsys):
    assert main(["layers", "resnet18", "--size", "32", "--depth", "1", "-q"]) == 0
    out, err = capsys.readouterr()
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                     "layer4", "avgpool", "fc"]  # fmt: skip
    # 32 px: conv1 /2, maxpool /2, layer2..4 /2 each -> 1 x 1 at layer4
    table = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "(1, 512, 1, 1)" in table["layer4"] and "(1, 256, 2, 2)" in table["layer3"]
    # the automatic default needs a map of more than one pixel; the zoo documents layer4
    assert "<- default CAM layer" in table["layer3"]
    assert "<- zoo's Grad-CAM layer" in table["layer4"]
    assert err == ""  # --quiet


def test_layers_unknown_model_is_one_line(capsys):
    assert main(["layers", "resnet19"]) == 1
    line = _error_line(capsys)
    assert line.startswith("modelaudit layers: error:") and "'resnet18'" in line


def test_layers_size_below_a_zoo_models_minimum_is_refused_before_loading(capsys):
    # shapes-cnn halves the side four times: 4 px is its smallest input (zoo min_input_size)
    assert main(["layers", "shapes-cnn", "--size", "2"]) == 1
    assert _error_line(capsys) == (
        "modelaudit layers: error: --size 2 is too small for shapes-cnn: its smallest input "
        "is 4 x 4 px (it was trained on 64 x 64); pass --size 4 4 or larger"
    )
    assert main(["layers", "shapes-cnn", "--size", "8", "3"]) == 1  # a side too small
    line = _error_line(capsys)
    assert "--size 8 3 is too small for shapes-cnn" in line and "pass --size 8 4 or" in line
    assert main(["layers", "shapes-cnn", "--size", "4", "-q", "--depth", "1"]) == 0
    assert "(1, 64, 1, 1)" in capsys.readouterr().out  # 4 -> 2 -> 1 -> 1 -> 1 px


def test_layers_forward_failure_names_the_size_and_a_larger_one(factory, capsys):
    spec = factory(STRIDED)  # 2 px -> 1 px after conv 0; conv 2 (3 x 3, no padding) fails
    assert main(["layers", spec, "--size", "2", "-q"]) == 1
    line = _error_line(capsys)
    assert line.startswith(
        "modelaudit layers: error: the model fails on zeros of shape (1, 3, 2, 2) ("
    )
    assert "Kernel size can't be greater than actual input size" in line
    assert line.endswith(
        "2 x 2 px may be too small for its downsampling: pass a larger --size, e.g. "
        "--size 224 (and --channels if it takes other than 3)"
    )
    assert "RuntimeError" not in line and "--debug" not in line
    # a zoo model with a fixed input size is pointed back at it
    assert main(["layers", "vit-tiny", "--size", "128", "-q"]) == 1
    line = _error_line(capsys)
    assert "the model fails on zeros of shape (1, 3, 128, 128)" in line
    assert line.endswith("; pass --size 64 64, its input size")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["layers", "resnet18", "--size", "100000"],
         "--size 100000 is too large: the limit is 4096 px per side (one 100000 x 100000 RGB "
         "input alone takes 111.8 GiB, the model's activations many times that); pass --size "
         "4096 4096 or smaller"),
        (["layers", "resnet18", "--size", "64", "4097"],
         "--size 64 4097 is too large: the limit is 4096 px per side; pass --size 64 4096 or "
         "smaller"),
        (["layers", "resnet18", "--size", "4096", "--batch", "6"],
         "an input of shape (6, 3, 4096, 4096) takes 1.1 GiB as float32, above the 1 GiB "
         "limit; pass a smaller --size, --batch or --channels"),
        (["init", "mod:build", "--size", "5000", "--dir", "{tmp}/a"],
         "--size 5000 is too large: the limit is 4096 px per side"),
        (["explain", "shapes-cnn", "{img}", "-o", "{out}", "--size", "100000"],
         "--size 100000 is too large: the limit is 4096 px per side"),
        (["explain", "{summer}", "{wide}", "-o", "{out}"],
         "image {wide} (2 x 4097 px) is too large: the limit is 4096 px per side; pass "
         "--size 2 4096 or smaller"),
        (["explain", "vgg11", "{img}", "-o", "{out}"],
         "image {img} (24 x 20 px) is too small for vgg11: its smallest input is 32 x 32 px; "
         "pass --size 32 32 or larger"),
        (["explain", "{summer}", "{img}", "-o", "{out}", "--scale", "1000"],
         "--scale 1000 would make a 24000 x 20000 PNG, above the limit of 16384 px per side; "
         "pass --scale 682 or less"),
    ],
)  # fmt: skip
def test_sizes_out_of_bounds_are_refused_with_the_limit(factory, tmp_path, capsys, argv, message):
    values = {
        "tmp": str(tmp_path),
        "img": str(_png(tmp_path / "scene.png", _scene())),
        "wide": str(_png(tmp_path / "wide.png", np.zeros((2, 4097, 3), dtype=np.uint8))),
        "out": str(tmp_path / "o.png"),
        "summer": factory(SUMMER),
    }
    argv = [arg.format(**values) for arg in argv]
    assert main(argv) == 1
    line = _error_line(capsys)
    assert line.startswith(f"modelaudit {argv[0]}: error: ")
    assert message.format(**values) in line
    assert "MemoryError" not in line and "loading" not in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- explain


def _scene() -> np.ndarray:
    """A dark 24 x 20 RGB image with a bright 6 x 5 patch and a dimmer 4 x 4 one."""
    img = np.full((24, 20, 3), 20, dtype=np.uint8)
    img[3:9, 4:9] = 250
    img[15:19, 12:16] = 120
    return img


def test_explain_writes_the_gradcam_overlay(factory, tmp_path, capsys):
    spec = factory(SUMMER)
    image = _png(tmp_path / "scene.png", _scene())
    out = tmp_path / "gc.png"
    assert main(["explain", spec, str(image), "-o", str(out), "--layer", "1", "--bare"]) == 0

    x = _scene().astype(np.float64).transpose(2, 0, 1) / 255.0
    channel_sum = x.sum(axis=0)
    expected_map = (channel_sum - channel_sum.min()) / (channel_sum.max() - channel_sum.min())
    expected = overlay(x, expected_map)
    written = iio.imread(out)
    assert written.shape == (24, 20, 3)
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
    stdout = capsys.readouterr().out
    # logit 0 = mean channel sum > 0 > logit 1: class 0 is predicted and explained
    assert "gradcam of class 0" in stdout and "predicted 0" in stdout


def test_explain_target_with_negative_weights_gives_an_empty_map(factory, tmp_path, capsys):
    spec = factory(SUMMER)
    image = _png(tmp_path / "scene.png", _scene())
    out = tmp_path / "neg.png"
    argv = ["explain", spec, str(image), "-o", str(out), "-l", "1", "-t", "1", "--bare", "-q"]
    assert main(argv) == 0
    x = _scene().astype(np.float64).transpose(2, 0, 1) / 255.0
    expected = overlay(x, np.zeros((24, 20)))  # ReLU of a negative map: all zero
    assert np.abs(iio.imread(out).astype(int) - expected.astype(int)).max() <= 1
    assert "class 1" in capsys.readouterr().out


def test_explain_grey_image_resized_and_default_output_name(factory, tmp_path, monkeypatch):
    spec = factory(SUMMER)
    monkeypatch.chdir(tmp_path)
    grey = _png(tmp_path / "grey.png", _scene()[..., 0])  # (H, W): repeated to 3 channels
    argv = ["explain", spec, str(grey), "-m", "gradcam++", "--size", "12", "10", "--bare", "-q"]
    assert main(argv) == 0
    written = iio.imread(tmp_path / "grey-gradcampp.png")
    assert written.shape == (12, 10, 3)
    assert main(["explain", spec, str(grey), "-o", "plain.png", "--bare", "-q"]) == 0
    argv = ["explain", spec, str(grey), "-o", "big.png", "--scale", "3", "--bare", "-q"]
    assert main(argv) == 0
    plain, big = iio.imread(tmp_path / "plain.png"), iio.imread(tmp_path / "big.png")
    assert plain.shape == (24, 20, 3) and big.shape == (72, 60, 3)
    for dy in range(3):  # every pixel became a 3 x 3 block
        for dx in range(3):
            assert (big[dy::3, dx::3] == plain).all()


def test_explain_zoo_class_name_target(tmp_path, capsys):
    image = _png(tmp_path / "s.png", np.zeros((64, 64, 3), dtype=np.uint8))
    out = tmp_path / "r.png"
    argv = ["explain", "resnet18", str(image), "-t", "square", "-o", str(out), "--bare", "-q"]
    assert main(argv) == 0
    assert "of class 1 (square)" in capsys.readouterr().out
    assert iio.imread(out).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-m", "gradcm"], "unknown explanation method 'gradcm'. Did you mean 'gradcam'"),
        (["-t", "5"], "--target 5 is out of range: the model has 2 classes"),
        (["-t", "dog"], "--target 'dog' is not a class index"),
        (["-l", "7"], "model has no layer named '7'"),
        (["--alpha", "2"], "--alpha must be in [0, 1]"),
        (["--device", "bogus"], "'bogus' is not a torch device"),
    ],
)
def test_explain_errors_are_one_line(factory, tmp_path, capsys, extra, message):
    spec = factory(SUMMER)
    image = _png(tmp_path / "scene.png", _scene())
    assert main(["explain", spec, str(image), "-o", str(tmp_path / "o.png"), *extra]) == 1
    line = _error_line(capsys)
    assert line.startswith("modelaudit explain: error:") and message in line
    assert not (tmp_path / "o.png").exists()


def test_explain_file_problems(factory, tmp_path, capsys):
    spec = factory(SUMMER)
    assert main(["explain", spec, str(tmp_path / "missing.png")]) == 1
    assert "does not exist" in _error_line(capsys)
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    assert main(["explain", spec, str(bad)]) == 1
    assert "cannot read image" in _error_line(capsys)
    image = _png(tmp_path / "scene.png", _scene())
    assert main(["explain", spec, str(image), "-o", str(image)]) == 1
    assert "would overwrite the input image" in _error_line(capsys)


def test_explain_output_under_a_file_or_on_a_folder_names_the_right_path(
    factory, tmp_path, capsys, monkeypatch
):
    spec = factory(SUMMER)
    monkeypatch.chdir(tmp_path)
    image = _png(tmp_path / "scene.png", _scene())
    Path("existing_file").write_text("mine\n")
    assert main(["explain", spec, str(image), "-o", "existing_file/o.png"]) == 1
    assert _error_line(capsys) == (
        "modelaudit explain: error: cannot write --output existing_file/o.png: existing_file "
        "is a file, not a folder; choose an output path outside existing_file"
    )
    assert main(["explain", spec, str(image), "-o", "existing_file/a/b/o.png"]) == 1
    assert _error_line(capsys).endswith(
        "existing_file is a file, not a folder, so folder existing_file/a/b cannot be "
        "created; choose an output path outside existing_file"
    )
    Path("maps").mkdir()
    assert main(["explain", spec, str(image), "-o", "maps"]) == 1
    assert _error_line(capsys) == (
        "modelaudit explain: error: --output maps is a folder; give a file name, e.g. "
        "-o maps/overlay.png"
    )
    assert Path("existing_file").read_text() == "mine\n" and list(Path("maps").iterdir()) == []
    # missing folders below a real one are still created
    assert main(["explain", spec, str(image), "-o", "maps/new/o.png", "-q"]) == 0
    assert iio.imread("maps/new/o.png").shape[2] == 3


def _caption_at(figure: np.ndarray, layout, line: int) -> np.ndarray:
    """The ink of caption line ``line`` of a figure, as wide as the canvas allows."""
    y, x = layout.caption[line]
    rows = figure[y : y + 7 * layout.text_scale, x:]
    return (rows == 0).all(axis=-1)


def _shows(figure: np.ndarray, layout, line: int, text: str) -> bool:
    bitmap = text_bitmap(text, layout.text_scale)
    ink = _caption_at(figure, layout, line)
    return bool(
        np.array_equal(ink[:, : bitmap.shape[1]], bitmap) and not ink[:, bitmap.shape[1] :].any()
    )


def test_explain_figure_is_the_default_and_shows_the_overlay_and_caption(factory, tmp_path):
    import torch

    spec = factory(SUMMER)
    image = _png(tmp_path / "scene.png", _scene())
    fig_path, bare_path = tmp_path / "fig.png", tmp_path / "bare.png"
    assert main(["explain", spec, str(image), "-o", str(fig_path), "-l", "1", "-q"]) == 0
    argv = ["explain", spec, str(image), "-o", str(bare_path), "-l", "1", "--bare", "-q"]
    assert main(argv) == 0
    figure, bare = iio.imread(fig_path), iio.imread(bare_path)
    x = torch.from_numpy(_scene().astype(np.float32).transpose(2, 0, 1) / 255.0)
    s = float(x.sum(dim=0).mean())  # logits (s, -s): softmax of the explained class 0
    p = float(torch.tensor([s, -s]).softmax(dim=0)[0])
    lines = [f"class 0 p={p:.3f}", "gradcam at 1"]
    lay = figure_layout(24, 20, lines)
    assert figure.shape == (lay.height, lay.width, 3)
    top, left, h, w = lay.image
    assert np.array_equal(figure[top : top + h, left : left + w], bare)
    assert all(_shows(figure, lay, i, text) for i, text in enumerate(lines))


def _zoo_shape(tmp_path: Path) -> tuple[Path, list[int]]:
    from modelaudit.report import save_png

    data = modelaudit.zoo.audit_data(1)
    path = save_png(data.images[0], tmp_path / "shape.png")
    return path, [int(v) for v in data.boxes[0]]


def test_explain_zoo_figure_with_box_and_scale(tmp_path, capsys):
    image, box = _zoo_shape(tmp_path)
    fig_path, bare_path = tmp_path / "fig.png", tmp_path / "bare.png"
    common = ["explain", "shapes-cnn", str(image), "--box", *map(str, box), "--scale", "3"]
    assert main([*common, "-o", str(fig_path), "-q"]) == 0
    printed = capsys.readouterr().out
    assert main([*common, "-o", str(bare_path), "--bare", "-q"]) == 0
    figure, bare = iio.imread(fig_path), iio.imread(bare_path)
    assert bare.shape == (192, 192, 3)
    # the printed line and the caption agree: "... of class 0 (circle) (p=0.813); predicted ..."
    target = printed.split(" of class ")[1].split(" (p=")[0]
    p = printed.split("(p=")[1].split(")")[0]
    lines = [f"class {target} p={p}", "gradcam at features.13", "box ({}, {}, {}, {})".format(*box)]
    lay = figure_layout(64, 64, lines, box=True, scale=3)
    assert lay.text_scale == 1 and figure.shape == (lay.height, lay.width, 3)
    top, left, h, w = lay.image
    assert np.array_equal(figure[top : top + h, left : left + w], bare)
    x1, y1, x2, y2 = (3 * v for v in box)
    cyan = [0, 229, 255]
    assert (bare[y1, x1:x2] == cyan).all() and (bare[y1:y2, x2 - 1] == cyan).all()
    assert all(_shows(figure, lay, i, text) for i, text in enumerate(lines))
    bar_top, bar_left = lay.bar[:2]
    assert figure[bar_top, bar_left].tolist() == [252, 255, 164]  # inferno at 1


def test_explain_box_is_in_pixels_of_the_image_as_given(factory, tmp_path):
    spec = factory(SUMMER)
    image = _png(tmp_path / "scene.png", _scene())  # 24 x 20, resized to 12 x 10
    out = tmp_path / "o.png"
    argv = ["explain", spec, str(image), "-o", str(out), "--size", "12", "10", "--bare", "-q"]
    assert main([*argv, "--box", "4", "2", "9", "8"]) == 0
    written = iio.imread(out)
    cyan = [0, 229, 255]  # x1, y1 halved down, x2, y2 halved up: (2, 1, 5, 4)
    assert (written[1, 2:5] == cyan).all() and (written[1:4, 4] == cyan).all()
    assert (written[4:, :] != cyan).any(axis=-1).all() and (written[:, 5:] != cyan).any(
        axis=-1
    ).all()


@pytest.mark.parametrize(
    ("box", "status", "message"),
    [
        (["1", "2", "3"], 2, "argument --box: expected 4 arguments"),
        (["1", "2", "3", "x"], 2, "argument --box: invalid int value: 'x'"),
        (["1", "2", "3.5", "4"], 2, "argument --box: invalid int value: '3.5'"),
        (["5", "0", "5", "4"], 1, "--box 5 0 5 4 is empty: need x1 < x2 and y1 < y2"),
        (["0", "9", "4", "3"], 1, "--box 0 9 4 3 is empty"),
        (["0", "0", "21", "4"], 1, "--box 0 0 21 4 is outside the image (24 x 20 px): "
         "need 0 <= x1 < x2 <= 20 and 0 <= y1 < y2 <= 24"),
        (["-1", "0", "4", "4"], 1, "--box -1 0 4 4 is outside the image"),
        (["0", "0", "4", "25"], 1, "--box 0 0 4 25 is outside the image"),
    ],
)  # fmt: skip
def test_explain_bad_box_is_refused(factory, tmp_path, capsys, box, status, message):
    spec = factory(SUMMER)
    image = _png(tmp_path / "scene.png", _scene())
    assert (
        main(["explain", spec, str(image), "-o", str(tmp_path / "o.png"), "--box", *box]) == status
    )
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1]
    assert "loading" not in err  # refused before the model loads
    assert not (tmp_path / "o.png").exists()


def test_usage_errors_exit_2_with_one_line(capsys):
    assert main(["explain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "required: MODEL, IMAGE" in err[0]
    assert main(["layers", "shapes-cnn", "--size", "0"]) == 2
    assert "at least 1 pixel" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("modelaudit ")


def test_parser_lists_the_three_commands():
    text = build_parser().format_help()
    assert all(command in text for command in ("layers", "explain", "init"))


def test_version_has_one_source(capsys):
    # pyproject.toml reads modelaudit/_version.py; the installed metadata must agree with it
    assert importlib.metadata.version("modelaudit") == __version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"modelaudit {__version__}\n"


def test_python_dash_m_modelaudit_is_the_command(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help text to the terminal width
    script = Path(sys.executable).with_name("modelaudit")  # the console script, same venv
    commands = [[sys.executable, "-m", "modelaudit"]] + ([[str(script)]] if script.exists() else [])
    for argv, status in ((["--version"], 0), (["layers", "--help"], 0), ([], 2)):
        assert main(argv) == status
        expected = capsys.readouterr()
        for command in commands:
            run = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=60)
            assert (run.returncode, run.stdout, run.stderr) == (status, *expected), command
    assert expected.err.startswith("modelaudit: error: ")  # no command: a usage error


# --------------------------------------------------------------------------- init


STARTER_FILES = [
    "pytest.ini", "conftest.py", "test_localization.py", "test_background.py",
    "test_sanity.py", "test_stability.py", "test_structure.py",
]  # fmt: skip

# Overrides appended to a generated conftest.py: labelled boxes of 12 x 12 px on 24 px
# images, and a test reporting the layers the fixtures chose at run time.
LABELLED = """

@pytest.fixture(scope="session")
def labelled_batch():
    images = torch.rand(4, *INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    return images, torch.tensor([[4, 4, 16, 16]] * 4), torch.tensor([0, 1, 2, 0])
"""
CHOSEN = """
def test_chosen(cam_layer, structure_layer):
    print(f"CHOSEN cam={cam_layer} structure={structure_layer}")
"""


def test_init_writes_a_suite_that_runs(factory, pytester, capsys):
    spec = factory(STRIDED)
    assert main(["init", spec, "--dir", "audits", "--size", "24", "-q"]) == 0
    written = capsys.readouterr().out.split()
    folder = pytester.path / "audits"
    assert written == [str(Path("audits") / n) for n in STARTER_FILES]
    conftest = (folder / "conftest.py").read_text()
    assert "CAM_LAYER = None" in conftest and "INPUT_SIZE = (3, 24, 24)" in conftest
    assert "NUM_CLASSES = 3" in conftest and "ANY_INPUT_SIZE = True" in conftest
    ini = (folder / "pytest.ini").read_text()
    assert f"audit_model = {spec}" in ini and "audit_arch =" not in ini

    result = pytester.runpytest_inprocess(str(folder), "-p", "no:cacheprovider")
    # structural audits pass; localization (3 methods), background, sanity, stability skip
    result.assert_outcomes(passed=4, skipped=5)
    result.stdout.fnmatch_lines(["*SKIPPED [[]1[]] *test_localization.py*no labelled images yet*"])
    # the report goes to the suite's own folder
    assert (folder / "audit-report" / "report.html").is_file()


def test_init_cam_layer_is_chosen_from_the_boxes_at_run_time(factory, pytester):
    spec = factory(STRIDED)  # 24 px: conv "0"/ReLU "1" 12x12 (cells of 2 px), "2"/"3" 5x5
    assert main(["init", spec, "--dir", "audits", "--size", "24", "-q"]) == 0
    folder = pytester.path / "audits"
    with (folder / "conftest.py").open("a") as f:
        f.write(LABELLED)
    (folder / "test_chosen.py").write_text(CHOSEN)
    result = pytester.runpytest_inprocess(str(folder / "test_chosen.py"), "-s")
    result.assert_outcomes(passed=1)
    # 12 px boxes: 12 / (24 / 5) = 2.5 cells of ReLU "3" (>= 2): the deepest that fits;
    # the structural audits, without boxes, take the default (the same last 4-D map here)
    result.stdout.fnmatch_lines(["*CHOSEN cam=3 structure=3*"])
    text = (folder / "conftest.py").read_text().replace("MIN_CELLS = 2 ", "MIN_CELLS = 3 ")
    (folder / "conftest.py").write_text(text)
    result = pytester.runpytest_inprocess(str(folder / "test_chosen.py"), "-s")
    # 3 cells: 2.5 < 3 at "3"; 12 / 2 = 6 cells at ReLU "1"
    result.stdout.fnmatch_lines(["*CHOSEN cam=1 structure=3*"])


def test_init_writes_the_layer_reasoning_for_resnet18(tmp_path, capsys):
    folder = tmp_path / "suite"
    argv = ["init", "torchvision.models:resnet18", "--size", "64", "--dir", str(folder), "-q"]
    assert main(argv) == 0
    conftest = (folder / "conftest.py").read_text()
    # 64 px: conv1 (stride 2) -> 32, maxpool -> 16 (layer1), then /2 per stage:
    # layer2 8, layer3 4, layer4 2. Cells: 64 / grid px; objects: 2 cells, twice that.
    expected = [
        ("relu", "32x32", 2, 4),
        ("layer1", "16x16", 4, 8),
        ("layer2", "8x8", 8, 16),
        ("layer3", "4x4", 16, 32),
        ("layer4", "2x2", 32, 64),
    ]
    rows = [line for line in conftest.splitlines() if "cells of" in line and "->" in line]
    assert len(rows) == len(expected)
    for row, (name, grid, cell, smallest) in zip(rows, expected):
        assert row.split() == ["#", name, grid, "cells", "of", str(cell), "px", "->", "objects",
                               "of", str(smallest), "px", "and", "more",
                               *(["(the", "default", "without", "boxes)"] * (name == "layer4"))]  # fmt: skip
    assert "at the audit input of 64 x 64 px" in conftest
    assert "median labelled box spans at least MIN_CELLS x MIN_CELLS" in conftest
    assert "CAM_LAYER = None" in conftest and "MIN_CELLS = 2" in conftest
    assert "ma.choose_layer(audit_model, images, boxes, min_cells=MIN_CELLS).name" in conftest
    # --layer pins the layer, and says so
    argv += ["--force", "--layer", "layer3"]
    assert main(argv) == 0
    conftest = (folder / "conftest.py").read_text()
    assert "CAM_LAYER = 'layer3'" in conftest and "CAM_LAYER pins 'layer3'" in conftest


def test_init_pytest_ini_has_short_tracebacks_and_its_own_report_folder(factory, tmp_path):
    spec = factory(STRIDED)
    assert main(["init", spec, "--dir", str(tmp_path / "a"), "--size", "24", "-q"]) == 0
    ini = (tmp_path / "a" / "pytest.ini").read_text()
    assert "addopts = -ra --tb=short --import-mode=importlib" in ini.splitlines()
    assert "audit_report_dir = audit-report" in ini.splitlines()  # relative to the suite
    assert "audit_baseline = baseline.json" in ini.splitlines()


WEIGHTS_NET = """
from torch import nn

class Net(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
        )
"""


def _weights(factory, tmp_path: Path) -> tuple[str, Path]:
    """A ``module:Net`` spec and a state_dict of it saved under ``tmp_path / "w"``."""
    import torch

    spec = factory(WEIGHTS_NET.replace("class Net", "def build():\n    return Net()\n\nclass Net"))
    arch = spec.replace(":build", ":Net")
    module = __import__(spec.split(":")[0])
    (tmp_path / "w").mkdir()
    torch.save(module.Net().state_dict(), tmp_path / "w" / "net.pt")
    return arch, tmp_path / "w" / "net.pt"


def test_init_from_weights_writes_model_and_arch(factory, tmp_path, monkeypatch, capsys):
    arch, weights = _weights(factory, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "w/net.pt", "--arch", arch, "--dir", "suites/a", "--size", "16"]) == 0
    ini = (tmp_path / "suites" / "a" / "pytest.ini").read_text().splitlines()
    assert "audit_model = ../../w/net.pt" in ini  # relative to the suite folder
    assert f"audit_arch = {arch}" in ini
    assert "pythonpath = ../.." in ini
    conftest = (tmp_path / "suites" / "a" / "conftest.py").read_text()
    assert f"auditing {arch} with the weights ../../w/net.pt" in conftest
    assert "NUM_CLASSES = 5" in conftest
    assert f"`modelaudit layers w/net.pt --arch {arch}`" in conftest
    # an absolute weights path stays absolute
    assert main(["init", str(weights), "--arch", arch, "--dir", "b", "--size", "16", "-q"]) == 0
    assert f"audit_model = {weights.as_posix()}" in (tmp_path / "b" / "pytest.ini").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}", "--arch", "{arch}"], "weights file {missing} does not exist"),
        (["{weights}"], "{weights} is a weights file: pass --arch pkg.module:Factory"),
        (["{factory}", "--arch", "{arch}"], "--arch is only for a weights file (.pt/.pth)"),
        (["{numbers}", "--arch", "{arch}"], "does not hold a state_dict (a dict of tensors)"),
        (["{weights}", "--arch", "{other}"],
         "do not fit architecture '{other}': 2 missing keys ('1.bias', '1.weight'); "
         "4 unexpected keys ('0.bias', '0.weight', '5.bias', ...)"),
    ],
)  # fmt: skip
def test_init_weights_errors_are_one_line(factory, tmp_path, capsys, argv, message):
    import torch

    arch, weights = _weights(factory, tmp_path)
    torch.save([1, 2, 3], tmp_path / "numbers.pt")
    values = {
        "arch": arch,
        "weights": str(weights),
        "missing": str(tmp_path / "nope.pt"),
        "numbers": str(tmp_path / "numbers.pt"),
        "factory": arch.replace(":Net", ":build"),
        "other": factory(
            "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Identity(), nn.Linear(2, 2))\n"
        ),
    }
    argv = ["init", *(a.format(**values) for a in argv), "--dir", str(tmp_path / "a"), "-q"]
    assert main(argv) == 1
    line = _error_line(capsys)
    assert line.startswith("modelaudit init: error: ") and message.format(**values) in line
    assert not (tmp_path / "a").exists()


PACKAGE = {
    "__init__.py": "",
    "nets.py": "from torch import nn\n\n\ndef build():\n    return nn.Sequential("
    "nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n",
}


@pytest.mark.parametrize("command", ["layers", "explain", "init"])
def test_every_command_imports_the_model_from_the_current_folder(
    tmp_path, monkeypatch, capsys, command
):
    name = f"cwd_pkg_{next(_names)}"
    (tmp_path / name).mkdir()
    for file, text in PACKAGE.items():
        (tmp_path / name / file).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    spec = f"{name}.nets:build"
    argv = {
        "layers": ["layers", spec, "--size", "8"],
        "explain": ["explain", spec, str(_png(tmp_path / "i.png", _scene())), "-o", "o.png"],
        "init": ["init", spec, "--size", "8", "--dir", "suite"],
    }[command]
    try:
        assert main([*argv, "-q"]) == 0, capsys.readouterr().err
    finally:
        for module in [m for m in sys.modules if m.startswith(name)]:
            del sys.modules[module]
    assert sys.path == before  # the current folder is on sys.path only while loading


@pytest.mark.slow
def test_init_then_pytest_in_subprocesses_from_weights(tmp_path):
    """``modelaudit init weights.pt --arch pkg.nets:Net`` from a project folder, then
    ``pytest suite``: structural audits pass, attention audits skip, report in the suite."""
    import torch

    (tmp_path / "proj" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "proj" / "pkg" / "nets.py").write_text(WEIGHTS_NET)
    sys.path.insert(0, str(tmp_path / "proj"))
    try:
        from pkg.nets import Net  # type: ignore[import-not-found]

        torch.save(Net().state_dict(), tmp_path / "proj" / "net.pt")
    finally:
        sys.path.remove(str(tmp_path / "proj"))
        for module in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
            del sys.modules[module]
    init = [sys.executable, "-m", "modelaudit", "init", "net.pt", "--arch", "pkg.nets:Net",
            "--size", "32", "--dir", "suite"]  # fmt: skip
    run = subprocess.run(init, cwd=tmp_path / "proj", capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    tests = [sys.executable, "-m", "pytest", "suite", "-p", "no:cacheprovider"]
    run = subprocess.run(tests, cwd=tmp_path / "proj", capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "4 passed, 5 skipped" in run.stdout
    assert "no labelled images yet" in run.stdout
    assert (tmp_path / "proj" / "suite" / "audit-report" / "report.html").is_file()


def test_init_refuses_to_overwrite_and_checks_the_factory(factory, tmp_path, capsys):
    spec = factory(STRIDED)
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "conftest.py").write_text("# mine\n")
    assert main(["init", spec, "--dir", str(folder)]) == 1
    assert "already has conftest.py; pass --force" in _error_line(capsys)
    assert (folder / "conftest.py").read_text() == "# mine\n"
    assert main(["init", spec, "--dir", str(folder), "--force", "--layer", "2", "-q"]) == 0
    assert "CAM_LAYER = '2'" in (folder / "conftest.py").read_text()  # pinned
    capsys.readouterr()
    assert main(["init", "resnet18", "--dir", str(tmp_path / "x")]) == 1
    assert "FACTORY must look like pkg.module:function" in _error_line(capsys)
    assert main(["init", spec.replace("build", "nope"), "--dir", str(tmp_path / "y")]) == 1
    assert "has no attribute 'nope'" in _error_line(capsys)


def test_init_notes_a_fixed_input_size(factory, tmp_path):
    spec = factory(
        """
        import torch
        from torch import nn

        class Fixed(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 2, 3)
                self.fc = nn.Linear(2 * 14 * 14, 4)

            def forward(self, x):
                return self.fc(torch.relu(self.conv(x)).flatten(1))  # 16 x 16 inputs only

        def build():
            return Fixed()
        """
    )
    assert main(["init", spec, "--dir", str(tmp_path / "a"), "--size", "16", "-q"]) == 0
    conftest = (tmp_path / "a" / "conftest.py").read_text()
    assert "ANY_INPUT_SIZE = False" in conftest and "CAM_LAYER = None" in conftest
    assert "conv  14x14 cells of" in conftest  # 16 - 3 + 1 = 14


ZOO_LABELLED = """

@pytest.fixture(scope="session")
def labelled_batch(audit_device):
    from modelaudit import zoo

    data = zoo.audit_data(64)
    return tuple(t.to(audit_device) for t in (data.images, data.boxes, data.labels))
"""


@pytest.mark.slow
def test_starter_attention_audits_pass_on_the_trained_shapes_cnn(tmp_path):
    """The generated attention audits, fed the zoo's labelled shapes, pass on shapes-cnn
    (its state_dict loaded into modelaudit.zoo:ShapesCNN), as audits/ does."""
    weights = Path(ma.__file__).parent / "zoo" / "weights" / "shapes-cnn.pt"
    init = [sys.executable, "-m", "modelaudit", "init", str(weights), "--arch",
            "modelaudit.zoo:ShapesCNN", "--size", "64", "--dir", "suite", "-q"]  # fmt: skip
    run = subprocess.run(init, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with (tmp_path / "suite" / "conftest.py").open("a") as f:
        f.write(ZOO_LABELLED)
    tests = [sys.executable, "-m", "pytest", "suite", "-p", "no:cacheprovider"]
    for extra in (["--audit-update-baseline"], []):  # create the baseline, then gate on it
        run = subprocess.run(
            [*tests, *extra], cwd=tmp_path, capture_output=True, text=True, timeout=900
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "9 passed" in run.stdout and "skipped" not in run.stdout
    assert (tmp_path / "suite" / "baseline.json").is_file()
    # the same suite against the shortcut model (reads a corner watermark): caught twice
    shortcut = weights.with_name("shapes-cnn-shortcut.pt")
    run = subprocess.run(
        [*tests, "--audit-model", str(shortcut)], cwd=tmp_path, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-6000:]
    for name in (
        "test_attention_lies_on_the_object",
        "test_prediction_does_not_rest_on_the_background",
    ):
        assert "FAILED suite/test_" in run.stdout and f"::{name}" in run.stdout
    assert "Where the model looks instead" in run.stdout and "corner" in run.stdout

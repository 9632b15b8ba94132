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
import modelaudit.strategies
import modelaudit.zoo  # noqa: F401
from modelaudit._version import __version__
from modelaudit.cli import build_parser, layer_rows, main
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
    assert main(["explain", spec, str(image), "-o", str(out), "--layer", "1"]) == 0

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
    assert main(["explain", spec, str(image), "-o", str(out), "-l", "1", "-t", "1", "-q"]) == 0
    x = _scene().astype(np.float64).transpose(2, 0, 1) / 255.0
    expected = overlay(x, np.zeros((24, 20)))  # ReLU of a negative map: all zero
    assert np.abs(iio.imread(out).astype(int) - expected.astype(int)).max() <= 1
    assert "class 1" in capsys.readouterr().out


def test_explain_grey_image_resized_and_default_output_name(factory, tmp_path, monkeypatch):
    spec = factory(SUMMER)
    monkeypatch.chdir(tmp_path)
    grey = _png(tmp_path / "grey.png", _scene()[..., 0])  # (H, W): repeated to 3 channels
    assert main(["explain", spec, str(grey), "-m", "gradcam++", "--size", "12", "10", "-q"]) == 0
    written = iio.imread(tmp_path / "grey-gradcampp.png")
    assert written.shape == (12, 10, 3)
    assert main(["explain", spec, str(grey), "-o", "plain.png", "-q"]) == 0
    assert main(["explain", spec, str(grey), "-o", "big.png", "--scale", "3", "-q"]) == 0
    plain, big = iio.imread(tmp_path / "plain.png"), iio.imread(tmp_path / "big.png")
    assert plain.shape == (24, 20, 3) and big.shape == (72, 60, 3)
    for dy in range(3):  # every pixel became a 3 x 3 block
        for dx in range(3):
            assert (big[dy::3, dx::3] == plain).all()


def test_explain_zoo_class_name_target(tmp_path, capsys):
    image = _png(tmp_path / "s.png", np.zeros((64, 64, 3), dtype=np.uint8))
    out = tmp_path / "r.png"
    assert main(["explain", "resnet18", str(image), "-t", "square", "-o", str(out), "-q"]) == 0
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
    assert iio.imread("maps/new/o.png").shape == (24, 20, 3)


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


def test_init_writes_a_suite_that_runs(factory, pytester, capsys):
    spec = factory(STRIDED)
    assert main(["init", spec, "--dir", "audits", "--size", "24", "-q"]) == 0
    written = capsys.readouterr().out.split()
    folder = pytester.path / "audits"
    names = ["pytest.ini", "conftest.py", "test_attention.py", "test_structure.py"]
    assert written == [str(Path("audits") / n) for n in names]
    conftest = (folder / "conftest.py").read_text()
    assert "CAM_LAYER = '3'" in conftest and "INPUT_SIZE = (3, 24, 24)" in conftest
    assert "NUM_CLASSES = 3" in conftest and "ANY_INPUT_SIZE = True" in conftest
    assert f"audit_model = {spec}" in (folder / "pytest.ini").read_text()

    result = pytester.runpytest_inprocess(str(folder), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, skipped=3)
    result.stdout.fnmatch_lines(["*no labelled images yet*"])


def test_init_refuses_to_overwrite_and_checks_the_factory(factory, tmp_path, capsys):
    spec = factory(STRIDED)
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "conftest.py").write_text("# mine\n")
    assert main(["init", spec, "--dir", str(folder)]) == 1
    assert "already has conftest.py; pass --force" in _error_line(capsys)
    assert (folder / "conftest.py").read_text() == "# mine\n"
    assert main(["init", spec, "--dir", str(folder), "--force", "--layer", "2", "-q"]) == 0
    assert "CAM_LAYER = '2'" in (folder / "conftest.py").read_text()
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
    assert "ANY_INPUT_SIZE = False" in conftest and "CAM_LAYER = 'conv'" in conftest

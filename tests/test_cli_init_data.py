"""``modelaudit init --data``: the starter suite reads a VOC, COCO or ImageFolder dataset."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

# Inline pytester runs unload the modules they imported; torchvision (through the zoo and
# the readers) must be loaded once, before them.
import modelaudit as ma
import modelaudit.data
import modelaudit.zoo
from modelaudit.cli import main
from modelaudit.zoo import AUDIT_SEED, CLASS_NAMES
from modelaudit.zoo.on_disk import write_coco, write_image_folder, write_voc

FOUR_CLASSES = """
from torch import nn

def build():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, {k}),
    )
"""

# A test added to the generated suite: labelled_batch against the truth saved by the test,
# at 32 px: boxes halved (Resize 64 -> 32), widened to whole pixels.
CHECK = """
import torch

def test_labelled_batch_is_the_data(labelled_batch):
    images, boxes, labels = labelled_batch
    truth = torch.load("truth.pt")
    order = truth["order"]
    assert images.shape == (len(order), 3, 32, 32)
    assert labels.tolist() == truth["labels"][order].tolist()
    half = truth["boxes"][order].double() / 2
    expected = torch.cat([half[:, :2].floor(), half[:, 2:].ceil()], dim=1).long()
    assert boxes.tolist() == expected.tolist()
    print("CHECKED", len(order))
"""


@pytest.fixture
def model_spec(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A module ``net4.py`` in the test folder with ``build()``: a 4-class model."""
    monkeypatch.syspath_prepend(str(pytester.path))

    def write(k: int = 4) -> str:
        name = f"net{k}_{abs(hash(str(pytester.path))) % 10**8}"
        (pytester.path / f"{name}.py").write_text(textwrap.dedent(FOUR_CLASSES.format(k=k)))
        return f"{name}:build"

    return write


@pytest.mark.parametrize("layout", ["voc", "coco", "folder"])
def test_init_data_feeds_labelled_batch(layout: str, pytester: pytest.Pytester, model_spec) -> None:  # type: ignore[no-untyped-def]
    root = pytester.path / "data"
    if layout == "voc":
        truth = write_voc(root, n=20, seed=3)
        spec, order = "voc:data", list(range(16))
        extra = ["--classes", ",".join(CLASS_NAMES)]
    elif layout == "coco":
        truth = write_coco(root, n=20, seed=3)
        spec, order, extra = "coco:data/images,data/annotations.json", list(range(16)), []
    else:
        truth = write_image_folder(root, n=20, seed=3)
        spec, extra = "folder:data,data/boxes.csv", ["--classes", ",".join(CLASS_NAMES)]
        folder = modelaudit.data.image_folder_with_boxes(
            root, root / "boxes.csv", classes=CLASS_NAMES
        )
        order = [int(Path(f).stem) for f in folder.files][:16]
    torch.save(
        {"labels": truth.labels, "boxes": truth.boxes, "order": torch.tensor(order)},
        pytester.path / "truth.pt",
    )
    argv = [
        "init",
        model_spec(),
        "--dir",
        "audits",
        "--size",
        "32",
        "--data",
        spec,
        "--data-limit",
        "16",
        "-q",
        *extra,
    ]
    assert main(argv) == 0
    conftest = (pytester.path / "audits" / "conftest.py").read_text()
    assert "DATA_LIMIT = 16" in conftest
    (pytester.path / "audits" / "test_check.py").write_text(CHECK)
    result = pytester.runpytest_inprocess(
        str(pytester.path / "audits" / "test_check.py"), "-s", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*CHECKED 16*"])


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        (
            "pascal:data",
            [],
            "data 'pascal:data': expected one of voc:ROOT, voc-segmentation:ROOT, coco:IMAGES,ANNOTATIONS, folder:ROOT,BOXES",
        ),
        (
            "coco:data/images",
            [],
            "coco takes coco:IMAGES,ANNOTATIONS (2 path(s), comma-separated); got 1",
        ),
        ("coco:data/images,data/none.json", [], "annotation file data/none.json does not exist"),
        (
            "voc:data",
            [],
            "not one of 20 classes (aeroplane, bicycle, bird, boat, bottle...); pass classes=[...]",
        ),
        (
            "voc:data",
            ["--classes", "circle,square,triangle"],
            "object 0, is of class 'cross', not one of 3",
        ),
        ("voc:nowhere", [], "VOC: no folder nowhere/VOCdevkit/VOC2012"),
        (
            "voc:data",
            ["--classes", ",".join(CLASS_NAMES), "--data-limit", "0"],
            "--data-limit must be at least 1, got 0",
        ),
        (None, ["--classes", "a,b"], "--classes names the classes of --data; pass --data too"),
    ],
)
def test_init_data_errors_are_one_line(
    data: str | None,
    extra: list[str],
    message: str,
    pytester: pytest.Pytester,
    model_spec,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    write_voc(pytester.path / "data", n=8, seed=0)
    argv = ["init", model_spec(), "--dir", "audits", "--size", "32", *extra]
    assert main([*argv, *([] if data is None else ["--data", data])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and message in err[-1]
    assert not (pytester.path / "audits").exists()  # nothing written


def test_init_data_label_outside_the_models_classes(
    pytester: pytest.Pytester, model_spec, capsys
) -> None:  # type: ignore[no-untyped-def]
    truth = write_coco(pytester.path / "data", n=8, seed=0)
    first = int(torch.nonzero(truth.labels == 3)[0])  # the first cross: label 3 of a 3-class model
    argv = [
        "init",
        model_spec(3),
        "--dir",
        "audits",
        "--size",
        "32",
        "--data",
        "coco:data/images,data/annotations.json",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        f"sample {first} (data/images/{first:06d}.png), object 0: label 3 is outside [0, 3)" in err
    )


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["voc", "coco"])
def test_starter_suite_audits_300_images_on_disk_end_to_end(layout: str, tmp_path: Path) -> None:
    """A VOC or COCO folder of 300 generated images (the audit distribution: class-correlated
    watermarks), read by the starter suite: the clean shapes-cnn passes all 9 audits, as
    with the in-memory zoo batch."""
    if layout == "voc":
        write_voc(tmp_path / "data", n=300, seed=AUDIT_SEED, watermark="class")
        data = ["--data", "voc:data", "--classes", ",".join(CLASS_NAMES)]
    else:
        write_coco(tmp_path / "data", n=300, seed=AUDIT_SEED, watermark="class")
        data = ["--data", "coco:data/images,data/annotations.json"]
    weights = Path(ma.__file__).parent / "zoo" / "weights" / "shapes-cnn.pt"
    init = [sys.executable, "-m", "modelaudit", "init", str(weights), "--arch",
            "modelaudit.zoo:ShapesCNN", "--size", "64", "--dir", "suite", "-q",
            "--data-limit", "300", *data]  # fmt: skip
    run = subprocess.run(init, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    tests = [
        sys.executable,
        "-m",
        "pytest",
        "suite",
        "-p",
        "no:cacheprovider",
        "--audit-update-baseline",
    ]
    run = subprocess.run(tests, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "9 passed" in run.stdout and "skipped" not in run.stdout
    assert (tmp_path / "suite" / "baseline.json").is_file()
    # every image of the folder audited, with per-class rows in the summary and the report
    report = tmp_path / "suite" / "audit-report"
    doc = json.loads((report / "records.json").read_text())
    (calibrated,) = [
        r for t in doc["tests"] for r in t["records"] if r["check"] == "calibrated_mass"
    ]
    assert len(calibrated["values"]) == 300
    assert sorted(c["name"] for c in calibrated["per_class"]) == sorted(CLASS_NAMES)
    assert sum(c["count"] for c in calibrated["per_class"]) == 300
    assert "    by class (not gated): " in run.stdout
    assert "class='byclass passed sub'" in (report / "report.html").read_text()

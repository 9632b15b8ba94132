"""Tiny datasets written once per session in each layout, with their generated truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelaudit.zoo import ShapesData
from modelaudit.zoo.on_disk import (
    write_coco,
    write_image_folder,
    write_voc,
    write_voc_segmentation,
)

N = 12


@pytest.fixture(scope="session")
def voc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ShapesData]:
    root = tmp_path_factory.mktemp("voc")
    return root, write_voc(root, n=N, seed=1)


@pytest.fixture(scope="session")
def voc_seg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ShapesData]:
    root = tmp_path_factory.mktemp("vocseg")
    return root, write_voc_segmentation(root, n=N, seed=2)


@pytest.fixture(scope="session")
def coco(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ShapesData]:
    root = tmp_path_factory.mktemp("coco")
    return root, write_coco(root, n=N, seed=3)


@pytest.fixture(scope="session")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ShapesData]:
    root = tmp_path_factory.mktemp("folder")
    return root, write_image_folder(root, n=N, seed=4)

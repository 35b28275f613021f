"""Tests for stages/data/base.py: the DatasetSplit fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers_data import duke_tree, touch
from stages.data.duke import load_duke


def test_fingerprint_is_stable_moves_with_the_folder_and_changes_with_a_tracklet(tmp_path: Path) -> None:
    root = duke_tree(tmp_path / "a")
    first = load_duke(str(root), dense_step=0).fingerprint
    assert load_duke(str(root), dense_step=0).fingerprint == first
    moved = shutil.copytree(root, tmp_path / "b")
    assert load_duke(str(moved), dense_step=0).fingerprint == first
    assert load_duke(str(root), dense_step=40).fingerprint != first
    touch(root / "query/0001/0002/0001C2F0003X00124.jpg")
    assert load_duke(str(root), dense_step=0).fingerprint != first
    (moved / "gallery/0009/0001/0009C8F0001X00007.jpg").rename(moved / "gallery/0009/0001/0009C8F0001X00008.jpg")
    assert load_duke(str(moved), dense_step=0).fingerprint != first

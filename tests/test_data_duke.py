"""Tests for stages/data/duke.py: the DukeMTMC-VideoReID loader and the synthetic (synth.json) loader on tiny trees."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helpers_data import duke_tracklet, duke_tree, frame_name, mars_tree, touch
from stages.config import DataConfig
from stages.data import load_dataset
from stages.data.duke import DUKE_CAMERA_OFFSETS, load_duke, load_synth
from stages.errors import AuxReidError


@pytest.fixture()
def duke_root(tmp_path: Path) -> Path:
    return duke_tree(tmp_path / "duke")


def test_load_duke_parses_both_spellings(duke_root: Path) -> None:
    data = load_duke(str(duke_root), dense_step=0)
    assert [(t.name, t.person_id, t.camera, len(t.frames)) for t in data.train] == [
        ("0001/0001", 1, 5, 95), ("0002/0001", 2, 0, 3)]
    assert data.train[1].frames[0] == str(duke_root / "train/0002/0001/0002_C1_F0002_X00001.jpg")
    assert [(t.name, t.person_id, t.camera) for t in data.query] == [("0001/0002", 1, 1)]
    assert [(t.name, t.person_id, t.camera) for t in data.gallery] == [("0001/0003", 1, 5), ("0009/0001", 9, 7)]
    assert (data.name, data.has_times, data.num_cameras, data.fps) == ("duke", True, 8, 59.94)
    assert data.camera_labels == tuple(f"C{n}" for n in range(1, 9))  # as the file names number them
    assert data.camera_labels[data.train[0].camera] == "C6"  # 0001C6F...: camera index 5


def test_load_duke_times_from_camera_offsets(duke_root: Path) -> None:
    data = load_duke(str(duke_root), dense_step=0)
    assert data.train[0].times[0] == pytest.approx((30823 + 22402 - 1) / 59.94)
    assert data.train[1].times == pytest.approx(tuple((x + 5543 - 1) / 59.94 for x in (1, 13, 25)))
    assert data.gallery[1].times == pytest.approx(((7 + 46766 - 1) / 59.94,))
    assert DUKE_CAMERA_OFFSETS == (5543, 3607, 27244, 31182, 1, 22402, 18968, 46766)


def test_load_duke_orders_frames_by_rank_not_name(tmp_path: Path) -> None:
    root = duke_tree(tmp_path / "duke")
    folder = root / "query/0001/0002"
    shutil.rmtree(folder)
    for rank, x in ((10, 300), (9, 200), (100, 900)):
        touch(folder / frame_name(1, 2, rank, x, underscores=False))
    data = load_duke(str(root), dense_step=0)
    assert [os.path.basename(f) for f in data.query[0].frames] == [
        "0001C2F0009X00200.jpg", "0001C2F0010X00300.jpg", "0001C2F0100X00900.jpg"]


def test_load_duke_ignores_hidden_and_non_image_files(duke_root: Path) -> None:
    touch(duke_root / "train/0002/0001/.DS_Store")
    touch(duke_root / "train/0002/0001/notes.txt")
    touch(duke_root / "train/README")
    assert len(load_duke(str(duke_root), dense_step=0).train[1].frames) == 3


def test_load_duke_dense_splits_train_only(duke_root: Path) -> None:
    data = load_duke(str(duke_root), dense_step=40)
    assert [(t.name, len(t.frames)) for t in data.train] == [
        ("0001/0001#0", 40), ("0001/0001#1", 55), ("0002/0001#0", 3)]
    assert data.train[1].times[0] == pytest.approx((30823 + 12 * 40 + 22402 - 1) / 59.94)
    assert [len(t.frames) for t in data.gallery] == [3, 1]
    assert data.meta["dense_step"] == 40


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: shutil.rmtree(r / "query"), "folder {r}/query is missing; it should hold <pid>/<tracklet>/<frames>.jpg folders"),
        (lambda r: touch(r / "train/0002/0001/0002_C1_F9.jpg"),
         "cannot parse frame name {r}/train/0002/0001/0002_C1_F9.jpg; expected e.g. 0001C6F0099X30823.jpg or 0001_C6_F0099_X30823.jpg"),
        (lambda r: (r / "gallery/0009/0002").mkdir(),
         "tracklet folder {r}/gallery/0009/0002 has no images (.jpg, .jpeg, .png); remove it or restore its frames"),
        (lambda r: touch(r / "query/0001/0002/0001C3F0003X00124.jpg"),
         "tracklet {r}/query/0001/0002 mixes cameras 2 (0001C2F0001X00100.jpg) and 3 (0001C3F0003X00124.jpg); a tracklet has one camera"),
        (lambda r: touch(r / "query/0001/0002/0002C2F0003X00124.jpg"),
         "frame {r}/query/0001/0002/0002C2F0003X00124.jpg names person 2 but lies in person folder 1"),
        (lambda r: duke_tracklet(r, "gallery", 5, 1, 9, [1]),
         "frame {r}/gallery/0005/0001/0005C9F0001X00001.jpg has camera 9, outside 1..8"),
        (lambda r: (r / "train/abc").mkdir(),
         "person folder {r}/train/abc is not a number; {r}/train should hold <pid>/<tracklet>/<frames>.jpg folders"),
        (lambda r: (r / "train/0003").mkdir(),
         "person folder {r}/train/0003 has no tracklet folders; expected {r}/train/0003/<tracklet>/<frames>.jpg"),
        (lambda r: shutil.rmtree(r / "gallery") or (r / "gallery").mkdir(),
         "found no tracklets in {r}/gallery; it should hold <pid>/<tracklet>/<frames>.jpg folders"),
        (lambda r: touch(r / "query/0001/0002/0001_C2_F0002_X00112.jpg"),
         "tracklet {r}/query/0001/0002 has two frames numbered F2: 0001C2F0002X00112.jpg and 0001_C2_F0002_X00112.jpg; keep one"),
    ],
    ids=["missing-split", "unparsable", "empty-tracklet", "mixed-camera", "person-mismatch", "camera-range",
         "person-folder", "empty-person", "empty-split", "duplicate-frame"],
)
def test_load_duke_bad_input_names_the_file(duke_root: Path, make, message: str) -> None:
    make(duke_root)
    with pytest.raises(AuxReidError) as error:
        load_duke(str(duke_root), dense_step=0)
    assert str(error.value) == message.format(r=duke_root)


def test_load_duke_missing_root_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(AuxReidError, match=f"^folder {tmp_path}/nope is missing; it should hold train/, query/, gallery/$"):
        load_duke(str(tmp_path / "nope"), dense_step=0)
    with pytest.raises(AuxReidError, match=r"^no dataset folder given \(data.root is empty\)"):
        load_duke("", dense_step=0)


def test_load_duke_rejects_negative_dense_step(duke_root: Path) -> None:
    with pytest.raises(AuxReidError, match=r"^dense_step is -1, expected >= 0 \(0 keeps tracklets whole\)$"):
        load_duke(str(duke_root), dense_step=-1)


def _synth_json(root: Path, **settings) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "synth.json").write_text(json.dumps(settings))


def test_load_synth_uses_its_offsets_fps_and_two_digit_cameras(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    duke_tracklet(root, "train", 1, 1, 10, [5, 17, 29, 41, 53])
    duke_tracklet(root, "query", 1, 2, 2, [3])
    duke_tracklet(root, "gallery", 2, 1, 1, [4], underscores=True)
    _synth_json(root, layout="duke", fps=25.0, camera_offsets=[1, 100, 1, 1, 1, 1, 1, 1, 1, 1001], seed=0)
    data = load_dataset(DataConfig(dataset="synth", root=str(root), dense_step=2))
    assert (data.name, data.num_cameras, data.fps, data.has_times) == ("synth", 10, 25.0, True)
    assert [(t.camera, len(t.frames)) for t in data.train] == [(9, 2), (9, 3)]
    assert data.train[0].times == pytest.approx(((5 + 1000) / 25, (17 + 1000) / 25))
    assert data.query[0].times == pytest.approx(((3 + 99) / 25,))
    assert data.meta["seed"] == 0 and data.meta["camera_offsets"][-1] == 1001


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (None, "{p} is missing: {r} is not a synthetic dataset; run `auxreid synth --out {r}`"),
        ({"layout": "market", "fps": 25, "camera_offsets": [1]}, "{p}: layout is 'market', expected 'duke' or 'mars'"),
        ({"layout": "duke", "fps": 0, "camera_offsets": [1]}, "{p}: fps is 0, expected a finite number > 0"),
        ({"layout": "duke", "fps": 25, "camera_offsets": []},
         "{p}: camera_offsets is [], expected a non-empty list of integers (cameras 1..C)"),
    ],
    ids=["missing", "layout", "fps", "offsets"],
)
def test_load_synth_bad_settings(tmp_path: Path, settings: dict | None, message: str) -> None:
    root = tmp_path / "synth"
    root.mkdir()
    if settings is not None:
        _synth_json(root, **settings)
    with pytest.raises(AuxReidError) as error:
        load_synth(str(root), dense_step=0)
    assert str(error.value) == message.format(p=root / "synth.json", r=root)


def test_load_synth_mars_layout_allows_more_cameras(tmp_path: Path) -> None:
    root = mars_tree(tmp_path / "synth", num_cameras=9)
    _synth_json(root, layout="mars", fps=25.0, camera_offsets=[1] * 9)
    data = load_synth(str(root), dense_step=40)
    assert (data.name, data.num_cameras, data.has_times) == ("synth", 9, False)
    assert data.query[1].camera == 8 and len(data.train) == 2

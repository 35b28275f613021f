"""Dataset loaders on tiny trees written in the real layouts (empty image files: loaders never open images)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from stages.config import DataConfig, build_config
from stages.data import load_dataset
from stages.data.base import DatasetSplit, Tracklet
from stages.data.dense import split_dense
from stages.data.duke import DUKE_CAMERA_OFFSETS, load_duke, load_synth
from stages.data.manifest import load_manifest
from stages.data.mars import load_mars, query_gallery_rows
from stages.data.stats import SplitStats, split_stats
from stages.errors import AuxReidError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def _frame(pid: int, cam: int, rank: int, x: int, *, underscores: bool) -> str:
    sep = "_" if underscores else ""
    return f"{pid:04d}{sep}C{cam}{sep}F{rank:04d}{sep}X{x:05d}.jpg"


def _duke_tracklet(root: Path, split: str, pid: int, track: int, cam: int, xs: list[int], *, first_rank: int = 1,
                   underscores: bool = False) -> Path:
    folder = root / split / f"{pid:04d}" / f"{track:04d}"
    for k, x in enumerate(xs):
        _touch(folder / _frame(pid, cam, first_rank + k, x, underscores=underscores))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _duke_tree(root: Path) -> Path:
    """train: person 1 (camera 6, 95 frames) and person 2 (camera 1, 3 frames, underscore spelling);
    query: person 1 camera 2; gallery: person 1 camera 6 and distractor person 9 camera 8."""
    _duke_tracklet(root, "train", 1, 1, 6, [30823 + 12 * k for k in range(95)])
    _duke_tracklet(root, "train", 2, 1, 1, [1, 13, 25], first_rank=2, underscores=True)
    _duke_tracklet(root, "query", 1, 2, 2, [100, 112])
    _duke_tracklet(root, "gallery", 1, 3, 6, [500, 512, 524], underscores=True)
    _duke_tracklet(root, "gallery", 9, 1, 8, [7])
    return root


@pytest.fixture()
def duke_root(tmp_path: Path) -> Path:
    return _duke_tree(tmp_path / "duke")


def test_load_duke_parses_both_spellings(duke_root: Path) -> None:
    data = load_duke(str(duke_root), dense_step=0)
    assert [(t.name, t.person_id, t.camera, len(t.frames)) for t in data.train] == [
        ("0001/0001", 1, 5, 95), ("0002/0001", 2, 0, 3)]
    assert data.train[1].frames[0] == str(duke_root / "train/0002/0001/0002_C1_F0002_X00001.jpg")
    assert [(t.name, t.person_id, t.camera) for t in data.query] == [("0001/0002", 1, 1)]
    assert [(t.name, t.person_id, t.camera) for t in data.gallery] == [("0001/0003", 1, 5), ("0009/0001", 9, 7)]
    assert (data.name, data.has_times, data.num_cameras, data.fps) == ("duke", True, 8, 59.94)


def test_load_duke_times_from_camera_offsets(duke_root: Path) -> None:
    data = load_duke(str(duke_root), dense_step=0)
    assert data.train[0].times[0] == pytest.approx((30823 + 22402 - 1) / 59.94)
    assert data.train[1].times == pytest.approx(tuple((x + 5543 - 1) / 59.94 for x in (1, 13, 25)))
    assert data.gallery[1].times == pytest.approx(((7 + 46766 - 1) / 59.94,))
    assert DUKE_CAMERA_OFFSETS == (5543, 3607, 27244, 31182, 1, 22402, 18968, 46766)


def test_load_duke_orders_frames_by_rank_not_name(tmp_path: Path) -> None:
    root = _duke_tree(tmp_path / "duke")
    folder = root / "query/0001/0002"
    shutil.rmtree(folder)
    for rank, x in ((10, 300), (9, 200), (100, 900)):
        _touch(folder / _frame(1, 2, rank, x, underscores=False))
    data = load_duke(str(root), dense_step=0)
    assert [os.path.basename(f) for f in data.query[0].frames] == [
        "0001C2F0009X00200.jpg", "0001C2F0010X00300.jpg", "0001C2F0100X00900.jpg"]


def test_load_duke_ignores_hidden_and_non_image_files(duke_root: Path) -> None:
    _touch(duke_root / "train/0002/0001/.DS_Store")
    _touch(duke_root / "train/0002/0001/notes.txt")
    _touch(duke_root / "train/README")
    assert len(load_duke(str(duke_root), dense_step=0).train[1].frames) == 3


def test_load_duke_dense_splits_train_only(duke_root: Path) -> None:
    data = load_duke(str(duke_root), dense_step=40)
    assert [(t.name, len(t.frames)) for t in data.train] == [
        ("0001/0001#0", 40), ("0001/0001#1", 55), ("0002/0001#0", 3)]
    assert data.train[1].times[0] == pytest.approx((30823 + 12 * 40 + 22402 - 1) / 59.94)
    assert [len(t.frames) for t in data.gallery] == [3, 1]
    assert data.meta["dense_step"] == 40


@pytest.mark.parametrize(("length", "pieces"), [
    (39, [39]), (40, [40]), (79, [79]), (80, [40, 40]), (95, [40, 55]), (120, [40, 40, 40]), (1, [1]),
])
def test_split_dense_is_the_authors_rule_the_last_piece_takes_the_remainder(length, pieces) -> None:
    whole = Tracklet(frames=tuple(f"f{i}" for i in range(length)), person_id=3, camera=2, times=tuple(range(length)),
                     name="t")
    cut = split_dense((whole,), step=40)
    assert [len(p.frames) for p in cut] == pieces
    assert [p.name for p in cut] == [f"t#{k}" for k in range(len(pieces))]
    assert sum((p.frames for p in cut), ()) == whole.frames and sum((p.times for p in cut), ()) == whole.times
    assert {(p.person_id, p.camera) for p in cut} == {(3, 2)}


def test_split_dense_keeps_short_tracklets_and_missing_times() -> None:
    short = Tracklet(frames=("a", "b"), person_id=-1, camera=0, times=None, name="s")
    pieces = split_dense((short,), step=40)
    assert [(p.name, p.frames, p.times) for p in pieces] == [("s#0", ("a", "b"), None)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: shutil.rmtree(r / "query"), "folder {r}/query is missing; it should hold <pid>/<tracklet>/<frames>.jpg folders"),
        (lambda r: _touch(r / "train/0002/0001/0002_C1_F9.jpg"),
         "cannot parse frame name {r}/train/0002/0001/0002_C1_F9.jpg; expected e.g. 0001C6F0099X30823.jpg or 0001_C6_F0099_X30823.jpg"),
        (lambda r: (r / "gallery/0009/0002").mkdir(),
         "tracklet folder {r}/gallery/0009/0002 has no images (.jpg, .jpeg, .png); remove it or restore its frames"),
        (lambda r: _touch(r / "query/0001/0002/0001C3F0003X00124.jpg"),
         "tracklet {r}/query/0001/0002 mixes cameras 2 (0001C2F0001X00100.jpg) and 3 (0001C3F0003X00124.jpg); a tracklet has one camera"),
        (lambda r: _touch(r / "query/0001/0002/0002C2F0003X00124.jpg"),
         "frame {r}/query/0001/0002/0002C2F0003X00124.jpg names person 2 but lies in person folder 1"),
        (lambda r: _duke_tracklet(r, "gallery", 5, 1, 9, [1]),
         "frame {r}/gallery/0005/0001/0005C9F0001X00001.jpg has camera 9, outside 1..8"),
        (lambda r: (r / "train/abc").mkdir(),
         "person folder {r}/train/abc is not a number; {r}/train should hold <pid>/<tracklet>/<frames>.jpg folders"),
        (lambda r: (r / "train/0003").mkdir(),
         "person folder {r}/train/0003 has no tracklet folders; expected {r}/train/0003/<tracklet>/<frames>.jpg"),
        (lambda r: shutil.rmtree(r / "gallery") or (r / "gallery").mkdir(),
         "found no tracklets in {r}/gallery; it should hold <pid>/<tracklet>/<frames>.jpg folders"),
        (lambda r: _touch(r / "query/0001/0002/0001_C2_F0002_X00112.jpg"),
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
    _duke_tracklet(root, "train", 1, 1, 10, [5, 17, 29, 41, 53])
    _duke_tracklet(root, "query", 1, 2, 2, [3])
    _duke_tracklet(root, "gallery", 2, 1, 1, [4], underscores=True)
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


# --------------------------------------------------------------------------------------------- MARS


def _mars_tree(root: Path, *, num_cameras: int = 6) -> Path:
    """train: person 1 cam 1 (3 frames), person 2 cam 3 (2), junk; test: 6 tracks, queries = rows 1, 4 (junk), 6."""
    train_names = [f"0001C1T0001F{k:03d}.jpg" for k in range(1, 4)] + ["0002C3T0002F001.jpg", "0002C3T0002F002.jpg",
                                                                        "00-1C2T0001F001.jpg"]
    test_names = ["0003C2T0001F001.jpg", "0003C2T0001F002.jpg",  # 1: query, person 3 cam 2
                  "0003C1T0002F001.jpg",  # 2: gallery, person 3 cam 1
                  "0000C4T0001F001.jpg",  # 3: gallery distractor
                  "00-1C5T0001F001.jpg",  # 4: junk listed as a query
                  "00-1C5T0002F001.jpg",  # 5: junk in the gallery
                  f"0004C{num_cameras}T0001F001.jpg"]  # 6: query, person 4 last camera
    track_train = np.array([[1, 3, 1, 1], [4, 5, 2, 3], [6, 6, -1, 2]])
    track_test = np.array([[1, 2, 3, 2], [3, 3, 3, 1], [4, 4, 0, 4], [5, 5, -1, 5], [6, 6, -1, 5],
                           [7, 7, 4, num_cameras]])
    info = root / "info"
    info.mkdir(parents=True)
    (info / "train_name.txt").write_text("\n".join(train_names) + "\n")
    (info / "test_name.txt").write_text("\n".join(test_names) + "\n")
    scipy.io.savemat(info / "tracks_train_info.mat", {"track_train_info": track_train.astype(np.float64)})
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": track_test.astype(np.float64)})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([[1, 4, 6]], dtype=np.float64)})
    for home, names in (("bbox_train", train_names), ("bbox_test", test_names)):
        for name in names:
            _touch(root / home / name[:4] / name)
    return root


def test_load_mars_drops_junk_and_splits_query_gallery(tmp_path: Path) -> None:
    root = _mars_tree(tmp_path / "mars")
    data = load_mars(str(root))
    assert [(t.name, t.person_id, t.camera, len(t.frames)) for t in data.train] == [
        ("0001/0001C1T0001", 1, 0, 3), ("0002/0002C3T0002", 2, 2, 2)]
    assert data.train[0].frames[2] == str(root / "bbox_train/0001/0001C1T0001F003.jpg")
    assert [(t.person_id, t.camera) for t in data.query] == [(3, 1), (4, 5)]
    assert [(t.person_id, t.camera) for t in data.gallery] == [(3, 0), (0, 3)]
    assert data.query[0].frames == (str(root / "bbox_test/0003/0003C2T0001F001.jpg"),
                                    str(root / "bbox_test/0003/0003C2T0001F002.jpg"))
    assert (data.meta["query_rows"], data.meta["gallery_rows"]) == ([0, 5], [1, 2])
    assert (data.has_times, data.num_cameras, data.fps, data.query[0].times) == (False, 6, None, None)


def test_query_gallery_rows_drops_junk_from_both() -> None:
    query_index = np.array([5, 0, 3])
    person = np.array([7, -1, 0, -1, 2, 7])
    query, gallery = query_gallery_rows(query_index, person)
    assert query.tolist() == [5, 0] and gallery.tolist() == [2, 4]
    assert query_index.tolist() == [5, 0, 3]


def _rewrite_mat(path: Path, key: str, value) -> None:
    scipy.io.savemat(path, {key: np.asarray(value, dtype=np.float64)})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: (r / "info/test_name.txt").unlink(),
         "file {r}/info/test_name.txt is missing; it should be the MARS frame name list, one name per line"),
        (lambda r: shutil.rmtree(r / "bbox_test"), "folder {r}/bbox_test is missing; it should hold the test frames in <pid>/<name>.jpg"),
        (lambda r: scipy.io.savemat(r / "info/query_IDX.mat", {"query_idx": np.ones(1)}),
         "{r}/info/query_IDX.mat has no 'query_IDX' array (found: query_idx)"),
        (lambda r: (r / "info/tracks_train_info.mat").write_text("not a mat file"),
         "cannot read {r}/info/tracks_train_info.mat as a MATLAB .mat file"),
        (lambda r: _rewrite_mat(r / "info/tracks_train_info.mat", "track_train_info", [[1, 3, 1, 1], [4, 7, 2, 3]]),
         "{r}/info/tracks_train_info.mat: row 2 spans names 4..7, outside 1..6 of its name list"),
        (lambda r: _rewrite_mat(r / "info/query_IDX.mat", "query_IDX", [1, 8]),
         "{r}/info/query_IDX.mat: query_IDX entry 2 is 8, outside 1..6 test tracks"),
        (lambda r: _rewrite_mat(r / "info/tracks_train_info.mat", "track_train_info", [[1, 3, 1, 2], [4, 5, 2, 3]]),
         "{r}/info/tracks_train_info.mat row 1: person 1 camera 2, but its first frame 0001C1T0001F001.jpg says person 0001 camera 1"),
        (lambda r: _rewrite_mat(r / "info/tracks_train_info.mat", "track_train_info", [[1, 4, 1, 1]]),
         "{r}/info/tracks_train_info.mat row 1: frames 0001C1T0001F001.jpg and 0002C3T0002F001.jpg belong to different tracklets"),
        (lambda r: _rewrite_mat(r / "info/tracks_train_info.mat", "track_train_info", [[1, 3, 1, 7]]),
         "{r}/info/tracks_train_info.mat row 1: camera 7 is outside 1..6"),
        (lambda r: (r / "bbox_test/0004/0004C6T0001F001.jpg").unlink(),
         "{r}/info/tracks_test_info.mat row 6: frame {r}/bbox_test/0004/0004C6T0001F001.jpg does not exist; "
         "is the MARS archive fully extracted?"),
    ],
    ids=["names", "bbox", "key", "not-mat", "index-range", "query-range", "camera-mismatch", "mixed-tracklet",
         "camera-range", "first-frame"],
)
def test_load_mars_bad_input_names_the_file(tmp_path: Path, make, message: str) -> None:
    root = _mars_tree(tmp_path / "mars")
    make(root)
    with pytest.raises(AuxReidError) as error:
        load_mars(str(root))
    assert str(error.value).startswith(message.format(r=root))


def test_load_synth_mars_layout_allows_more_cameras(tmp_path: Path) -> None:
    root = _mars_tree(tmp_path / "synth", num_cameras=9)
    _synth_json(root, layout="mars", fps=25.0, camera_offsets=[1] * 9)
    data = load_synth(str(root), dense_step=40)
    assert (data.name, data.num_cameras, data.has_times) == ("synth", 9, False)
    assert data.query[1].camera == 8 and len(data.train) == 2


# ----------------------------------------------------------------------------------------- manifest


def _images(folder: Path, names: list[str]) -> None:
    for name in names:
        _touch(folder / name)


def test_load_manifest_csv_with_timestamps(tmp_path: Path) -> None:
    _images(tmp_path / "img", ["a1.jpg", "a2.jpg", "b1.jpg", "c1.jpg"])
    absolute = tmp_path / "img" / "c1.jpg"
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,tracklet,camera,split,person_id,timestamp\n"
        "img/a2.jpg,A,10,train,,12.5\n"
        "img/a1.jpg,A,10,train,,12.0\n"
        "img/b1.jpg,B,2,query,7,3.25\n"
        f"{absolute},C,entrance,gallery,7,4\n"
    )
    data = load_manifest(str(manifest))
    assert data.meta["cameras"] == ["10", "2", "entrance"]
    a = data.train[0]
    assert (a.name, a.person_id, a.camera, a.times) == ("A", -1, 0, (12.0, 12.5))
    assert a.frames == (str(tmp_path / "img/a1.jpg"), str(tmp_path / "img/a2.jpg"))
    assert [(t.name, t.person_id, t.camera) for t in data.query + data.gallery] == [("B", 7, 1), ("C", 7, 2)]
    assert (data.name, data.has_times, data.num_cameras, data.root) == ("manifest", True, 3, str(tmp_path))


def test_manifest_and_mars_train_are_cut_by_dense_step_like_duke(tmp_path: Path) -> None:
    """data.dense_step is never ignored: a manifest's and MARS's train tracklets follow the same rule."""
    names = [f"a{k}.jpg" for k in range(5)]
    _images(tmp_path / "img", [*names, "q.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tracklet,camera,split,person_id,timestamp\n"
                        + "".join(f"img/{n},A,1,train,,{k}\n" for k, n in enumerate(names)) + "img/q.jpg,Q,2,query,1,9\n")
    whole = load_dataset(build_config(({"data": {"dataset": "manifest", "manifest": str(manifest)}}, "t")).data)
    assert [len(t.frames) for t in whole.train] == [5] and whole.meta["dense_step"] == 0  # a manifest's default
    cut = load_dataset(DataConfig(dataset="manifest", manifest=str(manifest), dense_step=2))
    assert [(t.name, len(t.frames), t.times[0]) for t in cut.train] == [("A#0", 2, 0.0), ("A#1", 3, 2.0)]
    assert [len(t.frames) for t in cut.query] == [1] and cut.fingerprint != whole.fingerprint
    mars = load_dataset(DataConfig(dataset="mars", root=str(_mars_tree(tmp_path / "MARS")), dense_step=2))
    assert [len(t.frames) for t in mars.train] == [3, 2] and mars.meta["dense_step"] == 2


def test_load_manifest_sorts_integer_cameras_numerically(tmp_path: Path) -> None:
    _images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tracklet,camera,split\na.jpg,1,10,train\nb.jpg,2,2,train\nc.jpg,3,1,train\n")
    data = load_manifest(str(manifest))
    assert data.meta["cameras"] == ["1", "2", "10"]
    assert [t.camera for t in data.train] == [2, 1, 0]
    assert (data.has_times, data.train[0].times, data.fps) == (False, None, None)


def test_load_manifest_csv_frame_with_manifest_wide_fps(tmp_path: Path) -> None:
    _images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "# recorded at the lab\n# fps = 25\n"
        "path,tracklet,camera,split,frame,fps\n"
        "a.jpg,t1,cam,train,50,\n"
        "b.jpg,t1,cam,train,25,\n"
        "c.jpg,t2,cam,train,100,50\n"
    )
    data = load_manifest(str(manifest))
    assert [t.times for t in data.train] == [(1.0, 2.0), (2.0,)]
    assert data.train[0].frames[0].endswith("b.jpg") and data.fps == 25.0


def test_load_manifest_jsonl_keeps_file_order_without_times(tmp_path: Path) -> None:
    _images(tmp_path / "x", ["2.png", "1.png", "3.png"])
    manifest = tmp_path / "m.jsonl"
    rows = [{"fps": 10},
            {"path": "x/2.png", "tracklet": 5, "camera": "north", "split": "train", "frame": 30},
            {"path": "x/1.png", "tracklet": 5, "camera": "north", "split": "train"},
            {"path": "x/3.png", "tracklet": 6, "camera": "south", "split": "gallery", "person_id": 4, "frame": 7}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_manifest(str(manifest))
    assert [os.path.basename(f) for f in data.train[0].frames] == ["2.png", "1.png"]
    assert (data.has_times, data.train[0].times, data.gallery[0].person_id, data.gallery[0].name) == (False, None, 4, "6")


def test_load_manifest_jsonl_with_frame_and_fps(tmp_path: Path) -> None:
    _images(tmp_path, ["a.jpg", "b.jpg"])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"path": "b.jpg", "tracklet": "t", "camera": 1, "split": "train", "frame": 60, "fps": 30}) + "\n"
        + json.dumps({"path": "a.jpg", "tracklet": "t", "camera": 1, "split": "train", "timestamp": 1.5}) + "\n"
    )
    data = load_manifest(str(manifest))
    assert data.train[0].times == (1.5, 2.0) and data.has_times


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,tracklet,camera,split\nmissing.jpg,t,1,train\n", "{m} line 2: image {d}/missing.jpg does not exist"),
        ("path,tracklet,camera,split\na.jpg,t,1,train\nb.jpg,t,1,query\n",
         "{m} line 3: tracklet 't' has split 'query' but 'train' on line 2; a tracklet has one split"),
        ("path,tracklet,camera,split\na.jpg,t,1,train\nb.jpg,t,2,train\n",
         "{m} line 3: tracklet 't' has camera '2' but '1' on line 2; a tracklet has one camera"),
        ("path,tracklet,camera,split,timestap\na.jpg,t,1,train,3\n",
         "{m} line 1: unknown column 'timestap'; allowed: path, tracklet, camera, split, person_id, timestamp, frame, fps"),
        ("path,tracklet,split\na.jpg,t,train\n", "{m} line 1: missing column 'camera'; required: path, tracklet, camera, split"),
        ("path,tracklet,camera,split\na.jpg,t,1,test\n", "{m} line 2: split is 'test', expected one of train, query, gallery"),
        ("path,tracklet,camera,split,frame\na.jpg,t,1,train,4\n",
         "{m} line 2: frame given without fps; add an fps column or a '# fps = 25' line before the header"),
        ("path,tracklet,camera,split,frame,timestamp\na.jpg,t,1,train,4,0.5\n", "{m} line 2: give either timestamp or frame, not both"),
        ("path,tracklet,camera,split,timestamp\na.jpg,t,1,train,soon\n", "{m} line 2: timestamp is 'soon', expected a finite number"),
        ("path,tracklet,camera,split,person_id\na.jpg,t,1,train,x7\n",
         "{m} line 2: person_id is 'x7', expected an integer within int64 (or empty for unknown)"),
        ("# fsp = 25\npath,tracklet,camera,split\na.jpg,t,1,train\n", "{m}: unknown manifest setting 'fsp'; known settings: fps"),
        ("path,tracklet,camera,split\na.jpg,t,1,query\n", "{m} has no train rows; at least the train split is needed"),
        ("path,tracklet,camera,split\n", "{m} lists no frames; add one row per frame (columns path, tracklet, camera, split)"),
        ("path,tracklet,camera,split\na.jpg,,1,train\n", "{m} line 2: tracklet is empty"),
        ("path,tracklet,camera,split\na.jpg,t,1,train\n./a.jpg,u,1,train\n",
         "{m} line 3: image {d}/a.jpg is already listed on line 2"),
    ],
    ids=["missing-image", "two-splits", "two-cameras", "unknown-column", "missing-column", "bad-split", "no-fps",
         "both-times", "bad-number", "bad-person", "unknown-setting", "no-train", "empty", "empty-tracklet", "duplicate"],
)
def test_load_manifest_bad_input_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    _images(tmp_path, ["a.jpg", "b.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(AuxReidError) as error:
        load_manifest(str(manifest))
    assert str(error.value) == message.format(m=manifest, d=tmp_path)


def test_load_manifest_bad_file(tmp_path: Path) -> None:
    with pytest.raises(AuxReidError, match=f"^file {tmp_path}/m.csv is missing; it should be a .csv or .jsonl manifest"):
        load_manifest(str(tmp_path / "m.csv"))
    (tmp_path / "m.txt").write_text("path\n")
    with pytest.raises(AuxReidError, match=f"^manifest {tmp_path}/m.txt must end in .csv or .jsonl, found '.txt'$"):
        load_manifest(str(tmp_path / "m.txt"))
    (tmp_path / "m.jsonl").write_text('{"path": "a.jpg", "tracklet": 1, "camera": 1, "split": "train"}\n[1]\n')
    _images(tmp_path, ["a.jpg"])
    with pytest.raises(AuxReidError, match=f"^{tmp_path}/m.jsonl line 2: expected a JSON object, found list$"):
        load_manifest(str(tmp_path / "m.jsonl"))


def test_load_manifest_partial_times_means_no_times(tmp_path: Path) -> None:
    _images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tracklet,camera,split,timestamp\nb.jpg,t,1,train,2\na.jpg,t,1,train,1\nc.jpg,u,1,train,\n")
    data = load_manifest(str(manifest))
    assert data.has_times is False and data.train[0].times is None
    assert [os.path.basename(f) for f in data.train[0].frames] == ["a.jpg", "b.jpg"]


# -------------------------------------------------------------------------------- fingerprint, stats


def test_fingerprint_is_stable_moves_with_the_folder_and_changes_with_a_tracklet(tmp_path: Path) -> None:
    root = _duke_tree(tmp_path / "a")
    first = load_duke(str(root), dense_step=0).fingerprint
    assert load_duke(str(root), dense_step=0).fingerprint == first
    moved = shutil.copytree(root, tmp_path / "b")
    assert load_duke(str(moved), dense_step=0).fingerprint == first
    assert load_duke(str(root), dense_step=40).fingerprint != first
    _touch(root / "query/0001/0002/0001C2F0003X00124.jpg")
    assert load_duke(str(root), dense_step=0).fingerprint != first
    (moved / "gallery/0009/0001/0009C8F0001X00007.jpg").rename(moved / "gallery/0009/0001/0009C8F0001X00008.jpg")
    assert load_duke(str(moved), dense_step=0).fingerprint != first


def test_split_stats_counts_each_split() -> None:
    def t(n: int, pid: int, cam: int, start: float) -> Tracklet:
        return Tracklet(frames=("f",) * n, person_id=pid, camera=cam, times=(start,) * (n - 1) + (start + n,), name="")

    data = DatasetSplit(name="x", root="/", train=(t(2, -1, 0, 5.0), t(4, 1, 1, 1.0), t(9, 1, 1, 0.5)),
                        query=(t(3, 2, 0, 10.0),), gallery=(), has_times=True, num_cameras=2)
    rows = split_stats(data)
    assert rows[0] == SplitStats("train", 1, 3, 15, 2, 2, 5.0, 9, 0.5, 9.5)
    assert rows[1] == SplitStats("query", 1, 1, 3, 1, 3, 3.0, 3, 10.0, 13.0)
    assert rows[2] == SplitStats("gallery", 0, 0, 0, 0, 0, 0.0, 0, None, None)

"""Tests for stages/data/mars.py: the MARS loader on a tiny tree in the release layout (info/ .mat files, bbox_*)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from helpers_data import mars_tree
from stages.data.mars import load_mars, query_gallery_rows
from stages.errors import AuxReidError


def test_load_mars_drops_junk_and_splits_query_gallery(tmp_path: Path) -> None:
    root = mars_tree(tmp_path / "mars")
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
    assert data.camera_labels == ("C1", "C2", "C3", "C4", "C5", "C6")


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
    root = mars_tree(tmp_path / "mars")
    make(root)
    with pytest.raises(AuxReidError) as error:
        load_mars(str(root))
    assert str(error.value).startswith(message.format(r=root))

"""MARS (Zheng et al., ECCV 2016) from its release layout: `bbox_train/`, `bbox_test/` and `info/`.

`info/tracks_{train,test}_info.mat` hold one row per tracklet, (start, end, person id, camera id),
with 1-based inclusive indices into `info/{train,test}_name.txt`; `info/query_IDX.mat` holds the
1-based test rows that are queries, every other test row is gallery. Frames live in
`bbox_<split>/<first 4 characters of the name>/<name>`. Person id -1 marks junk tracklets (dropped
from query and gallery), 0 marks distractors (kept). MARS has no timestamps.
"""

from __future__ import annotations

import os
import re

import numpy as np
import scipy.io

from stages.data.base import DatasetSplit, Tracklet, require_dir, require_file
from stages.errors import AuxReidError

MARS_CAMERAS = 6
JUNK_ID = -1

_LAYOUT = "hold bbox_train/, bbox_test/ and info/"
_FRAME_NAME = re.compile(r"(.{4})C(\d+)T(\d+)F(\d+)\.\w+")


def load_mars(root: str) -> DatasetSplit:
    """Parse MARS; junk tracklets dropped, cameras 0-based.

    Args:
        root: folder holding `bbox_train/`, `bbox_test/`, `info/`.

    Raises:
        AuxReidError: a missing folder or info file, a malformed .mat, indices out of range, a track
            row that disagrees with its frame names, or a missing first frame.
    """
    return read_mars_layout(root, name="mars", num_cameras=MARS_CAMERAS, meta={})


def read_mars_layout(root: str, *, name: str, num_cameras: int, meta: dict) -> DatasetSplit:
    """Read the MARS layout (also used by synthetic datasets written in it).

    Args:
        root: folder holding `bbox_train/`, `bbox_test/`, `info/`.
        name: dataset name recorded in the split.
        num_cameras: camera ids must lie in 1..num_cameras.
        meta: extra facts kept in `DatasetSplit.meta`.
    """
    root = require_dir(root, _LAYOUT)
    info = require_dir(os.path.join(root, "info"), "hold train_name.txt, test_name.txt and the track .mat files")
    train_dir = require_dir(os.path.join(root, "bbox_train"), "hold the train frames in <pid>/<name>.jpg")
    test_dir = require_dir(os.path.join(root, "bbox_test"), "hold the test frames in <pid>/<name>.jpg")
    train_names = _read_names(os.path.join(info, "train_name.txt"))
    test_names = _read_names(os.path.join(info, "test_name.txt"))
    train_info_path = os.path.join(info, "tracks_train_info.mat")
    test_info_path = os.path.join(info, "tracks_test_info.mat")
    query_path = os.path.join(info, "query_IDX.mat")
    train_rows = _read_track_info(train_info_path, "track_train_info", num_names=len(train_names))
    test_rows = _read_track_info(test_info_path, "track_test_info", num_names=len(test_names))
    query_rows, gallery_rows = query_gallery_rows(_read_query_index(query_path, num_tracks=len(test_rows)), test_rows[:, 2])
    train_keep = np.flatnonzero(train_rows[:, 2] != JUNK_ID)

    def build(rows: np.ndarray, keep: np.ndarray, names: list[str], home: str, source: str) -> tuple[Tracklet, ...]:
        return tuple(
            _build_tracklet(rows[i], names, home=home, source=source, row=int(i), num_cameras=num_cameras) for i in keep
        )

    return DatasetSplit(
        name=name,
        root=root,
        train=build(train_rows, train_keep, train_names, train_dir, train_info_path),
        query=build(test_rows, query_rows, test_names, test_dir, test_info_path),
        gallery=build(test_rows, gallery_rows, test_names, test_dir, test_info_path),
        has_times=False,
        num_cameras=num_cameras,
        fps=None,
        meta={**meta, "query_rows": query_rows.tolist(), "gallery_rows": gallery_rows.tolist()},
    )


def query_gallery_rows(query_index: np.ndarray, test_person_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the test tracks into query and gallery rows, junk (person id -1) dropped from both.

    Args:
        query_index: (n_query,) 0-based test rows that are queries, in query order.
        test_person_ids: (n_test,) person id of every test track.

    Returns:
        (query rows in query order, gallery rows in test order), 0-based indices into the test tracks.
    """
    is_query = np.zeros(len(test_person_ids), dtype=bool)
    is_query[query_index] = True
    not_junk = test_person_ids != JUNK_ID
    query = query_index[not_junk[query_index]]
    gallery = np.flatnonzero(~is_query & not_junk)
    return query.astype(np.int64), gallery.astype(np.int64)


def _read_names(path: str) -> list[str]:
    require_file(path, "the MARS frame name list, one name per line")
    with open(path, encoding="utf-8") as handle:
        names = [line.strip() for line in handle if line.strip()]
    if not names:
        raise AuxReidError(f"{path} lists no frame names; restore it from the MARS release")
    return names


def _load_mat_key(path: str, key: str) -> np.ndarray:
    require_file(path, f"a MATLAB file holding '{key}'")
    try:
        content = scipy.io.loadmat(path)
    except (ValueError, OSError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        raise AuxReidError(f"cannot read {path} as a MATLAB .mat file ({exc}); restore it from the MARS release") from exc
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise AuxReidError(f"{path} has no '{key}' array (found: {', '.join(found) or 'none'})")
    array = np.asarray(content[key])
    if array.dtype.kind not in "iuf" or (array.dtype.kind == "f" and not np.all(array == np.round(array))):
        raise AuxReidError(f"{path}: '{key}' must hold integers, found dtype {array.dtype}")
    return array.astype(np.int64)


def _read_track_info(path: str, key: str, *, num_names: int) -> np.ndarray:
    """(n_tracks, 4) rows (start, end, person id, camera id), indices checked against the name list."""
    rows = _load_mat_key(path, key)
    if rows.ndim != 2 or rows.shape[1] != 4 or not len(rows):
        raise AuxReidError(f"{path}: '{key}' has shape {rows.shape}, expected (n_tracks, 4) rows (start, end, pid, camera)")
    bad = np.flatnonzero((rows[:, 0] < 1) | (rows[:, 1] < rows[:, 0]) | (rows[:, 1] > num_names))
    if bad.size:
        start, end = rows[bad[0], :2]
        raise AuxReidError(
            f"{path}: row {bad[0] + 1} spans names {start}..{end}, outside 1..{num_names} of its name list"
        )
    return rows


def _read_query_index(path: str, *, num_tracks: int) -> np.ndarray:
    """0-based test rows of the queries."""
    index = _load_mat_key(path, "query_IDX").ravel()
    bad = np.flatnonzero((index < 1) | (index > num_tracks))
    if bad.size:
        raise AuxReidError(f"{path}: query_IDX entry {bad[0] + 1} is {index[bad[0]]}, outside 1..{num_tracks} test tracks")
    if len(np.unique(index)) != len(index):
        raise AuxReidError(f"{path}: query_IDX lists a test track twice")
    return index - 1


def _build_tracklet(track: np.ndarray, names: list[str], *, home: str, source: str, row: int, num_cameras: int) -> Tracklet:
    """One (non-junk) track row: its frames must share one person/camera/tracklet stem; the first must exist."""
    start, end, person_id, camera = (int(v) for v in track)
    frames = names[start - 1 : end]
    where = f"{source} row {row + 1}"
    if not 1 <= camera <= num_cameras:
        raise AuxReidError(f"{where}: camera {camera} is outside 1..{num_cameras}")
    match = _FRAME_NAME.fullmatch(frames[0])
    if match is None:
        raise AuxReidError(f"{where}: cannot parse frame name {frames[0]}; expected e.g. 0001C1T0001F001.jpg")
    person_text, camera_text = match.group(1), match.group(2)
    if not person_text.isdigit() or int(person_text) != person_id or int(camera_text) != camera:
        raise AuxReidError(
            f"{where}: person {person_id} camera {camera}, but its first frame {frames[0]} says person {person_text} camera {camera_text}"
        )
    stem = frames[0][: match.start(4)]
    odd = next((f for f in frames if not f.startswith(stem)), None)
    if odd is not None:
        raise AuxReidError(f"{where}: frames {frames[0]} and {odd} belong to different tracklets")
    folder = os.path.join(home, person_text)
    first = os.path.join(folder, frames[0])
    if not os.path.isfile(first):
        raise AuxReidError(f"{where}: frame {first} does not exist; is the MARS archive fully extracted?")
    prefix = folder + os.sep
    return Tracklet(
        frames=tuple(prefix + f for f in frames),
        person_id=person_id,
        camera=camera - 1,
        times=None,
        name=f"{person_text}/{stem[:-1]}",
    )

"""Tiny dataset trees in the real on-disk layouts (DukeMTMC-VideoReID, MARS, manifests) for the stages/data tests.

The image files are empty: the loaders never open images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io


def touch(path: Path) -> Path:
    """An empty file at `path`, its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def frame_name(pid: int, cam: int, rank: int, x: int, *, underscores: bool) -> str:
    """A DukeMTMC-VideoReID frame name, e.g. 0001C6F0099X30823.jpg (or 0001_C6_F0099_X30823.jpg with `underscores`)."""
    sep = "_" if underscores else ""
    return f"{pid:04d}{sep}C{cam}{sep}F{rank:04d}{sep}X{x:05d}.jpg"


def duke_tracklet(root: Path, split: str, pid: int, track: int, cam: int, xs: list[int], *, first_rank: int = 1,
                  underscores: bool = False) -> Path:
    """root/split/<pid>/<track>/ with one empty frame per frame number in `xs`, ranks counting from `first_rank`."""
    folder = root / split / f"{pid:04d}" / f"{track:04d}"
    for k, x in enumerate(xs):
        touch(folder / frame_name(pid, cam, first_rank + k, x, underscores=underscores))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def duke_tree(root: Path) -> Path:
    """train: person 1 (camera 6, 95 frames) and person 2 (camera 1, 3 frames, underscore spelling);
    query: person 1 camera 2; gallery: person 1 camera 6 and distractor person 9 camera 8."""
    duke_tracklet(root, "train", 1, 1, 6, [30823 + 12 * k for k in range(95)])
    duke_tracklet(root, "train", 2, 1, 1, [1, 13, 25], first_rank=2, underscores=True)
    duke_tracklet(root, "query", 1, 2, 2, [100, 112])
    duke_tracklet(root, "gallery", 1, 3, 6, [500, 512, 524], underscores=True)
    duke_tracklet(root, "gallery", 9, 1, 8, [7])
    return root


def mars_tree(root: Path, *, num_cameras: int = 6) -> Path:
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
            touch(root / home / name[:4] / name)
    return root


def touch_images(folder: Path, names: list[str]) -> None:
    """Empty image files `names` in `folder`."""
    for name in names:
        touch(folder / name)

"""Tracklet names and frame paths as flat columns, so features.h5 and clusters.h5 are usable without the loader.

A split's frames are stored once as one text column of paths relative to the dataset root, in
tracklet order, plus (n + 1,) offsets: tracklet i owns paths[offsets[i]:offsets[i + 1]]. Duke's
~600k frames are then one flat dataset instead of 11k small ones. The dataset root at the time
of writing is kept as the artifact's `data_root` attribute.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stages.data.base import Tracklet
from stages.errors import AuxReidError

#: The columns a frame table adds to a features split group or to clusters.h5.
TABLE_COLUMNS = ("tracklet_name", "frame_offsets", "frame_paths")


def relative_path(path: str, root: str) -> str:
    """`path` relative to `root`, '/'-separated; the prefix test avoids os.path.relpath's cost on 600k frames."""
    prefix = root.rstrip(os.sep) + os.sep
    relative = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
    return relative.replace(os.sep, "/")


def frame_table(tracklets: Sequence[Tracklet], root: str) -> dict[str, np.ndarray]:
    """The TABLE_COLUMNS of one split.

    Args:
        tracklets: the split's tracklets, in the order of the artifact's rows.
        root: the dataset root the paths are made relative to.

    Returns:
        tracklet_name (n,) str, frame_offsets (n + 1,) int64, frame_paths (total frames,) str.
    """
    counts = np.fromiter((len(t.frames) for t in tracklets), dtype=np.int64, count=len(tracklets))
    paths = [relative_path(frame, root) for t in tracklets for frame in t.frames]
    return {
        "tracklet_name": np.array([t.name for t in tracklets], dtype=str),
        "frame_offsets": np.r_[0, np.cumsum(counts)].astype(np.int64),
        "frame_paths": np.array(paths, dtype=str),
    }


@dataclass(frozen=True)
class FrameTable:
    """Validated tracklet names and frames of n rows.

    Attributes:
        names: (n,) tracklet names.
        offsets: (n + 1,) int64, non-decreasing from 0 to len(paths).
        paths: (total frames,) paths relative to the dataset root.
    """

    names: np.ndarray
    offsets: np.ndarray
    paths: np.ndarray

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray], *, rows: int, source: str, redo: str) -> "FrameTable":
        """Check the TABLE_COLUMNS read from an artifact against its `rows` rows.

        Args:
            columns: at least the TABLE_COLUMNS.
            rows: the artifact's number of tracklet rows.
            source: the file, for messages.
            redo: the command that re-creates the file, for messages.

        Raises:
            AuxReidError: lengths or offsets that do not fit, naming the file.
        """
        names, offsets, paths = (np.asarray(columns[key]) for key in TABLE_COLUMNS)
        if names.shape != (rows,) or offsets.shape != (rows + 1,):
            raise AuxReidError(f"{source}: tracklet_name {names.shape} and frame_offsets {offsets.shape} do not fit its "
                               f"{rows} rows; the file is damaged, re-create it with `{redo}`")
        if offsets[0] != 0 or offsets[-1] != len(paths) or (np.diff(offsets) < 0).any():
            raise AuxReidError(f"{source}: frame_offsets are not non-decreasing from 0 to {len(paths)} (the number of "
                               f"frame_paths); the file is damaged, re-create it with `{redo}`")
        return cls(names=names, offsets=offsets.astype(np.int64), paths=paths)

    def frames(self, row: int) -> np.ndarray:
        """The relative frame paths of tracklet row `row`, in temporal order."""
        return self.paths[self.offsets[row]:self.offsets[row + 1]]

    @property
    def frame_owner(self) -> np.ndarray:
        """(total frames,) the row each frame belongs to."""
        return np.repeat(np.arange(len(self.names), dtype=np.int64), np.diff(self.offsets))

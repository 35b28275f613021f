"""`Spans`: the camera and time span of each tracklet of a split, the input of TOC and STS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spans:
    """Camera and closed time span [start, end] (seconds, global clock) of n tracklets.

    Attributes:
        camera: (n,) int64 0-based camera per tracklet.
        start: (n,) float64 first frame time.
        end: (n,) float64 last frame time, >= start.
    """

    camera: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __post_init__(self) -> None:
        camera = np.asarray(self.camera, dtype=np.int64).reshape(-1)
        start = np.asarray(self.start, dtype=np.float64).reshape(-1)
        end = np.asarray(self.end, dtype=np.float64).reshape(-1)
        if not camera.shape == start.shape == end.shape:
            raise ValueError(
                f"camera {camera.shape}, start {start.shape} and end {end.shape} must have the same length"
            )
        object.__setattr__(self, "camera", camera)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def __len__(self) -> int:
        return int(self.camera.shape[0])

    def take(self, rows: np.ndarray) -> "Spans":
        """The spans of `rows` (an index array, repeats allowed), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return Spans(self.camera[rows], self.start[rows], self.end[rows])

"""Records every dataset loader yields: tracklets with frames, person id, camera and frame times."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from stages.errors import AuxReidError


@dataclass(frozen=True)
class Tracklet:
    """One tracklet: its frames in temporal order and what is known about it.

    Attributes:
        frames: absolute image paths, temporal order.
        person_id: identity (-1 unknown; 0 marks MARS distractors). Train ids are used only for
            inspection metrics, never for training or clustering.
        camera: 0-based camera index.
        times: per-frame time in seconds on the dataset's global clock, or None when the dataset has
            no timestamps (MARS).
        name: stable identifier within its split (e.g. "0001/0001C6T0003" or the manifest's id).
    """

    frames: tuple[str, ...]
    person_id: int
    camera: int
    times: tuple[float, ...] | None = None
    name: str = ""

    @property
    def start(self) -> float:
        assert self.times is not None
        return self.times[0]

    @property
    def end(self) -> float:
        assert self.times is not None
        return self.times[-1]


SPLITS = ("train", "query", "gallery")


def numbered_camera_labels(count: int) -> tuple[str, ...]:
    """C1..C`count`: the camera names of Duke's and MARS's frame files (and the synthetic network's), whose
    cameras are numbered from 1 where the pipeline's indices start at 0."""
    return tuple(f"C{number}" for number in range(1, count + 1))


@dataclass(frozen=True)
class DatasetSplit:
    """The three tracklet lists of a dataset, plus what every stage needs to know about it.

    Attributes:
        camera_labels: camera index -> the dataset's own name for it (a manifest's camera values, C1.. for the
            datasets that number cameras from 1 in their file names), so people see the cameras they know;
            left empty, C1..C`num_cameras`.
    """

    name: str
    root: str
    train: tuple[Tracklet, ...]
    query: tuple[Tracklet, ...]
    gallery: tuple[Tracklet, ...]
    has_times: bool
    num_cameras: int
    fps: float | None = None
    meta: dict = field(default_factory=dict, hash=False, compare=False)
    camera_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        labels = tuple(self.camera_labels) or numbered_camera_labels(self.num_cameras)
        if len(labels) != self.num_cameras:
            raise ValueError(f"{len(labels)} camera labels for {self.num_cameras} cameras")
        object.__setattr__(self, "camera_labels", labels)

    def split(self, which: str) -> tuple[Tracklet, ...]:
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}")
        return getattr(self, which)

    @property
    def fingerprint(self) -> str:
        """Hash of the sorted tracklet list of every split, so artifacts can refuse another dataset.

        Each tracklet contributes its name, frame count, person id, camera, first and last frame file
        name (not the folder, so moving the dataset keeps the fingerprint) and its time span.
        """
        digest = hashlib.sha256(self.name.encode())
        for which in SPLITS:
            rows = sorted(_fingerprint_row(which, t) for t in self.split(which))
            digest.update("\n".join(rows).encode())
        return digest.hexdigest()[:16]

    def arrays(self, which: str) -> dict[str, np.ndarray]:
        """Per-tracklet columns of one split (person id, camera, frame count, start/end time)."""
        tracklets = self.split(which)
        out = {
            "person_id": np.array([t.person_id for t in tracklets], dtype=np.int64),
            "camera": np.array([t.camera for t in tracklets], dtype=np.int64),
            "num_frames": np.array([len(t.frames) for t in tracklets], dtype=np.int64),
        }
        if self.has_times:
            out["start"] = np.array([t.times[0] for t in tracklets], dtype=np.float64)
            out["end"] = np.array([t.times[-1] for t in tracklets], dtype=np.float64)
        return out


def _fingerprint_row(which: str, tracklet: Tracklet) -> str:
    first = os.path.basename(tracklet.frames[0]) if tracklet.frames else ""
    last = os.path.basename(tracklet.frames[-1]) if tracklet.frames else ""
    span = f"{tracklet.times[0]:.6f}|{tracklet.times[-1]:.6f}" if tracklet.times else "-"
    return f"{which}|{tracklet.name}|{len(tracklet.frames)}|{tracklet.person_id}|{tracklet.camera}|{first}|{last}|{span}"


def require_dir(path: str, what: str) -> str:
    """Absolute path of a folder the loader needs, or an error naming it and what it should hold.

    Args:
        path: the folder.
        what: completes "... is missing; it should ..." for the message (e.g. "hold train/, query/, gallery/").
    """
    if not path:
        raise AuxReidError(f"no dataset folder given (data.root is empty); set it to a folder that should {what}")
    if not os.path.isdir(path):
        raise AuxReidError(f"folder {path} is missing; it should {what}")
    return os.path.abspath(path)


def require_file(path: str, what: str) -> str:
    """Absolute path of a file the loader needs, or an error naming it and what it should be."""
    if not os.path.isfile(path):
        raise AuxReidError(f"file {path} is missing; it should be {what}")
    return os.path.abspath(path)

"""Records every dataset loader yields: tracklets with frames, person id, camera and frame times."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


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


@dataclass(frozen=True)
class DatasetSplit:
    """The three tracklet lists of a dataset, plus what every stage needs to know about it."""

    name: str
    root: str
    train: tuple[Tracklet, ...]
    query: tuple[Tracklet, ...]
    gallery: tuple[Tracklet, ...]
    has_times: bool
    num_cameras: int
    fps: float | None = None
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    def split(self, which: str) -> tuple[Tracklet, ...]:
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}")
        return getattr(self, which)

    @property
    def fingerprint(self) -> str:
        """Hash of the sorted tracklet list of every split, so artifacts can refuse another dataset."""
        digest = hashlib.sha256(self.name.encode())
        for which in SPLITS:
            rows = sorted(
                f"{which}|{t.name}|{len(t.frames)}|{t.person_id}|{t.camera}" for t in self.split(which)
            )
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

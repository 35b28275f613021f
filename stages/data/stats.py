"""Per-split statistics of a loaded dataset (ids, tracklets, frames, cameras, time span), for people to read."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.config import DataConfig
from stages.data import check_manifest, load_dataset
from stages.data.base import SPLITS, DatasetSplit


@dataclass(frozen=True)
class SplitStats:
    """What `auxreid datasets show` prints for one split.

    Attributes:
        split: train, query or gallery.
        ids: distinct known person ids (-1, unknown, not counted; MARS distractor id 0 counts once).
        tracklets: number of tracklets.
        frames: total frames.
        cameras: distinct cameras present.
        min_frames, mean_frames, max_frames: frames per tracklet (0 when the split is empty).
        start, end: earliest first-frame and latest last-frame time in seconds, or None without times.
    """

    split: str
    ids: int
    tracklets: int
    frames: int
    cameras: int
    min_frames: int
    mean_frames: float
    max_frames: int
    start: float | None
    end: float | None


def split_stats(dataset: DatasetSplit) -> list[SplitStats]:
    """One row per split, in train, query, gallery order.

    Args:
        dataset: a loaded dataset.

    Returns:
        The rows; an empty split gives zeros.
    """
    return [_one_split(which, dataset.arrays(which)) for which in SPLITS]


def _one_split(which: str, columns: dict[str, np.ndarray]) -> SplitStats:
    lengths = columns["num_frames"]
    person = columns["person_id"]
    has_span = "start" in columns and len(lengths) > 0
    return SplitStats(
        split=which,
        ids=int(np.unique(person[person != -1]).size),
        tracklets=int(lengths.size),
        frames=int(lengths.sum()),
        cameras=int(np.unique(columns["camera"]).size),
        min_frames=int(lengths.min()) if lengths.size else 0,
        mean_frames=float(lengths.mean()) if lengths.size else 0.0,
        max_frames=int(lengths.max()) if lengths.size else 0,
        start=float(columns["start"].min()) if has_span else None,
        end=float(columns["end"].max()) if has_span else None,
    )


def load_to_show(dataset: str, *, root: Path | None, manifest: Path | None, dense_step: int) -> tuple[DatasetSplit, float]:
    """`auxreid datasets show`: the dataset as the pipeline would load it, and the seconds that took.

    Raises:
        AuxReidError: --manifest beside another dataset, a manifest dataset with neither a manifest file nor a
            root, or the loader's error.
    """
    config = DataConfig(dataset=dataset, root=str(root or ""), manifest=str(manifest or ""), dense_step=dense_step)
    check_manifest(config, manifest)
    began = time.perf_counter()
    loaded = load_dataset(config)
    return loaded, time.perf_counter() - began

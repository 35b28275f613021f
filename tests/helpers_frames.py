"""Tiny on-disk datasets for the model/extract tests: a few tracklets of small random PNG/JPEG frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stages.config import Config, build_config
from stages.data.base import DatasetSplit, Tracklet


def write_frames(folder: Path, count: int, *, seed: int, size: tuple[int, int] = (24, 12), ext: str = "png") -> tuple[str, ...]:
    """`count` random RGB images of (height, width) `size`; returns their absolute paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        path = folder / f"{i:04d}.{ext}"
        Image.fromarray(pixels).save(path)
        paths.append(str(path.resolve()))
    return tuple(paths)


def tiny_dataset(root: Path, frame_counts: tuple[int, ...] = (5, 3, 9, 1), *, ext: str = "png") -> DatasetSplit:
    """A DatasetSplit whose train, query and gallery each hold tracklets of the given frame counts."""
    splits = {}
    for s, split in enumerate(("train", "query", "gallery")):
        tracklets = []
        for i, count in enumerate(frame_counts):
            frames = write_frames(root / split / f"t{i}", count, seed=100 * s + i, ext=ext)
            tracklets.append(Tracklet(frames=frames, person_id=i % 2, camera=i % 3, name=f"{split}/t{i}"))
        splits[split] = tuple(tracklets)
    return DatasetSplit(name="tiny", root=str(root), has_times=False, num_cameras=3, **splits)


def tiny_config(**extract) -> Config:
    """resnet18 at 32x16, random init, main-process loading: small and fast on a CPU."""
    return build_config((
        {
            "seed": 3,
            "data": {"dataset": "synth", "height": 32, "width": 16, "num_workers": 0},
            "model": {"arch": "resnet18", "pretrained": "none"},
            "extract": {"cluster_seq_len": 4, "cluster_batch": 2, "infer_chunk": 4, "device": "cpu", **extract},
        },
        "test",
    ))

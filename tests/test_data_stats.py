"""Tests for stages/data/stats.py: the per-split statistics of a dataset."""

from __future__ import annotations

from stages.data.base import DatasetSplit, Tracklet
from stages.data.stats import SplitStats, split_stats


def test_split_stats_counts_each_split() -> None:
    def t(n: int, pid: int, cam: int, start: float) -> Tracklet:
        return Tracklet(frames=("f",) * n, person_id=pid, camera=cam, times=(start,) * (n - 1) + (start + n,), name="")

    data = DatasetSplit(name="x", root="/", train=(t(2, -1, 0, 5.0), t(4, 1, 1, 1.0), t(9, 1, 1, 0.5)),
                        query=(t(3, 2, 0, 10.0),), gallery=(), has_times=True, num_cameras=2)
    rows = split_stats(data)
    assert rows[0] == SplitStats("train", 1, 3, 15, 2, 2, 5.0, 9, 0.5, 9.5)
    assert rows[1] == SplitStats("query", 1, 1, 3, 1, 3, 3.0, 3, 10.0, 13.0)
    assert rows[2] == SplitStats("gallery", 0, 0, 0, 0, 0, 0.0, 0, None, None)

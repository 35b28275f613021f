"""Tests for stages/data/dense.py: cutting tracklets into dense_step pieces."""

from __future__ import annotations

import pytest

from stages.data.base import Tracklet
from stages.data.dense import split_dense


@pytest.mark.parametrize(("length", "pieces"), [
    (39, [39]), (40, [40]), (79, [79]), (80, [40, 40]), (95, [40, 55]), (120, [40, 40, 40]), (1, [1]),
])
def test_split_dense_is_the_authors_rule_the_last_piece_takes_the_remainder(length, pieces) -> None:
    whole = Tracklet(frames=tuple(f"f{i}" for i in range(length)), person_id=3, camera=2, times=tuple(range(length)),
                     name="t")
    cut = split_dense((whole,), step=40)
    assert [len(p.frames) for p in cut] == pieces
    assert [p.name for p in cut] == [f"t#{k}" for k in range(len(pieces))]
    assert sum((p.frames for p in cut), ()) == whole.frames and sum((p.times for p in cut), ()) == whole.times
    assert {(p.person_id, p.camera) for p in cut} == {(3, 2)}


def test_split_dense_keeps_short_tracklets_and_missing_times() -> None:
    short = Tracklet(frames=("a", "b"), person_id=-1, camera=0, times=None, name="s")
    pieces = split_dense((short,), step=40)
    assert [(p.name, p.frames, p.times) for p in pieces] == [("s#0", ("a", "b"), None)]

"""Tests of stages/auxinfo/toc.py: sort-and-sweep overlap pairs against hand-made spans and brute force."""

import numpy as np
import pytest

from stages.auxinfo.spans import Spans
from stages.auxinfo.toc import expand_ranges, overlap_pairs, overlap_pairs_between, overlap_pairs_naive


def _random_spans(seed: int, n: int, cameras: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    camera = rng.integers(0, cameras, n)
    start = np.round(rng.uniform(0, 200, n), 1)
    end = start + np.round(rng.exponential(5, n), 1)
    return camera, start, end


def test_expand_ranges_flattens_ranges_owner_by_owner():
    owner, member = expand_ranges(np.array([2, 5, 0]), np.array([4, 5, 1]))
    assert owner.tolist() == [0, 0, 2]
    assert member.tolist() == [2, 3, 0]


def test_overlap_pairs_hand_made_spans():
    camera = np.array([0, 0, 0, 1, 1, 0])
    start = np.array([0.0, 5.0, 10.0, 0.0, 3.0, 2.0])
    end = np.array([4.0, 10.0, 12.0, 2.0, 4.0, 3.0])
    # 0-5 overlap ([0,4] vs [2,3]); 1-2 touch at t=10 (closed spans); camera 1 spans are disjoint.
    assert overlap_pairs(Spans(camera, start, end)).tolist() == [[0, 5], [1, 2]]


def test_overlap_pairs_matches_brute_force_on_random_spans():
    camera, start, end = _random_spans(0, 400, 4)
    fast = overlap_pairs(Spans(camera, start, end))
    naive = overlap_pairs_naive(Spans(camera, start, end))
    assert len(naive) > 100
    np.testing.assert_array_equal(fast, naive)


def test_overlap_pairs_empty_input_gives_no_pairs():
    assert overlap_pairs(Spans(np.zeros(0, int), np.zeros(0), np.zeros(0))).shape == (0, 2)


def test_overlap_pairs_does_not_modify_inputs():
    camera, start, end = _random_spans(1, 50, 2)
    copies = camera.copy(), start.copy(), end.copy()
    overlap_pairs(Spans(camera, start, end))
    for array, copy in zip((camera, start, end), copies):
        np.testing.assert_array_equal(array, copy)


def test_overlap_pairs_between_matches_brute_force():
    cam_q, start_q, end_q = _random_spans(2, 150, 3)
    cam_g, start_g, end_g = _random_spans(3, 300, 3)
    fast = overlap_pairs_between(Spans(cam_q, start_q, end_q), Spans(cam_g, start_g, end_g))
    hit = (
        (cam_q[:, None] == cam_g[None, :])
        & (start_g[None, :] <= end_q[:, None])
        & (start_q[:, None] <= end_g[None, :])
    )
    assert hit.sum() > 50
    np.testing.assert_array_equal(fast, np.argwhere(hit))


def test_overlap_pairs_between_identical_spans_count_once():
    pairs = overlap_pairs_between(
        Spans(np.array([0]), np.array([1.0]), np.array([2.0])),
        Spans(np.array([0, 1]), np.array([1.0, 1.0]), np.array([2.0, 2.0])),
    )
    assert pairs.tolist() == [[0, 0]]


def test_spans_take_and_length_checks():
    spans = Spans(np.array([0, 1, 2]), np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    picked = spans.take(np.array([2, 0, 2]))
    assert len(picked) == 3 and picked.camera.tolist() == [2, 0, 2] and picked.end.tolist() == [3.0, 1.0, 3.0]
    assert spans.camera.dtype == np.int64 and spans.start.dtype == np.float64
    with pytest.raises(ValueError, match=r"camera \(2,\), start \(3,\) and end \(3,\) must have the same length"):
        Spans(np.array([0, 1]), np.zeros(3), np.zeros(3))

"""Tests for stages/retrieval/distance.py: squared Euclidean distances and the test-time TOC/SCP/STS terms."""

import numpy as np

from stages.retrieval.distance import add_camera_penalty, add_overlap_penalty, scale_by_factor, squared_distances


def test_squared_distances_matches_reference_dist(reference):
    d = squared_distances(reference["query_emb"], reference["gallery_emb"])
    assert d.dtype == np.float32
    assert np.abs(d - reference["dist"]).max() <= 1e-4


def test_squared_distances_blocks_are_identical():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(37, 9)).astype(np.float32), rng.normal(size=(11, 9)).astype(np.float32)
    np.testing.assert_array_equal(squared_distances(x, y, block=4), squared_distances(x, y))
    assert 0.0 <= squared_distances(x, x).diagonal().max() <= 1e-5


def test_add_overlap_penalty_only_listed_pairs():
    dist = np.zeros((2, 3), dtype=np.float32)
    out = add_overlap_penalty(dist, np.array([[0, 2], [1, 0], [0, 2]]), penalty=1000.0)
    np.testing.assert_array_equal(out, [[0, 0, 1000], [1000, 0, 0]])
    assert dist.sum() == 0 and out.dtype == np.float32


def test_add_camera_penalty_same_camera_only():
    out = add_camera_penalty(np.ones((2, 2), dtype=np.float32), np.array([0, 1]), np.array([1, 1]), lam=0.5)
    np.testing.assert_array_equal(out, [[1.0, 1.0], [1.5, 1.5]])


def test_scale_by_factor_multiplies():
    out = scale_by_factor(np.full((1, 2), 2.0, dtype=np.float32), np.array([[1.0, 1.6]]))
    np.testing.assert_allclose(out, [[2.0, 3.2]], rtol=1e-6)
    assert out.dtype == np.float32

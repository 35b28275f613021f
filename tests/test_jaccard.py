"""Sparse k-reciprocal Jaccard distance: reference vectors, the dense baseline, symmetry, determinism, edge cases."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from stages.clustering.jaccard import jaccard_distance
from stages.errors import AuxReidError
from stages.progress import NullProgress

BASELINE = Path(__file__).resolve().parents[1] / "benchmarks" / "jaccard_baseline.py"


def _baseline():
    spec = importlib.util.spec_from_file_location("jaccard_baseline", BASELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dense_jaccard


def _clustered(n=90, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, n // 6), d))
    points = centers[np.arange(n) % len(centers)] + 0.7 * rng.standard_normal((n, d))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_jaccard_distance_matches_reference_vectors(reference):
    distance = jaccard_distance(reference["features"], k1=30, k2=6)
    assert np.abs(distance.to_dense() - reference["jaccard"]).max() <= 1e-4
    assert distance.data.dtype == np.float32 and distance.indices.dtype == np.int32


def test_jaccard_baseline_matches_reference_vectors(reference):
    dense, timings = _baseline()(reference["features"], k1=30, k2=6)
    assert np.abs(dense - reference["jaccard"]).max() <= 1e-4
    assert set(timings) == {"knn", "after_knn"}


def test_jaccard_distance_equals_dense_baseline_on_raw_features():
    features = _clustered() * np.random.default_rng(1).uniform(0.5, 2.0, (90, 1)).astype(np.float32)
    dense, _ = _baseline()(features, k1=12, k2=4)
    np.testing.assert_allclose(jaccard_distance(features, k1=12, k2=4).to_dense(), dense, atol=1e-5)


def test_jaccard_distance_is_symmetric_deterministic_and_stores_only_below_one():
    features = _clustered(seed=2)
    before = features.copy()
    first = jaccard_distance(features, k1=10, k2=3)
    second = jaccard_distance(features, k1=10, k2=3)
    assert first.is_symmetric()
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    off_diagonal = first.rows() != first.cols()
    assert (first.data[off_diagonal] < 1).all() and (~off_diagonal).sum() == 90
    np.testing.assert_array_equal(features, before)


def test_jaccard_distance_torch_backend_equals_faiss():
    features = _clustered(seed=3)
    faiss_result = jaccard_distance(features, k1=10, k2=3, backend="faiss").to_dense()
    np.testing.assert_allclose(jaccard_distance(features, k1=10, k2=3, backend="torch").to_dense(), faiss_result, atol=1e-6)


def test_jaccard_distance_normalize_switch_ignores_row_scale():
    features = _clustered(seed=4)
    scaled = features * np.arange(1, 91, dtype=np.float32)[:, None]
    np.testing.assert_allclose(
        jaccard_distance(scaled, k1=10, k2=3, normalize=True).to_dense(),
        jaccard_distance(features, k1=10, k2=3).to_dense(), atol=1e-6,
    )


def test_jaccard_distance_caps_k_for_tiny_inputs():
    features = _clustered(n=4, seed=5)
    dense, _ = _baseline()(features, k1=30, k2=6)
    distance = jaccard_distance(features, k1=30, k2=6)
    np.testing.assert_allclose(distance.to_dense(), dense, atol=1e-6)
    assert distance.to_dense().diagonal().max() < 1e-6


def test_jaccard_distance_reports_progress():
    class Recorder(NullProgress):
        def __init__(self):
            self.events = []

        def start(self, task, total=None):
            self.events.append(("start", task, total))

        def advance(self, task, amount=1):
            self.events.append(("advance", task, amount))

    recorder = Recorder()
    jaccard_distance(_clustered(seed=6), k1=8, k2=2, progress=recorder)
    assert recorder.events[0] == ("start", "kNN", 1) and ("start", "Jaccard", 90) in recorder.events
    assert sum(e[2] for e in recorder.events if e[:2] == ("advance", "Jaccard")) == 90


def test_jaccard_distance_rejects_non_finite_features():
    features = _clustered()
    features[3, 1] = np.nan
    with pytest.raises(AuxReidError, match=r"^the features hold NaN or infinite values; re-extract them \(`auxreid extract`\)$"):
        jaccard_distance(features, k1=10, k2=3)


def test_jaccard_distance_rejects_empty_features():
    with pytest.raises(AuxReidError, match=r"^the Jaccard distance needs a non-empty \(n, d\) feature array, got shape \(0, 8\)$"):
        jaccard_distance(np.zeros((0, 8), dtype=np.float32), k1=10, k2=3)


def test_jaccard_from_weights_does_not_depend_on_block_size(reference, monkeypatch):
    from stages.clustering.jaccard import encoded_rows, jaccard_from_weights
    from stages.clustering.knn import knn_search

    points = reference["features"][:200]
    weights = encoded_rows(points, knn_search(points, k=30), k1=30, k2=6)
    whole = jaccard_from_weights(weights)
    monkeypatch.setattr("stages.clustering.kreciprocal.DEFAULT_BLOCK_PAIRS", 3000)
    split = jaccard_from_weights(weights)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(split, name))

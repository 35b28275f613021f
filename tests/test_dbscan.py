"""DBSCAN on a sparse radius graph: sklearn's partition and labels, reference vectors, edge cases."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from stages.clustering.dbscan import dbscan, entries_at_most, radius_graph, stored_values
from stages.clustering.sparse_distance import from_csr
from stages.errors import AuxReidError


def _sparse_below_one(dense):
    """The dense matrix as CSR holding its entries < 1 (explicit zeros kept), as SparseDistance does."""
    rows, cols = np.nonzero(dense < 1)
    return sparse.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)


def test_dbscan_matches_reference_labels(reference):
    labels = dbscan(_sparse_below_one(reference["jaccard"]), eps=float(reference["eps"]), min_samples=4)
    assert adjusted_rand_score(labels, reference["dbscan_labels"]) >= 0.99
    np.testing.assert_array_equal(labels, reference["dbscan_labels"])
    assert labels.max() + 1 == 22 and int((labels == -1).sum()) == 479


@pytest.mark.parametrize("seed", range(40))
def test_dbscan_equals_sklearn_labels_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    points = rng.random((n, 2)) * rng.uniform(0.3, 3.0)
    dense = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    dense[dense > 0.8] = 1.0
    eps, min_samples = float(rng.uniform(0.05, 0.5)), int(rng.integers(1, 6))
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(dbscan(_sparse_below_one(dense), eps=eps, min_samples=min_samples), expected)


def test_dbscan_assigns_shared_border_to_earliest_cluster_like_sklearn():
    # Two cores groups {0,1,2,3} and {5,6,7,8}; point 4 is a border of both (touches 3 and 5).
    dense = np.ones((9, 9))
    np.fill_diagonal(dense, 0.0)
    for group in ([0, 1, 2, 3], [5, 6, 7, 8]):
        dense[np.ix_(group, group)] = 0.1 * (1 - np.eye(4))
    dense[4, [3, 5]] = dense[[3, 5], 4] = 0.2
    labels = dbscan(_sparse_below_one(dense), eps=0.25, min_samples=4)
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(labels, DBSCAN(eps=0.25, min_samples=4, metric="precomputed").fit_predict(dense))


def test_dbscan_counts_self_without_stored_diagonal_and_keeps_explicit_zeros():
    # Three points at distance exactly 0 (explicit zeros), no diagonal stored: with self each has 3 neighbours.
    rows = np.array([0, 0, 1, 1, 2, 2])
    cols = np.array([1, 2, 0, 2, 0, 1])
    graph = sparse.csr_matrix((np.zeros(6), (rows, cols)), shape=(4, 4))
    np.testing.assert_array_equal(dbscan(graph, eps=0.1, min_samples=3), [0, 0, 0, -1])
    np.testing.assert_array_equal(dbscan(graph, eps=0.1, min_samples=4), [-1, -1, -1, -1])


def test_dbscan_all_noise_when_eps_too_small():
    dense = np.full((5, 5), 0.5)
    np.fill_diagonal(dense, 0)
    assert (dbscan(_sparse_below_one(dense), eps=0.4, min_samples=2) == -1).all()


def test_radius_graph_orders_rows_by_distance_then_decreasing_index():
    dense = np.ones((4, 4))
    np.fill_diagonal(dense, 0)
    dense[0, [1, 2, 3]] = [0.2, 0.1, 0.2]
    graph = radius_graph(_sparse_below_one(dense), eps=0.5)
    np.testing.assert_array_equal(graph.indices[graph.indptr[0] : graph.indptr[1]], [0, 2, 3, 1])
    np.testing.assert_array_equal(graph.degree, [4, 1, 1, 1])


def test_radius_graph_ties_distances_within_the_zero_tolerance():
    # 0 (self), 2 (0.0) and 1 (3e-7) are one tie, ordered by decreasing index; 3 and 4 (0.1 + 5e-6) another; 5 apart
    dense = np.ones((6, 6), dtype=np.float32)
    np.fill_diagonal(dense, 0)
    dense[0, 1:] = dense[1:, 0] = [3e-7, 0.0, 0.1, 0.1 + 5e-6, 0.1 + 2e-4]
    graph = radius_graph(_sparse_below_one(dense), eps=0.5)
    np.testing.assert_array_equal(graph.indices[graph.indptr[0] : graph.indptr[1]], [2, 1, 0, 4, 3, 5])


def test_dbscan_does_not_modify_input():
    dense = np.array([[0, 0.1, 0.9], [0.1, 0, 0.2], [0.9, 0.2, 0]])
    graph = _sparse_below_one(dense)
    before = graph.copy()
    dbscan(graph, eps=0.15, min_samples=2)
    assert (graph != before).nnz == 0


def test_dbscan_rejects_non_square_matrix():
    with pytest.raises(AuxReidError, match=r"the distance matrix must be square \(n x n\), got shape \(2, 3\)"):
        dbscan(sparse.csr_matrix(np.zeros((2, 3))), eps=0.1)


def test_dbscan_counts_self_only_when_its_stored_diagonal_is_within_eps():
    # SCP adds lambda to the diagonal: with eps below it, sklearn does not count the point itself.
    dense = np.full((4, 4), 0.1)
    np.fill_diagonal(dense, 0.2)
    graph = _sparse_below_one(dense)
    expected = DBSCAN(eps=0.15, min_samples=4, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(dbscan(graph, eps=0.15, min_samples=4), expected)
    np.testing.assert_array_equal(expected, [-1, -1, -1, -1])
    np.testing.assert_array_equal(dbscan(graph, eps=0.25, min_samples=4), [0, 0, 0, 0])


def test_stored_values_finds_entries_keeps_zeros_and_fills_missing():
    rng = np.random.default_rng(0)
    dense = rng.random((30, 30))
    dense[dense > 0.6] = 1.0
    dense[3, 7] = 0.0
    graph = _sparse_below_one(dense)
    rows, cols = rng.integers(0, 30, 500), rng.integers(0, 30, 500)
    np.testing.assert_allclose(stored_values(graph, rows, cols, missing=1.0), dense[rows, cols], rtol=1e-7)
    assert stored_values(graph, np.array([3]), np.array([7]), missing=1.0)[0] == 0.0
    assert stored_values(sparse.csr_matrix((2, 2)), np.array([0]), np.array([1]), missing=1.0)[0] == 1.0


def test_entries_at_most_returns_row_major_entries():
    dense = np.array([[0.0, 0.3, 1.0], [0.3, 0.0, 0.1], [1.0, 0.1, 0.0]])
    rows, cols, values = entries_at_most(_sparse_below_one(dense), 0.2)
    np.testing.assert_array_equal(rows, [0, 1, 1, 2, 2])
    np.testing.assert_array_equal(cols, [0, 1, 2, 1, 2])
    np.testing.assert_allclose(values, [0, 0, 0.1, 0.1, 0])


def _random_sparse_distance(rng, n):
    """Symmetric float32 CSR: random pairs (some explicit zeros), the diagonal stored (SCP-like, may exceed eps) or not."""
    upper = sparse.triu(sparse.random(n, n, density=float(rng.uniform(0.02, 0.3)), random_state=rng), k=1).tocoo()
    values = (upper.data * 0.6).astype(np.float32)
    values[rng.random(values.size) < 0.05] = 0.0
    diagonal = np.flatnonzero(rng.random(n) < 0.7)
    rows = np.concatenate([upper.row, upper.col, diagonal])
    cols = np.concatenate([upper.col, upper.row, diagonal])
    data = np.concatenate([values, values, rng.uniform(0.0, 0.2, diagonal.size).astype(np.float32)])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


@pytest.mark.parametrize("seed", range(30))
def test_dbscan_equals_sklearn_on_the_whole_sparse_distance(seed):
    rng = np.random.default_rng(seed)
    graph = _random_sparse_distance(rng, int(rng.integers(5, 300)))
    eps, min_samples = float(rng.uniform(0.02, 0.3)), int(rng.integers(1, 8))
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(graph.copy()).labels_
    labels = dbscan(graph, eps=eps, min_samples=min_samples)
    np.testing.assert_array_equal(labels, expected)
    assert adjusted_rand_score(labels, expected) == 1.0 and labels.dtype == np.int64
    as_sparse_distance = from_csr(graph.indptr, graph.indices, graph.data)
    np.testing.assert_array_equal(dbscan(as_sparse_distance, eps=eps, min_samples=min_samples), expected)


def test_dbscan_compares_float32_distances_with_eps_as_sklearn_does():
    # float32(0.6) > 0.6: sklearn compares the float32 entries, so a pair or a diagonal stored as
    # float32(0.6) is within eps = 0.6, both off the diagonal and for the point itself.
    dense = np.ones((4, 4), dtype=np.float32)
    dense[:3, :3] = np.float32(0.6)
    dense[3, 3] = np.float32(0.6)
    graph = sparse.csr_matrix(dense * (dense < 1))
    for min_samples in (1, 3, 4):
        expected = DBSCAN(eps=0.6, min_samples=min_samples, metric="precomputed").fit(graph.copy()).labels_
        np.testing.assert_array_equal(dbscan(graph, eps=0.6, min_samples=min_samples), expected)
    np.testing.assert_array_equal(dbscan(graph, eps=0.6, min_samples=3), [0, 0, 0, -1])
    np.testing.assert_array_equal(dbscan(graph, eps=0.6, min_samples=1), [0, 0, 0, 1])


@pytest.mark.parametrize("eps", [0.0, -0.1, float("nan")])
def test_dbscan_rejects_non_positive_eps(eps):
    with pytest.raises(AuxReidError, match="eps must be > 0"):
        dbscan(sparse.csr_matrix(np.eye(3) * 0.1), eps=eps)


def test_dbscan_rejects_negative_distances():
    graph = sparse.csr_matrix(np.array([[0.0, -0.1], [-0.1, 0.0]]))
    with pytest.raises(AuxReidError, match="negative entries"):
        dbscan(graph, eps=0.2)


def test_benchmark_components_version_equals_dbscan():
    """The connected-components DBSCAN kept in benchmarks/dbscan.py (the removed implementation) still agrees."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dbscan.py"
    spec = importlib.util.spec_from_file_location("bench_dbscan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(7)
    for _ in range(10):
        graph = _random_sparse_distance(rng, int(rng.integers(5, 200)))
        eps, min_samples = float(rng.uniform(0.02, 0.3)), int(rng.integers(1, 8))
        np.testing.assert_array_equal(
            module.components_dbscan(graph, eps=eps, min_samples=min_samples),
            dbscan(graph, eps=eps, min_samples=min_samples),
        )

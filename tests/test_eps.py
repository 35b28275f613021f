"""Adaptive eps: the reference's dense rule on the sparse distance, zeros within a tolerance, stable under rounding."""

import importlib.util
from pathlib import Path

import numba
import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from stages.clustering import kreciprocal
from stages.clustering.dbscan import dbscan
from stages.clustering.eps import adaptive_eps
from stages.clustering.icdbscan import cannot_link_violations, enforced_pairs, icdbscan
from stages.clustering.jaccard import encoded_rows, jaccard_distance
from stages.clustering.knn import knn_search
from stages.clustering.sparse_distance import ZERO_TOLERANCE, from_csr
from stages.errors import AuxReidError

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _dense_eps(dense, rho, tolerance=ZERO_TOLERANCE):
    """The reference's rule: strict upper triangle, entries with |d| > tolerance, sorted, mean of the first
    round(rho * count) (tolerance 0: the reference's exact-zero test)."""
    upper = dense[np.triu_indices(len(dense), 1)]
    values = np.sort(upper[np.abs(upper) > np.float32(tolerance)])
    return values[: int(np.round(rho * values.size))].astype(np.float64).mean()


def _sparse(dense):
    """The dense matrix stored where it is < 1 (and on the diagonal), as `jaccard_distance` stores it."""
    keep = (dense < 1) | np.eye(len(dense), dtype=bool)
    rows, cols = np.nonzero(keep)
    return from_csr(np.concatenate([[0], np.cumsum(keep.sum(1))]), cols, dense[rows, cols])


def _sts(rows, cols):
    p = ((rows * 7 + cols * 7) % 11) / 10.0
    return 1.0 + 0.6 * np.exp(-8.0 * p)


def test_adaptive_eps_with_zero_tolerance_0_matches_stored_reference_eps(reference):
    # The stored eps used the exact-zero rule (0.0390); with it, this computation gives the same number.
    got = adaptive_eps(_sparse(reference["jaccard"]), rho=1.6e-3, zero_tolerance=0.0)
    assert abs(got - float(reference["eps"])) <= 1e-6


def test_adaptive_eps_matches_reference_rule_with_tolerance(reference):
    dense = reference["jaccard"]
    assert adaptive_eps(_sparse(dense), rho=1.6e-3) == pytest.approx(_dense_eps(dense, 1.6e-3), abs=1e-9)
    assert adaptive_eps(_sparse(dense), rho=1.6e-3) == pytest.approx(0.094769, abs=1e-6)


@pytest.mark.parametrize("rho", [1.6e-3, 0.05, 0.5, 0.97])
def test_adaptive_eps_with_scp_and_sts_equals_dense(reference, rho, monkeypatch):
    monkeypatch.setattr("stages.clustering.sparse_distance.CHUNK_ENTRIES", 5000)
    distance = jaccard_distance(reference["features"][:300], k1=30, k2=6)
    adjusted = distance.scale(_sts).add_same_camera(reference["cams"][:300], lam=0.006)
    assert abs(adaptive_eps(adjusted, rho=rho) - _dense_eps(adjusted.to_dense(), rho)) <= 1e-6


@pytest.mark.parametrize("rho", [1.6e-3, 0.3, 0.9])
def test_adaptive_eps_without_penalties_fills_implicit_ones(reference, rho):
    distance = jaccard_distance(reference["features"][:200], k1=20, k2=6)
    assert abs(adaptive_eps(distance, rho=rho) - _dense_eps(distance.to_dense(), rho)) <= 1e-6


@pytest.mark.parametrize("tiny", [0.0, 6e-8, 9e-7, 1e-5])
def test_adaptive_eps_skips_zeros_and_counts_implicit_entries(tiny):
    dense = np.array(
        [[0, tiny, 0.2, 1], [tiny, 0, 0.4, 1], [0.2, 0.4, 0, 1], [1, 1, 1, 0]], dtype=np.float32
    )
    # strict upper non-zero: 0.2, 1, 0.4, 1, 1 -> count 5; rho 0.5 -> round(2.5) = 2 -> mean(0.2, 0.4)
    assert adaptive_eps(_sparse(dense), rho=0.5) == pytest.approx(0.3, abs=1e-7)
    # rho 0.7 -> round(3.5) = 4 -> mean(0.2, 0.4, 1, 1)
    assert adaptive_eps(_sparse(dense), rho=0.7) == pytest.approx(0.65, abs=1e-7)


def test_adaptive_eps_counts_entries_above_the_tolerance_and_exact_zero_rule_on_request():
    dense = np.array([[0, 2e-5, 0.2], [2e-5, 0, 1], [0.2, 1, 0]], dtype=np.float32)
    # 2e-5 > ZERO_TOLERANCE: non-zero; rho 0.5 -> round(1.5) = 2 -> mean(2e-5, 0.2)
    assert adaptive_eps(_sparse(dense), rho=0.5) == pytest.approx(0.10001, abs=1e-7)
    dense[0, 1] = dense[1, 0] = 5e-6
    # only 0.2 and 1 are non-zero now: round(1.0) = 1 -> 0.2
    assert adaptive_eps(_sparse(dense), rho=0.5) == pytest.approx(0.2, abs=1e-7)
    assert adaptive_eps(_sparse(dense), rho=0.5, zero_tolerance=0.0) == pytest.approx(0.1000025, abs=1e-7)


def test_adaptive_eps_rejects_negative_zero_tolerance():
    with pytest.raises(AuxReidError, match=r"^zero_tolerance must be in \[0, 1\), got -1e-06$"):
        adaptive_eps(_sparse(np.zeros((2, 2), dtype=np.float32)), rho=0.1, zero_tolerance=-1e-6)


def test_adaptive_eps_uses_one_entry_when_rho_rounds_to_zero():
    dense = np.array([[0, 0.3, 1], [0.3, 0, 1], [1, 1, 0]], dtype=np.float32)
    assert adaptive_eps(_sparse(dense), rho=1.6e-3) == pytest.approx(0.3, abs=1e-7)


def test_adaptive_eps_rejects_single_point():
    with pytest.raises(AuxReidError, match=r"^the adaptive eps needs at least 2 points, got 1; set cluster.eps_mode: fixed$"):
        adaptive_eps(_sparse(np.zeros((1, 1), dtype=np.float32)), rho=0.1)


@pytest.mark.parametrize("rho", [0.01, 0.2, 0.6])
def test_adaptive_eps_selects_within_a_shared_histogram_bucket(rho):
    rng = np.random.default_rng(7)
    # Most values share one histogram bucket ([0.5, 0.50390625) has the same top 16 bits), so the
    # cut falls inside it; a few stored 1.0's and explicit zeros around them.
    dense = rng.uniform(0.5, 0.5039, (60, 60)).astype(np.float32)
    dense[rng.random((60, 60)) < 0.1] = 1.0
    dense[rng.random((60, 60)) < 0.05] = 0.0
    dense = np.triu(dense, 1) + np.triu(dense, 1).T
    assert adaptive_eps(_sparse(dense), rho=rho) == pytest.approx(_dense_eps(dense, rho), abs=1e-9)


# --- eps from features under other summation orders (thread count, block size, precision) -------------


def _dense_min_sum_jaccard(v, *, dtype, reverse):
    """d = max(0, 1 - S / (2 - S)) with S = sum_k min(V_ik, V_jk) summed densely by numpy in `dtype`,
    optionally over the columns in reverse order: another summation order than the compiled kernel's."""
    v = v.astype(dtype)
    if reverse:
        v = np.ascontiguousarray(v[:, ::-1])
    dense = np.empty(v.shape, dtype=np.float32)
    for i in range(len(v)):
        s = np.minimum(v[i], v).sum(axis=1)
        dense[i] = np.maximum(0.0, 1.0 - s / (2.0 - s))
    return dense


def _reference_structure_jaccard(features):
    """`benchmarks/jaccard_baseline.py`: the reference's float32 inverted-index accumulation."""
    spec = importlib.util.spec_from_file_location("jaccard_baseline", BENCHMARKS / "jaccard_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dense_jaccard(features, k1=30, k2=6)[0]


@pytest.fixture(scope="module")
def perturbed(reference):
    """The reference features' Jaccard distance (k1 30, k2 6) computed in several summation orders, dense."""
    features = reference["features"]
    matrices = {"stored reference matrix": reference["jaccard"],
                "sparse kernels": jaccard_distance(features, k1=30, k2=6).to_dense()}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        matrices["sparse kernels, 1 thread"] = jaccard_distance(features, k1=30, k2=6).to_dense()
    finally:
        numba.set_num_threads(threads)
    block = kreciprocal.DEFAULT_BLOCK_PAIRS
    kreciprocal.DEFAULT_BLOCK_PAIRS = 1 << 10  # one row per min-sum block
    try:
        matrices["sparse kernels, 1-row blocks"] = jaccard_distance(features, k1=30, k2=6).to_dense()
    finally:
        kreciprocal.DEFAULT_BLOCK_PAIRS = block
    v = encoded_rows(features, knn_search(features, k=30), k1=30, k2=6).toarray()
    matrices["dense float32 sums"] = _dense_min_sum_jaccard(v, dtype=np.float32, reverse=False)
    matrices["dense float64 sums, reversed"] = _dense_min_sum_jaccard(v, dtype=np.float64, reverse=True)
    matrices["reference structure, float32"] = _reference_structure_jaccard(features)
    return matrices


def test_adaptive_eps_is_stable_under_summation_order(perturbed):
    upper = np.triu_indices(600, 1)
    noisy = {name: int(((m[upper] > 0) & (m[upper] <= ZERO_TOLERANCE)).sum()) for name, m in perturbed.items()}
    exact_rule = {name: adaptive_eps(_sparse(m), rho=1.6e-3, zero_tolerance=0.0) for name, m in perturbed.items()}
    eps = {name: adaptive_eps(_sparse(m), rho=1.6e-3) for name, m in perturbed.items()}
    # The orders really differ: 24 to 159 would-be zeros come out as a few ulps (up to 8.9e-7), and
    # the exact-zero rule gives eps from 0.035 to 0.085 (stored: 0.0390); with the tolerance all give 0.094769.
    assert len(set(noisy.values())) >= 3, noisy
    assert max(exact_rule.values()) / min(exact_rule.values()) > 1.1, exact_rule
    expected = eps["stored reference matrix"]
    for name, value in eps.items():
        assert abs(value / expected - 1) <= 1e-4, (name, value, expected)


def test_labels_from_features_match_reference_under_summation_order(perturbed, reference):
    # "The reference" at the tolerant eps: sklearn DBSCAN and the benchmark's set-based ICDBSCAN (the
    # reference's structure and visiting order) on the stored reference matrix.
    spec = importlib.util.spec_from_file_location("cluster_icdbscan", BENCHMARKS / "cluster_icdbscan.py")
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    stored, pairs = reference["jaccard"], reference["cannot_link_pairs"]
    eps = adaptive_eps(_sparse(stored), rho=1.6e-3)
    expected_dbscan = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit(stored).labels_
    expected_icdbscan = baseline.sets_reference_structure(stored, pairs, eps=eps, relaxed=-1.0)
    assert expected_dbscan.max() + 1 >= 30 and expected_icdbscan.max() + 1 >= 30
    for name, matrix in perturbed.items():
        distance = _sparse(matrix)
        own_eps = adaptive_eps(distance, rho=1.6e-3)
        plain = dbscan(distance, eps=own_eps)
        linked = icdbscan(distance, pairs, eps=own_eps, relaxed=-1.0)
        assert adjusted_rand_score(expected_dbscan, plain) >= 0.99, name
        assert adjusted_rand_score(expected_icdbscan, linked) >= 0.99, name
        enforced = enforced_pairs(distance, pairs, eps=own_eps, relaxed=-1.0)
        assert cannot_link_violations(linked, enforced) == 0, name


def test_pairs_per_point_averages_a_fixed_number_of_pairs_per_tracklet():
    """The scale-aware form: the smallest round(p x n / 2) non-zero pairs, whatever the number of all pairs."""
    rng = np.random.default_rng(3)
    dense = rng.uniform(0.05, 1.2, size=(60, 60)).astype(np.float32)
    dense = np.minimum(dense, dense.T)
    np.fill_diagonal(dense, 0)
    upper = np.sort(np.minimum(dense[np.triu_indices(60, 1)], 1.0))  # pairs off the support are implicit 1.0
    for per_point, top in ((0.5, 15), (4, 120), (10_000, upper.size)):
        expected = upper[:top].astype(np.float64).mean()
        assert adaptive_eps(_sparse(dense), rho=0.5, pairs_per_point=per_point) == pytest.approx(expected, rel=1e-6)
    rho = 1.6e-3
    same = adaptive_eps(_sparse(dense), rho=rho, pairs_per_point=rho * (60 - 1))  # rho x (n-1)/2 pairs per point
    assert same == adaptive_eps(_sparse(dense), rho=rho)
    with pytest.raises(AuxReidError, match=r"^pairs_per_point must be > 0, got 0 \(cluster.eps_pairs_per_point\)$"):
        adaptive_eps(_sparse(dense), rho=rho, pairs_per_point=0)

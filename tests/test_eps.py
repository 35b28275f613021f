"""Adaptive eps on the sparse distance equals the reference's dense computation, implicit entries included."""

import numpy as np
import pytest

from stages.clustering.eps import adaptive_eps
from stages.errors import AuxReidError
from stages.clustering.jaccard import jaccard_distance
from stages.clustering.sparse_distance import from_csr


def _dense_eps(dense, rho):
    """The reference: strict upper triangle, non-zero entries, sorted, mean of the first round(rho * count)."""
    upper = np.triu(dense, 1)
    values = np.sort(upper[np.nonzero(upper)], axis=None)
    return values[: int(np.round(rho * values.size))].astype(np.float64).mean()


def _sparse(dense):
    """The dense matrix stored where it is < 1 (and on the diagonal), as `jaccard_distance` stores it."""
    keep = (dense < 1) | np.eye(len(dense), dtype=bool)
    rows, cols = np.nonzero(keep)
    return from_csr(np.concatenate([[0], np.cumsum(keep.sum(1))]), cols, dense[rows, cols])


def _sts(rows, cols):
    p = ((rows * 7 + cols * 7) % 11) / 10.0
    return 1.0 + 0.6 * np.exp(-8.0 * p)


def test_adaptive_eps_matches_reference(reference):
    assert abs(adaptive_eps(_sparse(reference["jaccard"]), rho=1.6e-3) - float(reference["eps"])) <= 1e-6


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


def test_adaptive_eps_skips_zeros_and_counts_implicit_entries():
    dense = np.array(
        [[0, 0, 0.2, 1], [0, 0, 0.4, 1], [0.2, 0.4, 0, 1], [1, 1, 1, 0]], dtype=np.float32
    )
    # strict upper non-zero: 0.2, 1, 0.4, 1, 1 -> count 5; rho 0.5 -> round(2.5) = 2 -> mean(0.2, 0.4)
    assert adaptive_eps(_sparse(dense), rho=0.5) == pytest.approx(0.3, abs=1e-7)
    # rho 0.7 -> round(3.5) = 4 -> mean(0.2, 0.4, 1, 1)
    assert adaptive_eps(_sparse(dense), rho=0.7) == pytest.approx(0.65, abs=1e-7)


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

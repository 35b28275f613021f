"""SparseDistance: SCP / STS on the support equal the dense computation, implicit entries included."""

import numpy as np
import pytest

from stages.clustering.sparse_distance import from_csr
from stages.errors import AuxReidError


def _small():
    """4 x 4: stored diagonal (0), pairs (0,1)=0.2, (1,2)=0.0 (explicit zero), (2,3)=0.9; the rest implicit 1."""
    dense = np.array(
        [[0.0, 0.2, 1, 1], [0.2, 0.0, 0.0, 1], [1, 0.0, 0.0, 0.9], [1, 1, 0.9, 0.0]], dtype=np.float32
    )
    stored = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=bool)
    rows, cols = np.nonzero(stored)
    indptr = np.concatenate([[0], np.cumsum(stored.sum(1))])
    return from_csr(indptr, cols, dense[rows, cols]), dense


def _factor(rows, cols):
    p = ((rows + 1) * (cols + 1) % 5) / 4.0
    return 1.0 + 0.6 * np.exp(-8.0 * p)


def test_sparse_distance_to_dense_fills_implicit_ones():
    distance, dense = _small()
    np.testing.assert_array_equal(distance.to_dense(), dense)
    assert distance.nnz == 10 and distance.shape == (4, 4) and distance.is_symmetric()


def test_sparse_distance_scp_and_sts_equal_dense_computation():
    distance, dense = _small()
    cameras = np.array([0, 0, 1, 0])
    result = distance.scale(_factor).add_same_camera(cameras, lam=0.006)
    rows, cols = np.divmod(np.arange(16), 4)
    expected = (dense.astype(np.float64) * _factor(rows, cols).reshape(4, 4)).astype(np.float32)
    expected = (expected.astype(np.float64) + 0.006 * (cameras[:, None] == cameras[None, :])).astype(np.float32)
    np.testing.assert_array_equal(result.to_dense(), expected)
    assert result.to_dense()[0, 3] == np.float32(1.0 * _factor(np.array([0]), np.array([3]))[0] + 0.006)
    np.testing.assert_array_equal(distance.to_dense(), dense)
    assert len(result.operations) == 2 and distance.operations == ()


def test_sparse_distance_implicit_values_follow_operation_order():
    distance, _ = _small()
    shifted = distance.add(lambda r, c: np.full(len(r), 0.5)).scale(lambda r, c: np.full(len(r), 2.0))
    np.testing.assert_array_equal(shifted.implicit_values(np.array([0]), np.array([2])), [3.0])
    np.testing.assert_array_equal(shifted.values()[:2], np.float32([1.0, 1.4]))


def test_sparse_distance_rejects_negative_term():
    distance, _ = _small()
    with pytest.raises(AuxReidError, match=r"^the add function returned -0.1 < 0.0: penalties may only increase distances$"):
        distance.add(lambda r, c: np.full(len(r), -0.1))


def test_sparse_distance_rejects_factor_below_one():
    distance, _ = _small()
    with pytest.raises(AuxReidError, match=r"^the scale function returned 0.5 < 1.0: penalties may only increase distances$"):
        distance.scale(lambda r, c: np.full(len(r), 0.5))


def test_sparse_distance_rejects_camera_array_of_wrong_length():
    distance, _ = _small()
    with pytest.raises(AuxReidError, match=r"^the camera array has 3 entries but the distance is 4 x 4$"):
        distance.add_same_camera(np.array([0, 1, 2]), lam=0.1)


def test_sparse_distance_values_are_read_only_views():
    distance, _ = _small()
    with pytest.raises(ValueError):
        distance.values()[0] = 5.0


def test_sparse_distance_chunks_cover_every_entry_in_row_order():
    distance, dense = _small()
    seen = [(rows, cols, entries) for rows, cols, entries in distance.chunks(max_entries=3)]
    assert len(seen) >= 3
    np.testing.assert_array_equal(np.concatenate([r for r, _, _ in seen]), distance.rows())
    np.testing.assert_array_equal(np.concatenate([c for _, c, _ in seen]), distance.cols())
    assert [e.start for _, _, e in seen] == sorted(e.start for _, _, e in seen) and seen[-1][2].stop == distance.nnz

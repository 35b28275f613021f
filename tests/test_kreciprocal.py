"""k-reciprocal building blocks against straightforward per-row versions on tiny inputs."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from stages.clustering.knn import knn_search
from stages.clustering.kreciprocal import (
    expanded_sets,
    min_sum_scratch,
    pairwise_min_sum,
    query_expansion,
    reciprocal_sets,
    row_softmax,
)


def _neighbours(n=60, k=10, seed=0):
    points = np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)
    return knn_search(points, k=k).indices


def _loop_reciprocal(rank, i, k):
    forward = rank[i, :k + 1]
    return set(forward[(rank[forward, :k + 1] == i).any(axis=1)].tolist())


def _rows(pattern):
    return [set(pattern.indices[pattern.indptr[i]:pattern.indptr[i + 1]].tolist()) for i in range(pattern.shape[0])]


def test_reciprocal_sets_match_per_row_definition():
    rank = _neighbours()
    assert _rows(reciprocal_sets(rank, length=10)) == [_loop_reciprocal(rank, i, 9) for i in range(60)]


@pytest.mark.parametrize("k1", [4, 5, 10])
def test_expanded_sets_match_per_row_expansion(k1):
    rank = _neighbours(k=k1)
    expected = []
    for i in range(60):
        members = _loop_reciprocal(rank, i, k1)
        expanded = set(members)
        for candidate in members:
            extra = _loop_reciprocal(rank, candidate, int(np.around(k1 / 2)))
            if len(extra & members) > 2 / 3 * len(extra):
                expanded |= extra
        expected.append(expanded)
    assert _rows(expanded_sets(rank, k1=k1)) == expected


def test_row_softmax_normalises_each_row():
    pattern = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=np.float64))
    v = row_softmax(pattern, np.array([0.0, np.log(3.0), 5.0, 5.0, -7.0]))
    np.testing.assert_allclose(v.toarray(), [[0.25, 0.75, 0], [0, 0.5, 0.5], [0, 0, 1]])


def test_query_expansion_averages_leading_neighbours():
    v = sp.csr_matrix(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0.5, 0.5]]))
    rank = np.array([[0, 2, 1], [1, 2, 0], [2, 1, 0]])
    np.testing.assert_allclose(query_expansion(v, rank, k2=2).toarray(), [[0.5, 0.25, 0.25], [0, 0.75, 0.25], [0, 0.75, 0.25]])


@pytest.mark.parametrize("block_pairs", [1 << 20, 5])
def test_pairwise_min_sum_matches_dense(block_pairs):
    rng = np.random.default_rng(3)
    a = sp.random(23, 17, density=0.2, random_state=rng, format="csr")
    b = sp.random(11, 17, density=0.3, random_state=rng, format="csr")
    dense = np.minimum(a.toarray()[:, None, :], b.toarray()[None, :, :]).sum(-1)
    blocks = list(pairwise_min_sum(a, b, block_pairs=block_pairs))
    assert [blk.start for blk in blocks] == sorted({blk.start for blk in blocks}) and blocks[-1].stop == 23
    got = np.zeros((23, 11))
    for blk in blocks:
        rows = np.repeat(np.arange(blk.start, blk.stop), np.diff(blk.indptr))
        got[rows, blk.indices] = blk.values
    np.testing.assert_allclose(got, dense, atol=1e-12)
    assert sum(len(blk.values) for blk in blocks) == int((dense > 0).sum())


def test_pairwise_min_sum_of_a_matrix_with_itself_is_exactly_symmetric():
    a = sp.random(40, 30, density=0.15, random_state=np.random.default_rng(4), format="csr")
    got = np.zeros((40, 40))
    for blk in pairwise_min_sum(a, block_pairs=90):
        got[np.repeat(np.arange(blk.start, blk.stop), np.diff(blk.indptr)), blk.indices] = blk.values
    np.testing.assert_array_equal(got, got.T)
    np.testing.assert_allclose(np.diag(got), np.asarray(a.sum(axis=1)).ravel())


def _sums(a, **kwargs):
    """(entries per row, columns, values) of all blocks joined."""
    blocks = list(pairwise_min_sum(a, **kwargs))
    return (
        np.concatenate([np.diff(blk.indptr) for blk in blocks]),
        np.concatenate([blk.indices for blk in blocks]),
        np.concatenate([blk.values for blk in blocks]),
    )


def test_pairwise_min_sum_is_bit_identical_across_thread_counts_and_blocks():
    a = sp.random(300, 120, density=0.08, random_state=np.random.default_rng(5), format="csr")
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = _sums(a)
    finally:
        numba.set_num_threads(threads)
    for got in (_sums(a), _sums(a, block_pairs=7)):
        for expected, actual in zip(single, got):
            np.testing.assert_array_equal(actual, expected)


def test_min_sum_scratch_as_distance_keeps_only_jaccard_below_one():
    a = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0], [1e-9, 0.0, 0.0]]))
    (block,) = min_sum_scratch(a, as_distance=True)
    rows = [block.cols[s:s + c].tolist() for s, c in zip(block.slots, block.counts)]
    values = [block.values[s:s + c].tolist() for s, c in zip(block.slots, block.counts)]
    assert rows == [[0, 1], [0, 1, 2], [1, 2], []]  # S = 1e-9 rounds to d = 1.0 in float32: not kept
    np.testing.assert_allclose(values[1], [1 - 0.5 / 1.5, 0.0, 1 - 0.5 / 1.5], rtol=1e-7)
    assert block.values.dtype == np.float32

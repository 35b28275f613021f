"""Tests for stages/clustering/kernels.py: each compiled loop against a plain numpy / Python reference.

Tiny seeded inputs (n ~ 20-50), called with the dtypes the callers (`stages.clustering.kreciprocal`,
`stages.clustering.jaccard`, `stages.clustering.eps`) pass, so the numba cache built by the rest of
the suite is reused. Exact equality where a kernel is meant to be exact (integer sets, sums taken in
the kernel's documented order), tight tolerances against numpy's own float summation otherwise, and
every parallel kernel is checked to give the same bits for 1 and several lanes.
"""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from stages.clustering import kernels
from stages.clustering.penalties import NO_TERMS

LANES = (1, 2, 3, 7)


# ---------------------------------------------------------------- helpers


def _rng(seed):
    return np.random.default_rng(seed)


def _random_csr(rows, cols, density, seed, *, normalise=False):
    """A canonical float64 CSR with strictly positive values (sorted indices, no stored zeros)."""
    rng = _rng(seed)
    mask = rng.random((rows, cols)) < density
    dense = np.where(mask, rng.random((rows, cols)) + 0.05, 0.0)
    if normalise:
        sums = dense.sum(axis=1, keepdims=True)
        dense = np.divide(dense, sums, out=np.zeros_like(dense), where=sums > 0)
    matrix = sp.csr_matrix(dense)
    matrix.sort_indices()
    return matrix, dense


def _knn_lists(n, k, seed, d=3):
    """(n, k) int64 exact kNN lists of random points (self first) and their float32 squared distances."""
    points = _rng(seed).standard_normal((n, d)).astype(np.float32)
    sq = ((points[:, None, :].astype(np.float64) - points[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, -1.0)  # self first even on ties
    order = np.argsort(sq, axis=1, kind="stable")[:, :k]
    np.fill_diagonal(sq, 0.0)
    sqdist = np.take_along_axis(sq, order, axis=1).astype(np.float32)
    return np.ascontiguousarray(order, dtype=np.int64), sqdist


def _random_lists(n, k, seed):
    """(n, k) int64 lists: self first, then k - 1 distinct others in random order."""
    rng = _rng(seed)
    lists = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        others = rng.permutation(np.delete(np.arange(n), i))[:k - 1]
        lists[i, 0] = i
        lists[i, 1:] = others
    return lists


def _run_min_sum(a, b, *, start=0, stop=None, lanes=1, as_distance=False, cap=1.0, bucketed=False):
    """Call `min_sum_rows` as `kreciprocal.min_sum_scratch` does; returns (slots, counts, cols, vals)."""
    stop = a.shape[0] if stop is None else stop
    by_col = b.tocsc()
    by_col.sort_indices()
    m = b.shape[0]
    col_ptr = by_col.indptr.astype(np.int64)
    contributions = np.array([np.diff(col_ptr)[a.indices[a.indptr[i]:a.indptr[i + 1]]].sum()
                              for i in range(a.shape[0])], dtype=np.int64)
    room = np.minimum(contributions, m)[start:stop]
    slots = np.concatenate([[0], np.cumsum(room[:-1])]).astype(np.int64)
    size = max(int(room.sum()), 1)
    cols = np.full(size, -1, dtype=np.int32)
    vals = np.full(size, np.nan, dtype=np.float32 if as_distance else np.float64)
    counts = np.zeros(stop - start, dtype=np.int64)
    kernels.min_sum_rows(
        a.indptr.astype(np.int64), a.indices, a.data, col_ptr, by_col.indices.astype(np.int32), by_col.data, m,
        start, stop, slots, cols, vals, counts, lanes, as_distance, cap, NO_TERMS, 0,
        *kernels.MinSumWorkspace.for_rows(m, int(contributions.max(initial=0)), lanes, bucketed=bucketed),
    )
    return slots, counts, cols, vals


def _rows_of(slots, counts, cols, vals):
    return [(cols[s:s + c].copy(), vals[s:s + c].copy()) for s, c in zip(slots, counts)]


def _loop_min_sum(a_dense, b_dense, i, j):
    """sum_k min(A_ik, B_jk) over shared non-zeros, added in ascending k (the kernel's order)."""
    total = 0.0
    shared = False
    for k in range(a_dense.shape[1]):
        if a_dense[i, k] > 0 and b_dense[j, k] > 0:
            total += min(a_dense[i, k], b_dense[j, k])
            shared = True
    return total if shared else None


def _csr_rows(indptr, indices):
    return [indices[indptr[i]:indptr[i + 1]].tolist() for i in range(len(indptr) - 1)]


# ---------------------------------------------------------------- lane_count


def test_lane_count_is_at_least_one_and_at_most_rows():
    for rows in range(1, 200):
        lanes = kernels.lane_count(rows)
        assert 1 <= lanes <= rows
    assert kernels.lane_count(0) == 1
    assert kernels.lane_count(1) == 1


def test_lane_count_caps_at_four_per_thread():
    cap = 4 * numba.get_num_threads()
    assert kernels.lane_count(10 * cap) == cap
    assert kernels.lane_count(cap) == cap
    assert kernels.lane_count(cap - 1) == max(1, cap - 1)


# ---------------------------------------------------------------- min_sum_rows / gather_rows


@pytest.mark.parametrize("seed", [0, 1])
def test_min_sum_rows_matches_dense_minimum_sum(seed):
    a, a_dense = _random_csr(30, 40, 0.15, seed)
    b, b_dense = _random_csr(25, 40, 0.2, seed + 100)
    slots, counts, cols, vals = _run_min_sum(a, b)
    dense_s = np.minimum(a_dense[:, None, :], b_dense[None, :, :]).sum(axis=2)
    shares = (a_dense > 0).astype(int) @ (b_dense > 0).T.astype(int) > 0
    for i, (row_cols, row_vals) in enumerate(_rows_of(slots, counts, cols, vals)):
        np.testing.assert_array_equal(row_cols, np.flatnonzero(shares[i]))
        assert np.all(np.diff(row_cols) > 0)
        np.testing.assert_allclose(row_vals, dense_s[i, row_cols], rtol=1e-13, atol=0)
        assert counts[i] <= b.shape[0]
    assert int(counts.sum()) == int(shares.sum())


def test_min_sum_rows_is_bit_identical_to_ascending_k_loop():
    a, a_dense = _random_csr(20, 30, 0.25, 3)
    b, b_dense = _random_csr(22, 30, 0.25, 4)
    slots, counts, cols, vals = _run_min_sum(a, b)
    for i, (row_cols, row_vals) in enumerate(_rows_of(slots, counts, cols, vals)):
        expected = {j: s for j in range(b.shape[0]) if (s := _loop_min_sum(a_dense, b_dense, i, j)) is not None}
        assert row_cols.tolist() == sorted(expected)
        np.testing.assert_array_equal(row_vals, np.array([expected[j] for j in row_cols.tolist()]))


def test_min_sum_rows_is_exactly_symmetric_against_itself():
    a, _ = _random_csr(35, 50, 0.12, 5)
    slots, counts, cols, vals = _run_min_sum(a, a)
    s = np.zeros((35, 35))
    for i, (row_cols, row_vals) in enumerate(_rows_of(slots, counts, cols, vals)):
        s[i, row_cols] = row_vals
    np.testing.assert_array_equal(s, s.T)


def test_min_sum_rows_independent_of_lanes_and_row_blocks():
    a, _ = _random_csr(40, 45, 0.15, 6)
    b, _ = _random_csr(33, 45, 0.15, 7)
    reference = _rows_of(*_run_min_sum(a, b, lanes=1))
    for lanes in LANES + (40,):
        got = _rows_of(*_run_min_sum(a, b, lanes=lanes))
        for (rc, rv), (gc, gv) in zip(reference, got):
            np.testing.assert_array_equal(gc, rc)
            np.testing.assert_array_equal(gv, rv)
    blocks = []
    for start, stop in [(0, 13), (13, 14), (14, 40)]:
        blocks += _rows_of(*_run_min_sum(a, b, start=start, stop=stop, lanes=min(3, stop - start)))
    for (rc, rv), (gc, gv) in zip(reference, blocks):
        np.testing.assert_array_equal(gc, rc)
        np.testing.assert_array_equal(gv, rv)


def test_min_sum_rows_empty_rows_write_nothing():
    a, a_dense = _random_csr(20, 30, 0.2, 8)
    a_dense[[0, 7, 19]] = 0.0
    a = sp.csr_matrix(a_dense)
    a.sort_indices()
    slots, counts, cols, vals = _run_min_sum(a, a)
    assert counts[[0, 7, 19]].tolist() == [0, 0, 0]
    for row_cols, _ in _rows_of(slots, counts, cols, vals):
        assert not set(row_cols.tolist()) & {0, 7, 19}


def test_min_sum_rows_as_distance_matches_jaccard_formula():
    a, a_dense = _random_csr(30, 30, 0.2, 9, normalise=True)
    _, s_counts, s_cols, s_vals = _run_min_sum(a, a)
    slots, counts, cols, vals = _run_min_sum(a, a, as_distance=True)  # same room per row as the sums
    assert vals.dtype == np.float32
    for i in range(30):
        sc = s_cols[slots[i]:slots[i] + s_counts[i]]
        sv = s_vals[slots[i]:slots[i] + s_counts[i]]
        d = (1.0 - sv / (2.0 - sv))
        expected = np.maximum(d, 0.0).astype(np.float32)
        keep = expected < np.float32(1.0)
        row_cols = cols[slots[i]:slots[i] + counts[i]]
        row_vals = vals[slots[i]:slots[i] + counts[i]]
        np.testing.assert_array_equal(row_cols, sc[keep])
        np.testing.assert_array_equal(row_vals, expected[keep])
        assert np.all((row_vals >= 0) & (row_vals < 1))
    # rows summing to 1 give S_ii = 1 (up to rounding), so d_ii = 0 is kept
    for i in np.flatnonzero(a_dense.sum(axis=1) > 0):
        row_cols = cols[slots[i]:slots[i] + counts[i]].tolist()
        assert i in row_cols
        assert vals[slots[i] + row_cols.index(i)] == pytest.approx(0.0, abs=1e-6)


def test_min_sum_rows_as_distance_keeps_only_values_below_the_cap():
    a, _ = _random_csr(30, 30, 0.2, 9, normalise=True)
    slots, counts, cols, vals = _run_min_sum(a, a, as_distance=True)
    c_slots, c_counts, c_cols, c_vals = _run_min_sum(a, a, as_distance=True, cap=0.8)
    for i in range(30):
        row_cols, row_vals = cols[slots[i]:slots[i] + counts[i]], vals[slots[i]:slots[i] + counts[i]]
        keep = row_vals < np.float32(0.8)
        np.testing.assert_array_equal(c_cols[c_slots[i]:c_slots[i] + c_counts[i]], row_cols[keep])
        np.testing.assert_array_equal(c_vals[c_slots[i]:c_slots[i] + c_counts[i]], row_vals[keep])
    assert 0 < c_counts.sum() < counts.sum()


def test_min_sum_rows_as_distance_drops_values_rounding_to_one_and_clips_at_zero():
    # row 0 and 1 share one tiny weight: d = 1 - ~5e-13, which float32 rounds to 1.0 -> dropped;
    # rows 2 and 3 are identical with S = 1: d = 0 (kept); row 4 with S > 1 vs itself: clipped to 0.
    dense = np.zeros((5, 6))
    dense[0, [0, 1]] = [1e-12, 1.0 - 1e-12]
    dense[1, [0, 2]] = [1e-12, 1.0 - 1e-12]
    dense[2, [3, 4]] = [0.5, 0.5]
    dense[3, [3, 4]] = [0.5, 0.5]
    dense[4, [5]] = [1.5]
    a = sp.csr_matrix(dense)
    a.sort_indices()
    slots, counts, cols, vals = _run_min_sum(a, a, as_distance=True)
    rows = _rows_of(slots, counts, cols, vals)
    assert rows[0][0].tolist() == [0] and rows[1][0].tolist() == [1]
    assert rows[2][0].tolist() == [2, 3] and rows[2][1].tolist() == [0.0, 0.0]
    assert rows[4][0].tolist() == [4] and rows[4][1].tolist() == [0.0]
    _, s_counts, _, _ = _run_min_sum(a, a)
    assert s_counts[0] == 2  # the sum mode keeps the tiny pair


def _wide_csr(rows, m, columns, seed):
    """A (rows, columns) and a B of m rows over the same columns, m spanning several buckets of the kernel."""
    a, _ = _random_csr(rows, columns, 0.3, seed, normalise=True)
    b = sp.random(m, columns, density=0.05, random_state=_rng(seed + 1), format="csr")
    b.data = 0.9 * b.data + 0.05
    b.sort_indices()
    return a, b


@pytest.mark.parametrize("as_distance", [False, True])
def test_bucketed_min_sum_equals_the_dense_accumulator_to_the_bit(as_distance):
    """Beyond DIRECT_MAX_COLUMNS the kernel sums through buckets of columns; the values, columns and their order
    must be those of the dense accumulator, on any lanes, with rows touching many buckets and some none."""
    m = 5 * kernels.BUCKET_COLUMNS + 123
    a, b = _wide_csr(24, m, 40, 11)
    a = sp.vstack([a, sp.csr_matrix((1, 40))]).tocsr()  # an empty row
    a.sort_indices()
    dense = _rows_of(*_run_min_sum(a, b, as_distance=as_distance, cap=0.9))
    assert sum(len(c) for c, _ in dense) > 1000
    assert max(int(c.max()) for c, _ in dense if len(c)) >= 5 * kernels.BUCKET_COLUMNS
    for lanes in (1, 3):
        bucketed = _rows_of(*_run_min_sum(a, b, lanes=lanes, as_distance=as_distance, cap=0.9, bucketed=True))
        for (dc, dv), (bc, bv) in zip(dense, bucketed):
            np.testing.assert_array_equal(bc, dc)
            np.testing.assert_array_equal(bv.view(np.uint8), dv.view(np.uint8))


def test_permuted_rows_sum_as_the_original_and_restored_rows_undo_the_renaming():
    """Renamed tracklets (`permuted_rows`) keep each row's summation order, so the min-sum of the renamed matrix,
    named back (`restored_rows`), is the original one to the bit, columns ascending."""
    a, _ = _random_csr(60, 60, 0.12, 12, normalise=True)
    order = _rng(13).permutation(60).astype(np.int64)
    rank = np.empty(60, dtype=np.int64)
    rank[order] = np.arange(60)
    indptr, indices, data = kernels.permuted_rows(a.indptr.astype(np.int64), a.indices, a.data, order, rank, 3)
    renamed = sp.csr_matrix((data, indices, indptr), shape=(60, 60))
    assert np.array_equal(renamed.toarray(), a.toarray()[order][:, order])
    slots, counts, cols, vals = _run_min_sum(a, a, as_distance=True)
    r_slots, r_counts, r_cols, r_vals = _run_min_sum(renamed, renamed, as_distance=True)
    packed = [np.concatenate([x[s:s + c] for s, c in zip(r_slots, r_counts)]) for x in (r_cols, r_vals)]
    back_counts, back_cols, back_vals = kernels.restored_rows(r_counts, packed[0], packed[1], order, rank, 3)
    assert np.array_equal(back_counts, counts)
    assert np.array_equal(back_cols, np.concatenate([cols[s:s + c] for s, c in zip(slots, counts)]))
    assert np.array_equal(back_vals, np.concatenate([vals[s:s + c] for s, c in zip(slots, counts)]))


@pytest.mark.parametrize("as_distance", [False, True])
def test_gather_rows_concatenates_rows_in_order(as_distance):
    a, _ = _random_csr(25, 30, 0.15, 10, normalise=as_distance)
    slots, counts, cols, vals = _run_min_sum(a, a, as_distance=as_distance)
    expected_cols = np.concatenate([cols[s:s + c] for s, c in zip(slots, counts)])
    expected_vals = np.concatenate([vals[s:s + c] for s, c in zip(slots, counts)])
    for lanes in LANES + (25,):
        out_cols = np.full(int(counts.sum()), -1, dtype=np.int32)
        out_vals = np.full(int(counts.sum()), np.nan, dtype=vals.dtype)
        kernels.gather_rows(slots, counts, cols, vals, out_cols, out_vals, lanes)
        np.testing.assert_array_equal(out_cols, expected_cols)
        np.testing.assert_array_equal(out_vals, expected_vals)


def test_gather_rows_skips_gaps_and_empty_rows():
    slots = np.array([0, 5, 5, 9, 20], dtype=np.int64)
    counts = np.array([2, 0, 3, 0, 1], dtype=np.int64)
    cols = np.arange(30, dtype=np.int32)
    vals = np.arange(30, dtype=np.float64) / 10
    out_cols = np.full(6, -1, dtype=np.int32)
    out_vals = np.full(6, np.nan)
    kernels.gather_rows(slots, counts, cols, vals, out_cols, out_vals, 2)
    assert out_cols.tolist() == [0, 1, 5, 6, 7, 20]
    np.testing.assert_array_equal(out_vals, np.array([0, 1, 5, 6, 7, 20]) / 10)


# ---------------------------------------------------------------- reciprocal_rows


def _set_reciprocal(lists, length):
    n = len(lists)
    heads = [set(lists[i, :length].tolist()) for i in range(n)]
    return [sorted(j for j in heads[i] if i in heads[j]) for i in range(n)]


@pytest.mark.parametrize("make_lists", [_knn_lists, _random_lists], ids=["knn", "random"])
@pytest.mark.parametrize("length, half_length", [(8, 4), (10, 10), (5, 1), (12, 6)])
def test_reciprocal_rows_match_set_definition_for_both_lengths(make_lists, length, half_length):
    lists = make_lists(40, 12, 11)
    lists = lists[0] if isinstance(lists, tuple) else lists
    full_ptr, full_idx, half_ptr, half_idx = kernels.reciprocal_rows(lists, length, half_length, 3)
    assert full_ptr.dtype == np.int64 and half_ptr.dtype == np.int64
    assert full_idx.dtype == np.int32 and half_idx.dtype == np.int32
    assert _csr_rows(full_ptr, full_idx) == _set_reciprocal(lists, length)
    assert _csr_rows(half_ptr, half_idx) == _set_reciprocal(lists, half_length)


def test_reciprocal_rows_are_symmetric_and_contain_self():
    lists, _ = _knn_lists(45, 9, 12)
    full_ptr, full_idx, half_ptr, half_idx = kernels.reciprocal_rows(lists, 9, 5, 2)
    for ptr, idx in [(full_ptr, full_idx), (half_ptr, half_idx)]:
        rows = [set(r) for r in _csr_rows(ptr, idx)]
        for i, members in enumerate(rows):
            assert i in members
            assert all(i in rows[j] for j in members)
    half = _csr_rows(half_ptr, half_idx)
    full = _csr_rows(full_ptr, full_idx)
    assert all(set(h) <= set(f) for h, f in zip(half, full))


def test_reciprocal_rows_independent_of_lanes():
    lists = _random_lists(37, 10, 13)
    reference = kernels.reciprocal_rows(lists, 10, 5, 1)
    for lanes in LANES + (37,):
        for got, expected in zip(kernels.reciprocal_rows(lists, 10, 5, lanes), reference):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- expanded_rows


def _set_expanded(full, half):
    expanded = []
    for members in map(set, full):
        union = set(members)
        for c in members:
            candidate = set(half[c])
            if len(candidate & members) > 2 / 3 * len(candidate):
                union |= candidate
        expanded.append(sorted(union))
    return expanded


@pytest.mark.parametrize("seed, k, length, half_length", [(14, 10, 10, 5), (15, 8, 8, 4), (16, 12, 11, 6)])
def test_expanded_rows_match_set_definition(seed, k, length, half_length):
    lists, _ = _knn_lists(50, k, seed)
    full_ptr, full_idx, half_ptr, half_idx = kernels.reciprocal_rows(lists, length, half_length, 1)
    indptr, indices = kernels.expanded_rows(full_ptr, full_idx, half_ptr, half_idx, 3)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    expected = _set_expanded(_csr_rows(full_ptr, full_idx), _csr_rows(half_ptr, half_idx))
    assert _csr_rows(indptr, indices) == expected


def _csr_of(rows):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.array([j for r in rows for j in r], dtype=np.int32)
    return indptr, indices


def test_expanded_rows_needs_strictly_more_than_two_thirds_shared():
    # R(0) = {0, 1, 2}; R_half(1) = {1, 2, 3}: 2 of 3 shared (= 2/3, not more) -> not added;
    # R_half(2) = {0, 1, 2, 4}: 3 of 4 shared (> 2/3) -> 4 added.
    full = [[0, 1, 2], [1], [2], [3], [4]]
    half = [[0], [1, 2, 3], [0, 1, 2, 4], [3], [4]]
    indptr, indices = kernels.expanded_rows(*_csr_of(full), *_csr_of(half), 2)
    assert _csr_rows(indptr, indices) == [[0, 1, 2, 4], [1], [2], [3], [4]]
    assert _csr_rows(indptr, indices) == _set_expanded(full, half)


def test_expanded_rows_handles_empty_sets():
    full = [[], [1, 2], [], [3]]
    half = [[], [1, 2], [], []]
    indptr, indices = kernels.expanded_rows(*_csr_of(full), *_csr_of(half), 1)
    assert _csr_rows(indptr, indices) == [[], [1, 2], [], [3]]


def test_expanded_rows_independent_of_lanes():
    lists = _random_lists(41, 10, 17)
    sets = kernels.reciprocal_rows(lists, 10, 6, 1)
    reference = kernels.expanded_rows(*sets, 1)
    for lanes in LANES + (41,):
        for got, expected in zip(kernels.expanded_rows(*sets, lanes), reference):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- squared_norms


@pytest.mark.parametrize("d", [1, 3, 8, 13, 16, 29])
def test_squared_norms_match_float64_numpy(d):
    points = (_rng(d).standard_normal((30, d)) * 10).astype(np.float32)
    got = kernels.squared_norms(points)
    assert got.dtype == np.float64 and got.shape == (30,)
    np.testing.assert_allclose(got, (points.astype(np.float64) ** 2).sum(axis=1), rtol=1e-14, atol=0)


def test_squared_norms_exact_on_integer_rows():
    points = _rng(18).integers(-50, 51, size=(25, 19)).astype(np.float32)
    np.testing.assert_array_equal(kernels.squared_norms(points), (points.astype(np.int64) ** 2).sum(axis=1))


def test_squared_norms_of_zero_rows_are_zero():
    np.testing.assert_array_equal(kernels.squared_norms(np.zeros((4, 11), dtype=np.float32)), np.zeros(4))


# ---------------------------------------------------------------- listed_sqdist


def _loop_listed(indices, sqdist, ptr, idx):
    out = np.full(len(idx), np.nan)
    for i in range(len(ptr) - 1):
        for e in range(ptr[i], ptr[i + 1]):
            j = idx[e]
            if j in indices[i].tolist():
                out[e] = sqdist[i, indices[i].tolist().index(j)]
            elif i in indices[j].tolist():
                out[e] = sqdist[j, indices[j].tolist().index(i)]
    return out


def test_listed_sqdist_matches_lists_and_nan_elsewhere():
    n = 40
    indices, sqdist = _knn_lists(n, 6, 19)
    support = sp.csr_matrix(_rng(20).random((n, n)) < 0.3, dtype=np.float64)
    support.sort_indices()
    ptr = support.indptr.astype(np.int64)
    got = kernels.listed_sqdist(indices, sqdist, ptr, support.indices)
    assert got.dtype == np.float64 and got.shape == (support.nnz,)
    expected = _loop_listed(indices, sqdist, ptr, support.indices)
    np.testing.assert_array_equal(got, expected)  # NaN positions compare equal
    rows = np.repeat(np.arange(n), np.diff(ptr))
    listed = np.array([j in indices[i] or i in indices[j] for i, j in zip(rows, support.indices)])
    assert listed.any() and (~listed).any()
    np.testing.assert_array_equal(np.isnan(got), ~listed)


def test_listed_sqdist_prefers_own_list_then_partner_list():
    # 0 lists 1 (value 5); 1 lists 0 (value 7); 2 is listed by 0 only; 0 is not in 2's list; 3 is in no list of 0.
    indices = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 1], [3, 1, 2]], dtype=np.int64)
    sqdist = np.array([[0, 5, 6], [0, 7, 8], [0, 9, 10], [0, 11, 12]], dtype=np.float32)
    ptr, idx = _csr_of([[0, 1, 2, 3], [0], [0], [0]])
    got = kernels.listed_sqdist(indices, sqdist, ptr, idx)
    np.testing.assert_array_equal(got, [0.0, 5.0, 6.0, np.nan, 7.0, 6.0, np.nan])


def test_listed_sqdist_matches_exact_float32_distances():
    indices, sqdist = _knn_lists(30, 5, 21)
    support = np.repeat(np.arange(30), 5), indices.ravel()
    pattern = sp.csr_matrix((np.ones(150), support), shape=(30, 30))
    pattern.sort_indices()
    got = kernels.listed_sqdist(indices, sqdist, pattern.indptr.astype(np.int64), pattern.indices)
    assert not np.isnan(got).any()
    rows = np.repeat(np.arange(30), np.diff(pattern.indptr))
    lookup = {(i, j): sqdist[i, t] for i in range(30) for t, j in enumerate(indices[i])}
    np.testing.assert_array_equal(got, [lookup[(i, j)] for i, j in zip(rows, pattern.indices)])


# ---------------------------------------------------------------- mean_of_listed_rows


@pytest.mark.parametrize("k2", [1, 2, 6, 10])
def test_mean_of_listed_rows_matches_dense_mean(k2):
    n, m = 35, 42
    v, v_dense = _random_csr(n, m, 0.15, 22 + k2, normalise=True)
    lists = _random_lists(n, 10, 30 + k2)
    indptr, indices, data = kernels.mean_of_listed_rows(
        v.indptr.astype(np.int64), v.indices, v.data, lists, k2, m, 3
    )
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == np.float64
    got = sp.csr_matrix((data, indices, indptr), shape=(n, m))
    assert all(np.all(np.diff(indices[indptr[i]:indptr[i + 1]]) > 0) for i in range(n))
    dense_mean = v_dense[lists[:, :k2]].mean(axis=1)
    np.testing.assert_allclose(got.toarray(), dense_mean, rtol=1e-14, atol=0)
    # pattern = union of the averaged rows' columns; sums in list order then / k2 are exact
    ordered = np.zeros((n, m))
    for t in range(k2):
        ordered += v_dense[lists[:, t]]
    ordered /= k2
    assert _csr_rows(indptr, indices) == [np.flatnonzero(row).tolist() for row in ordered]
    np.testing.assert_array_equal(got.toarray(), ordered)


def test_mean_of_listed_rows_k2_one_copies_first_neighbour_row():
    v, v_dense = _random_csr(20, 20, 0.3, 40)
    lists = _random_lists(20, 4, 41)
    indptr, indices, data = kernels.mean_of_listed_rows(v.indptr.astype(np.int64), v.indices, v.data, lists, 1, 20, 2)
    got = sp.csr_matrix((data, indices, indptr), shape=(20, 20)).toarray()
    np.testing.assert_array_equal(got, v_dense[lists[:, 0]])


def test_mean_of_listed_rows_independent_of_lanes():
    v, _ = _random_csr(33, 33, 0.2, 42, normalise=True)
    lists = _random_lists(33, 8, 43)
    args = (v.indptr.astype(np.int64), v.indices, v.data, lists, 6, 33)
    reference = kernels.mean_of_listed_rows(*args, 1)
    for lanes in LANES + (33,):
        for got, expected in zip(kernels.mean_of_listed_rows(*args, lanes), reference):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- bucket_of / upper_histogram / upper_values_up_to


SPECIAL = np.array(
    [-np.inf, -3e38, -2.0, -1.0, -1e-30, -1e-45, -0.0, 0.0, 1e-45, 1e-30, 1e-7, 0.5,
     np.nextafter(np.float32(1), np.float32(0)), 1.0, 1.0000001, 2.0, 3e38, np.inf],
    dtype=np.float32,
)


def test_bucket_of_preserves_value_order_including_negatives_and_zeros():
    values = np.sort(np.concatenate([SPECIAL, _rng(44).standard_normal(200).astype(np.float32) * 10]))
    buckets = [kernels.bucket_of(v) for v in values]
    assert all(0 <= b < kernels.KEY_BUCKETS for b in buckets)
    for x, y, bx, by in zip(values[:-1], values[1:], buckets[:-1], buckets[1:]):
        if x < y:
            assert bx <= by, (x, y)
    # -0.0 and 0.0 sit between the negatives and the positives, -0.0 first
    negative_zero, zero = kernels.bucket_of(-0.0), kernels.bucket_of(0.0)
    assert kernels.bucket_of(-1e-45) <= negative_zero <= zero <= kernels.bucket_of(1e-45)
    assert negative_zero < zero


def test_bucket_of_puts_one_at_the_start_of_its_bucket():
    one = kernels.bucket_of(1.0)
    assert kernels.bucket_of(np.nextafter(np.float32(1), np.float32(0))) < one
    assert kernels.bucket_of(1.0000001) == one
    assert kernels.bucket_of(0.999) < one < kernels.bucket_of(2.0)


def test_bucket_of_matches_compiled_bucket():
    for v in SPECIAL:
        assert kernels._bucket(np.float32(v).view(np.uint32)) == kernels.bucket_of(v)


def _random_pattern(n, seed):
    """CSR (int64 indptr, int32 indices, float32 data) with diagonal, lower and upper entries, zeros and negatives."""
    rng = _rng(seed)
    mask = rng.random((n, n)) < 0.35
    np.fill_diagonal(mask, True)
    rows, cols = np.nonzero(mask)
    data = rng.standard_normal(len(rows)).astype(np.float32)
    data[rng.random(len(rows)) < 0.15] = 0.0
    data[rng.random(len(rows)) < 0.05] = -0.0
    data[rng.random(len(rows)) < 0.1] = 1.0
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    return indptr, cols.astype(np.int32), data, rows


def _zero_bits(tolerance):
    return np.float32(tolerance).view(np.uint32)


@pytest.mark.parametrize("tolerance", [0.0, 0.3])
def test_upper_histogram_counts_only_nonzero_strictly_upper_entries(tolerance):
    indptr, indices, data, rows = _random_pattern(30, 45)
    stored, histogram = kernels.upper_histogram(indptr, indices, data.view(np.uint32), _zero_bits(tolerance))
    upper = indices > rows
    assert stored == int(upper.sum())
    values = data[upper & (np.abs(data) > np.float32(tolerance))]
    assert (data[upper] == 0).any() and (data[~upper] != 0).any()
    assert tolerance == 0 or ((np.abs(data[upper]) <= tolerance) & (data[upper] != 0)).any()
    expected = np.bincount([kernels.bucket_of(v) for v in values], minlength=kernels.KEY_BUCKETS)
    assert histogram.shape == (kernels.KEY_BUCKETS,)
    np.testing.assert_array_equal(histogram, expected)
    assert int(histogram.sum()) == len(values)


def test_upper_histogram_of_empty_and_diagonal_only_patterns():
    indptr = np.zeros(5, dtype=np.int64)
    stored, histogram = kernels.upper_histogram(indptr, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint32),
                                                _zero_bits(0))
    assert stored == 0 and not histogram.any()
    indptr = np.arange(5, dtype=np.int64)
    diagonal = np.arange(4, dtype=np.int32)
    stored, histogram = kernels.upper_histogram(indptr, diagonal, np.full(4, 0.5, dtype=np.float32).view(np.uint32),
                                                _zero_bits(0))
    assert stored == 0 and not histogram.any()


@pytest.mark.parametrize("seed, tolerance", [(46, 0.0), (47, 0.0), (46, 0.3)])
def test_upper_values_up_to_returns_exactly_the_values_up_to_bucket(seed, tolerance):
    indptr, indices, data, rows = _random_pattern(28, seed)
    bits = data.view(np.uint32)
    zero_bits = _zero_bits(tolerance)
    _, histogram = kernels.upper_histogram(indptr, indices, bits, zero_bits)
    cumulative = np.cumsum(histogram)
    upper_nonzero = data[(indices > rows) & (np.abs(data) > np.float32(tolerance))]
    buckets = np.array([kernels.bucket_of(v) for v in upper_nonzero])
    fixed = [0, kernels.bucket_of(-1.0), kernels.bucket_of(0.0), kernels.bucket_of(0.3), kernels.bucket_of(1.0) - 1,
             kernels.bucket_of(1.0), kernels.KEY_BUCKETS - 1]
    lasts = fixed + sorted(set(buckets.tolist()))[::5]
    for last in lasts:
        count = int(cumulative[last])
        got = kernels.upper_values_up_to(indptr, indices, data, bits, zero_bits, last, count)
        assert got.dtype == np.float32 and len(got) == count
        np.testing.assert_array_equal(np.sort(got), np.sort(upper_nonzero[buckets <= last]))
        assert np.all(np.abs(got) > np.float32(tolerance))


def test_upper_values_up_to_selects_the_smallest_values_as_eps_uses_them():
    # the bucket of the top-th smallest value holds it, and every smaller value lies at or before it
    indptr, indices, data, rows = _random_pattern(30, 48)
    bits = data.view(np.uint32)
    _, histogram = kernels.upper_histogram(indptr, indices, bits, _zero_bits(0))
    cumulative = np.cumsum(histogram)
    ordered = np.sort(data[(indices > rows) & (data != 0)])
    for top in [1, 5, len(ordered) // 2, len(ordered)]:
        last = int(np.searchsorted(cumulative, top))
        got = kernels.upper_values_up_to(indptr, indices, data, bits, _zero_bits(0), last, int(cumulative[last]))
        np.testing.assert_array_equal(np.sort(got)[:top], ordered[:top])

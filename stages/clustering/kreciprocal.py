"""Sparse building blocks of k-reciprocal encoding (Zhong et al., CVPR 2017 re-ranking).

Used by the clustering Jaccard distance (`stages.clustering.jaccard`, SpCL/MMT form) and reusable by test-time
re-ranking. The per-row work runs in compiled loops (`stages.clustering.kernels`, numba; parallel over row
ranges, each row computed alone, so results never depend on the thread count), none in Python:

- `reciprocal_sets`: R(i) = {j in L(i) : i in L(j)} over each point's first `length` neighbours.
- `expanded_sets`: R*(i) = R(i) united with R(c, round(k1/2)) of each candidate c in R(i) whose
  half-size set shares more than 2/3 of its members with R(i).
- `row_softmax`: V(i, R*(i)) = softmax of per-pair logits over each row's support.
- `query_expansion`: V_i <- mean of V over the first k2 entries of i's neighbour list.
- `pairwise_min_sum`: S(i, j) = sum_k min(A_ik, B_jk), the numerator of the Jaccard distance,
  computed only on pairs that share a column, block by block, over the inverted index.

Sets are returned as CSR patterns (n x n, sorted indices, data = 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from stages.clustering import kernels
from stages.clustering.penalties import NO_TERMS, KernelTerms

#: Scratch entries (int32 column + float64 sum or float32 distance) of one min-sum block: 8-12 MB,
#: small enough to stay in the last-level cache between the kernel and the gather.
DEFAULT_BLOCK_PAIRS = 1 << 20


def reciprocal_sets(neighbours: np.ndarray, *, length: int) -> sp.csr_matrix:
    """k-reciprocal neighbour sets over the first `length` entries of each list.

    Args:
        neighbours: (n, k) int64 neighbour lists, nearest first (k >= length), indices into the rows.
        length: how many leading entries form each list (the reference's `:k+1` slice, capped at k).

    Returns:
        (n, n) CSR pattern: row i holds R(i) = {j in L(i) : i in L(j)} (symmetric).
    """
    n = neighbours.shape[0]
    lists = np.ascontiguousarray(neighbours, dtype=np.int64)
    indptr, indices, _, _ = kernels.reciprocal_rows(lists, length, length, kernels.lane_count(n))
    return _pattern(indptr, indices, n)


def expanded_sets(neighbours: np.ndarray, *, k1: int) -> sp.csr_matrix:
    """R*(i): the k-reciprocal set of each point expanded with its candidates' half-size sets.

    The full lists have min(k1 + 1, k) entries and the half lists min(round(k1 / 2) + 1, k), as the
    reference's slices `[:k1+1]` and `[:round(k1/2)+1]` of a k-column rank table (round half to even).
    A candidate c in R(i) adds R(c, k1/2) when |R(c, k1/2) & R(i)| > 2/3 |R(c, k1/2)|.

    Args:
        neighbours: (n, k) int64 neighbour lists, the point itself first.
        k1: the k-reciprocal list size.

    Returns:
        (n, n) CSR pattern of R*(i) per row.
    """
    n, k = neighbours.shape
    lanes = kernels.lane_count(n)
    full_ptr, full_idx, half_ptr, half_idx = kernels.reciprocal_rows(
        np.ascontiguousarray(neighbours, dtype=np.int64), min(k1 + 1, k), min(int(np.around(k1 / 2)) + 1, k), lanes
    )
    indptr, indices = kernels.expanded_rows(full_ptr, full_idx, half_ptr, half_idx, lanes)
    return _pattern(indptr, indices, n)


def row_softmax(pattern: sp.csr_matrix, logits: np.ndarray) -> sp.csr_matrix:
    """Softmax of per-entry logits within each row of a CSR pattern (float64).

    Args:
        pattern: (n, m) CSR pattern with sorted indices; every row non-empty.
        logits: (nnz,) logits aligned with `pattern.indices`.

    Returns:
        (n, m) CSR with each row's entries summing to 1.
    """
    starts = pattern.indptr[:-1]
    lengths = np.diff(pattern.indptr)
    shifted = logits.astype(np.float64) - np.repeat(np.maximum.reduceat(logits, starts), lengths)
    weights = np.exp(shifted)
    weights /= np.repeat(np.add.reduceat(weights, starts), lengths)
    return sp.csr_matrix((weights, pattern.indices.copy(), pattern.indptr.copy()), shape=pattern.shape)


def query_expansion(v: sp.csr_matrix, neighbours: np.ndarray, *, k2: int) -> sp.csr_matrix:
    """Local query expansion: row i becomes the mean of the rows of its first k2 neighbours (self included).

    Args:
        v: (n, m) CSR rows.
        neighbours: (n, k) neighbour lists, k >= k2.
        k2: how many leading list entries to average.

    Returns:
        (n, m) CSR with sorted indices.
    """
    v = _canonical(v)
    lists = np.ascontiguousarray(neighbours, dtype=np.int64)
    indptr, indices, data = kernels.mean_of_listed_rows(
        v.indptr.astype(np.int64), v.indices, v.data, lists, k2, v.shape[1], kernels.lane_count(len(lists))
    )
    return sp.csr_matrix((data, indices, indptr), shape=(neighbours.shape[0], v.shape[1]))


@dataclass(frozen=True)
class MinSumBlock:
    """Rows [start, stop) of S(i, j) = sum_k min(A_ik, B_jk), stored where S > 0.

    Attributes:
        start, stop: the block's row range.
        indptr: (stop - start + 1,) int64 offsets into `indices` / `values`.
        indices: (nnz,) int32 columns, sorted within each row.
        values: (nnz,) float64 sums.
    """

    start: int
    stop: int
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class MinSumScratch:
    """Rows [start, stop) as `kernels.min_sum_rows` leaves them: row r's entries at slots[r].

    The arrays are views of buffers reused by the next block: consume (gather) before advancing.

    Attributes:
        start, stop: the block's row range.
        slots: (stop - start,) int64 offset of each row's entries in `cols` / `values`.
        counts: (stop - start,) int64 entries of each row (columns ascending).
        cols: int32 columns; values: float64 S, or float32 Jaccard distances (see `min_sum_scratch`).
    """

    start: int
    stop: int
    slots: np.ndarray
    counts: np.ndarray
    cols: np.ndarray
    values: np.ndarray


def pairwise_min_sum(
    a: sp.csr_matrix, b: sp.csr_matrix | None = None, *, block_pairs: int | None = None
) -> Iterator[MinSumBlock]:
    """S(i, j) = sum_k min(A_ik, B_jk) for every pair sharing a non-zero column, in row blocks.

    This is the reference's inverted-index loop (`temp_min += minimum(V[i, k], V[invIndex[k], k])`)
    compiled (`stages.clustering.kernels`): for each non-zero (i, k) of A, every non-zero (j, k) of B's column k
    adds min(A_ik, B_jk) to (i, j) in a dense per-row accumulator, in the order of i's non-zeros
    (ascending k), so S is exactly symmetric when B is A and every value is independent of the block
    size and thread count. Non-negative inputs are assumed (Jaccard weights). Cost: one step per
    contribution (sum over columns of A-count x B-count) plus m / 64 bitmap words per row.

    Args:
        a: (n, d) CSR with non-negative entries.
        b: (m, d) CSR, or None for A itself.
        block_pairs: scratch entries per block (default `DEFAULT_BLOCK_PAIRS`; at least m are used).

    Yields:
        `MinSumBlock`s covering rows 0..n-1 in order.
    """
    for raw in min_sum_scratch(a, b, block_pairs=block_pairs):
        indptr = np.concatenate([[0], np.cumsum(raw.counts)]).astype(np.int64)
        indices = np.empty(indptr[-1], dtype=np.int32)
        values = np.empty(indptr[-1], dtype=np.float64)
        kernels.gather_rows(raw.slots, raw.counts, raw.cols, raw.values, indices, values, kernels.lane_count(raw.stop - raw.start))
        yield MinSumBlock(raw.start, raw.stop, indptr, indices, values)


def min_sum_scratch(
    a: sp.csr_matrix, b: sp.csr_matrix | None = None, *, as_distance: bool = False, block_pairs: int | None = None,
    cap: float = 1.0, terms: KernelTerms = NO_TERMS, first_row: int = 0, as_given: bool = False,
) -> Iterator[MinSumScratch]:
    """The blocks of `pairwise_min_sum` before gathering (what `stages.clustering.jaccard` copies straight out).

    Each block's rows get room for min(m, contributions) entries in a scratch buffer of about
    `block_pairs` entries, reused by the next block; one call of the parallel kernel fills them.

    Args:
        a, b, block_pairs: as in `pairwise_min_sum`.
        as_distance: values are float32 Jaccard distances max(0, 1 - S / (2 - S)) and only those
            below `cap` are kept, instead of float64 S.
        cap: with `as_distance`, the bound below which distances are kept (1.0: all that share weight).
        terms: SCP / STS a kept distance must stay below the cap after.
        first_row: the row of B that A's row 0 is (A a slice of B's rows; the penalties index B's).
        as_given: A is a float64 CSR without duplicates or zeros whose entries are in the order to sum them (each
            row's columns ascending otherwise): a renamed matrix (`kernels.permuted_rows`) then sums as the original.
    """
    a = a if as_given else _canonical(a)
    by_col = (a if b is None else _canonical(b)).tocsc()
    by_col.sort_indices()
    m = by_col.shape[0]
    a_ptr = a.indptr.astype(np.int64)
    col_ptr = by_col.indptr.astype(np.int64)
    col_rows = by_col.indices.astype(np.int32)
    contributions = min_sum_contributions(a, col_ptr)
    room = np.minimum(contributions, m)
    budget = max(int(room.max(initial=0)), DEFAULT_BLOCK_PAIRS if block_pairs is None else block_pairs, 1)
    cols = np.empty(budget, dtype=np.int32)
    values = np.empty(budget, dtype=np.float32 if as_distance else np.float64)
    workspace = kernels.MinSumWorkspace.for_rows(m, int(contributions.max(initial=0)), kernels.lane_count(a.shape[0]))
    for start, stop in _row_blocks(room, budget=budget):
        slots = np.concatenate([[0], np.cumsum(room[start:stop - 1])]).astype(np.int64)
        counts = np.zeros(stop - start, dtype=np.int64)
        kernels.min_sum_rows(
            a_ptr, a.indices, a.data, col_ptr, col_rows, by_col.data, m, start, stop, slots, cols, values, counts,
            kernels.lane_count(stop - start), as_distance, cap, terms, first_row, *workspace,
        )
        yield MinSumScratch(start, stop, slots, counts, cols, values)


def min_sum_contributions(a: sp.csr_matrix, col_ptr: np.ndarray) -> np.ndarray:
    """(n,) int64 contributions of each row of A: the sum of B's column counts over its non-zeros.

    Args:
        a: (n, d) CSR.
        col_ptr: (d + 1,) column offsets of B in CSC form.
    """
    rows = np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr))
    return np.bincount(rows, weights=np.diff(col_ptr)[a.indices], minlength=a.shape[0]).astype(np.int64)


def _row_blocks(room: np.ndarray, *, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges whose `room` adds up to at most `budget` (at least one row each)."""
    cumulative = np.concatenate([[0], np.cumsum(room)])
    n = len(room)
    start = 0
    while start < n:
        by_room = int(np.searchsorted(cumulative, cumulative[start] + budget, side="right")) - 1
        stop = min(n, max(by_room, start + 1))
        yield start, stop
        start = stop


def _pattern(indptr: np.ndarray, indices: np.ndarray, n: int) -> sp.csr_matrix:
    """An (n, n) CSR pattern (data = 1.0) from kernel output with sorted rows."""
    return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))


def _canonical(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A float64 CSR copy with sorted indices and no stored zeros."""
    canonical = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    canonical.sum_duplicates()
    canonical.eliminate_zeros()
    return canonical

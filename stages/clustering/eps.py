"""Adaptive DBSCAN radius: the mean of the smallest rho fraction of the pairwise non-zero distances.

The reference (SpCL/MMT training scripts) takes the strictly upper triangle of the dense N x N
distance, keeps its non-zero entries, sorts them and averages the first round(rho * count). Here
"non-zero" means |d| > `ZERO_TOLERANCE` (1e-5), not d != 0: pairs whose expanded rows
are equal have d = 0 in exact arithmetic, and float summation order turns some of them into a few
ulps (reference vectors: 229 exact zeros and 148 values in (0, 9e-7] in the stored matrix, 218 and
159 here, other counts under other thread / block / precision orders). Counting those as non-zero
drags eps down by an amount that depends on the order: on the reference vectors 0.0390 (stored),
0.0424 (the reference's float32 structure re-run, `benchmarks/jaccard_baseline.py`), 0.0353 (the
kernels here), 0.0850 (dense float32 sums), from matrices equal within 9e-7. With the tolerance every
one of them gives 0.094769 (tests/test_eps.py perturbs the order).

The distance is a `SparseDistance`: the entries off its support are not stored but still count. They
are 1.0 passed through the recorded penalties (SCP adds >= 0, STS multiplies by >= 1), so every one
of them is >= 1 and larger than any stored distance below 1. Hence:

- count = stored non-zero upper entries + n(n-1)/2 - stored upper entries (implicit ones never 0);
- when the smallest round(rho * count) values are all among the stored values below 1 (always, in
  practice: rho = 1.6e-3), they are taken from the support alone;
- otherwise the remainder is the smallest of {stored values >= 1} and {implicit values}: the latter
  are all 1.0 without penalties, or are evaluated block by block over the off-support pairs (exact,
  O(n^2) time, bounded memory).

The stored values are visited twice by compiled loops (`stages.clustering.kernels`): a histogram over
order-preserving float32 buckets finds the bucket holding the round(rho * count)-th smallest, then
only the values up to that bucket are collected and partitioned (no copy of the whole support).

A count so small that round(rho * count) is 0 (a few dozen points) uses the single smallest entry
instead of the reference's empty mean (NaN).
"""

from __future__ import annotations

import numpy as np

from stages.clustering import kernels
from stages.clustering.sparse_distance import IMPLICIT, ZERO_TOLERANCE, SparseDistance
from stages.errors import AuxReidError

#: Cells of the dense (rows x n) mask evaluated at once when implicit values are needed.
_BLOCK_CELLS = 1 << 22
#: Histogram bucket where IMPLICIT (1.0) starts: its low 16 bits are 0, so every stored value below
#: it lies in an earlier bucket and every other one in this bucket or later.
_IMPLICIT_BUCKET = kernels.bucket_of(IMPLICIT)


def adaptive_eps(distance: SparseDistance, *, rho: float, zero_tolerance: float = ZERO_TOLERANCE,
                 pairs_per_point: float | None = None) -> float:
    """Mean of the smallest rho fraction of the strictly upper-triangular non-zero distances.

    Args:
        distance: (n, n) symmetric sparse distance; off-support entries are implicit.
        rho: the fraction (1.6e-3 in the paper), in (0, 1).
        zero_tolerance: entries with |d| <= this (compared in float32) count as zero and are left
            out; 0 gives the reference's exact-zero rule, which float rounding makes fragile.
        pairs_per_point: the scale-aware form: average the smallest round(pairs_per_point x n / 2) values
            instead (rho is then unused). The paper's fraction of all n(n-1)/2 pairs is rho x (n-1) / 2 pairs per
            point, which grows with n: 8 at Duke's 8k pieces, but 800 at a million tracklets, where the mean would
            reach past one identity's pairs into a crowd's.

    Returns:
        eps, as the reference computes it on the dense matrix with "non-zero" meaning |d| > zero_tolerance.

    Raises:
        AuxReidError: fewer than 2 points, rho outside (0, 1), or a negative zero_tolerance.
    """
    n = distance.n
    if n < 2:
        raise AuxReidError(f"the adaptive eps needs at least 2 points, got {n}; set cluster.eps_mode: fixed")
    if not 0.0 < rho < 1.0:
        raise AuxReidError(f"rho must be in (0, 1), got {rho} (cluster.rho)")
    if pairs_per_point is not None and not pairs_per_point > 0:
        raise AuxReidError(f"pairs_per_point must be > 0, got {pairs_per_point} (cluster.eps_pairs_per_point)")
    if not 0.0 <= zero_tolerance < IMPLICIT:
        raise AuxReidError(f"zero_tolerance must be in [0, 1), got {zero_tolerance}")
    bits = distance.data.view(np.uint32)
    zero_bits = np.float32(zero_tolerance).view(np.uint32)
    stored_upper, histogram = kernels.upper_histogram(distance.indptr, distance.indices, bits, zero_bits)
    cumulative = np.cumsum(histogram)
    nonzero_count = int(cumulative[-1])
    implicit_count = n * (n - 1) // 2 - stored_upper
    if pairs_per_point is None:
        top = max(1, int(np.round(rho * (nonzero_count + implicit_count))))
    else:
        top = max(1, min(int(np.round(pairs_per_point * n / 2)), nonzero_count + implicit_count))
    if distance.capped:
        return _capped_eps(distance, top, bits, zero_bits, cumulative)
    below_count = int(cumulative[_IMPLICIT_BUCKET - 1])
    # Every value in a bucket up to `last` is needed or may be: the smallest `top` stored values (or
    # all of them) lie there, a few buckets' worth at most.
    last = min(int(np.searchsorted(cumulative, top)), len(cumulative) - 1)
    values = kernels.upper_values_up_to(distance.indptr, distance.indices, distance.data, bits, zero_bits, last,
                                        int(cumulative[last]))
    if top <= below_count:
        return float(np.partition(values, top - 1)[:top].astype(np.float64).mean())
    below = values[values < IMPLICIT]
    rest = top - below_count
    pool = np.concatenate([values[values >= IMPLICIT], _smallest_implicit(distance, rest, implicit_count)])
    chosen = np.partition(pool, rest - 1)[:rest]
    return float((below.astype(np.float64).sum() + chosen.astype(np.float64).sum()) / top)


class BeyondCap(AuxReidError):
    """The smallest pairs the eps averages reach past a capped distance's cap: compute it again with a higher cap.

    Attributes:
        needed: how many pairs the eps averages.
        below: how many stored pairs (after the penalties) lie below the cap.
    """

    def __init__(self, needed: int, below: int, cap: float) -> None:
        super().__init__(f"the adaptive eps averages the smallest {needed:,} pairs, but only {below:,} lie below the "
                         f"Jaccard cap {cap:.4g}; raise the cap")
        self.needed, self.below = needed, below


def _capped_eps(distance: SparseDistance, top: int, bits: np.ndarray, zero_bits: np.uint32,
                cumulative: np.ndarray) -> float:
    """The eps of a capped distance: exact when the `top` smallest values all lie below the cap, since every pair
    left out was at least the cap before penalties that only raise it.

    Raises:
        BeyondCap: fewer than `top` stored values lie below the cap.
    """
    cap = np.float32(distance.cap)
    last = min(int(kernels.bucket_of(cap)), len(cumulative) - 1)
    values = kernels.upper_values_up_to(distance.indptr, distance.indices, distance.data, bits, zero_bits, last,
                                        int(cumulative[last]))
    below = values[values < cap]
    if len(below) < top:
        raise BeyondCap(top, len(below), float(cap))
    return float(np.partition(below, top - 1)[:top].astype(np.float64).mean())


def _keep_smallest(values: np.ndarray, count: int) -> np.ndarray:
    """The `count` smallest values (all of them when there are fewer), in no particular order."""
    return np.partition(values, count - 1)[:count] if len(values) > count else values


def _smallest_implicit(distance: SparseDistance, count: int, implicit_count: int) -> np.ndarray:
    """Up to `count` smallest values among the strictly upper-triangular off-support entries."""
    n = distance.n
    if not distance.operations:
        return np.full(min(count, implicit_count), IMPLICIT, dtype=np.float32)
    best = np.empty(0, dtype=np.float32)
    step = max(1, _BLOCK_CELLS // n)
    for start in range(0, n, step):
        stop = min(n, start + step)
        off = np.triu(np.ones((stop - start, n), dtype=bool), k=start + 1)
        lo, hi = distance.indptr[start], distance.indptr[stop]
        local_rows = np.repeat(np.arange(stop - start), np.diff(distance.indptr[start:stop + 1]))
        off[local_rows, distance.indices[lo:hi]] = False
        rows, cols = np.nonzero(off)
        best = _keep_smallest(np.concatenate([best, distance.implicit_values(rows + start, cols.astype(np.int64))]), count)
    return best

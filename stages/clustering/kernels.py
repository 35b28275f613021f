"""Compiled (numba) loops of the k-reciprocal Jaccard distance and its adaptive eps.

Why compiled: the Jaccard numerator S(i, j) = sum_k min(A_ik, B_jk) has about 5e7 contributions at
n = 10,000 (k1 30, k2 6). As numpy array passes each contribution costs ~10 memory round trips
(gather, minimum, key, bincount, scan); one loop over the inverted index keeps a row's accumulator
in cache and visits each contribution once. The set building (reciprocal lists, expansion, query
expansion) and the eps selection are per-row loops of the same kind. Each row is computed alone, in
a fixed order (the min-sum: ascending k of row i, then ascending j within column k, as the array
version did, so S is bit-identical to it), so the results never depend on the thread count or the
block sizes: threads (`prange`) only split rows into contiguous lanes.

Compiling all kernels takes ~15 s, so they are cached (numba `cache=True`) at first use, where
numba finds a writable place in its own order: NUMBA_CACHE_DIR, this package's `__pycache__`, the
per-user cache (~/.cache/numba); loading them from there takes ~0.3 s per process. In a read-only
checkout without a writable home nothing can be cached (numba would refuse at import): the kernels
then compile in every process, with a warning that says to set NUMBA_CACHE_DIR. Inputs are trusted
here: the callers (`stages.clustering.kreciprocal`, `stages.clustering.jaccard`, `stages.clustering.eps`) pass canonical arrays.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.misc.appdirs import AppDirs


def _cache_writable() -> bool:
    """Whether one of numba's cache locations (see the module docstring) accepts a file."""
    places = [Path(numba.config.CACHE_DIR)] if numba.config.CACHE_DIR else []
    places += [Path(__file__).with_name("__pycache__"), Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)]
    for place in places:
        try:
            os.makedirs(place, exist_ok=True)
            tempfile.TemporaryFile(dir=place).close()
        except OSError:
            continue
        return True
    return False


#: Whether the compiled kernels are cached on disk (else compiled once per process).
CACHE = _cache_writable()
if not CACHE:
    warnings.warn(
        "numba cannot cache the auxreid kernels (no writable NUMBA_CACHE_DIR, stages/__pycache__ or "
        "~/.cache/numba): they compile in every process (~15 s); set NUMBA_CACHE_DIR to a writable directory",
        stacklevel=2,
    )


def lane_count(rows: int) -> int:
    """Parallel row ranges for a kernel call: a few per thread for balance (results never depend on it)."""
    return max(1, min(rows, 4 * numba.get_num_threads()))


@numba.njit(cache=CACHE, inline="always")
def penalised(i: int, j: int, distance: np.float32, terms) -> np.float32:
    """d(i, j) after SCP and STS (`stages.clustering.penalties.AuxPenalties`), rounded as `SparseDistance` rounds:
    float64 arithmetic, float32 after each term. p is the transit density at the pair's oriented gap (the span
    that starts first is "from"; ties by end, then camera), 0 outside the model's edges."""
    value = distance
    mine, other = terms.rows[i], terms.rows[j]
    if terms.scp:
        value = np.float32(np.float64(value) + (terms.scp_lambda if mine[0] == other[0] else 0.0))
    if terms.sts:
        camera_a, start_a, end_a = int(mine[1]), mine[2], mine[3]
        camera_b, start_b, end_b = int(other[1]), other[2], other[3]
        a_first = start_a < start_b or (start_a == start_b and (end_a < end_b or (end_a == end_b
                                                                                  and camera_a <= camera_b)))
        if a_first:
            cam_from, cam_to, gap = camera_a, camera_b, start_b - end_a
        else:
            cam_from, cam_to, gap = camera_b, camera_a, start_a - end_b
        index = np.floor((gap - terms.first_edge) / terms.bin_seconds)
        p = 0.0
        if index >= 0 and index < terms.density.shape[2]:
            p = terms.density[cam_from, cam_to, int(index)]
        value = np.float32(np.float64(value) * (1.0 + terms.sts_lambda * np.exp(-terms.sts_gamma * p)))
    return value


#: Up to this many columns of B the min-sum adds straight into one dense accumulator (1 MB of float64, within a
#: core's L2 cache); beyond, each row's contributions are first sorted into buckets of BUCKET_COLUMNS columns
#: (`min_sum_rows`' `bucketed`).
DIRECT_MAX_COLUMNS = 1 << 17
BUCKET_SHIFT = 12
BUCKET_COLUMNS = 1 << BUCKET_SHIFT


class MinSumWorkspace(NamedTuple):
    """Per-lane scratch of `min_sum_rows`, allocated once for all its calls on one matrix.

    Why once: at a million columns a row block holds a few dozen rows, and a dense accumulator allocated per lane
    per block was 8 MB of fresh pages each time (its page faults cost more than the sums). The kernel leaves every
    array as it found it (accumulators and bitmaps cleared as the rows are emitted).
    """

    bucketed: bool
    acc: np.ndarray
    bits: np.ndarray
    ends: np.ndarray
    stream_cols: np.ndarray
    stream_vals: np.ndarray

    @classmethod
    def for_rows(cls, m: int, most: int, lanes: int, bucketed: bool | None = None) -> MinSumWorkspace:
        """Room for `lanes` lanes against m columns, rows of at most `most` contributions; bucketed beyond
        DIRECT_MAX_COLUMNS columns unless told."""
        bucketed = m > DIRECT_MAX_COLUMNS if bucketed is None else bucketed
        width = BUCKET_COLUMNS if bucketed else m
        buckets = (m + BUCKET_COLUMNS - 1) >> BUCKET_SHIFT if bucketed else 1
        room = most if bucketed else 0
        return cls(bucketed, np.zeros((lanes, width)), np.zeros((lanes, (width + 63) >> 6), dtype=np.uint64),
                   np.zeros((lanes, buckets + 1), dtype=np.int64), np.empty((lanes, room), dtype=np.int32),
                   np.empty((lanes, room)))


@numba.njit(cache=CACHE, inline="always")
def _emit(total: float, i: int, col: int, pos: int, out_cols: np.ndarray, out_vals: np.ndarray, as_distance: bool,
          bound: np.float32, terms, first_row: int) -> int:
    """Write S(i, col) = total (or its distance, when below the cap after the penalties) at pos; the next pos."""
    if not as_distance:
        out_cols[pos] = col
        out_vals[pos] = total
        return pos + 1
    d = 1.0 - total / (2.0 - total)
    distance = np.float32(d if d > 0.0 else 0.0)
    if not distance < bound:
        return pos
    if terms.scp or terms.sts:
        if terms.windowed:  # a partner outside the window gets STS's largest factor, and SCP only adds
            window = terms.window[first_row + i]
            if (col < window[0] or col >= window[1]) and not (
                    np.float32(np.float64(distance) * (1.0 + terms.sts_lambda)) < bound):
                return pos
        if not penalised(first_row + i, col, distance, terms) < bound:
            return pos
    out_cols[pos] = col
    out_vals[pos] = distance
    return pos + 1


@numba.njit(cache=CACHE, inline="always")
def _emit_touched(acc: np.ndarray, bits: np.ndarray, first_word: int, stop_word: int, base: int, i: int, pos: int,
                  out_cols: np.ndarray, out_vals: np.ndarray, as_distance: bool, bound: np.float32, terms,
                  first_row: int) -> int:
    """Emit row i's touched columns base + c, for the set bits c of bits[first_word:stop_word], ascending; clear
    them and their sums in acc on the way. The next pos."""
    one = np.uint64(1)
    for w in range(first_word, stop_word):
        word = bits[w]
        if word == 0:
            continue
        bits[w] = 0
        while word != 0:
            local = (w << 6) + trailing_zeros(word)
            word &= word - one
            pos = _emit(acc[local], i, base + local, pos, out_cols, out_vals, as_distance, bound, terms, first_row)
            acc[local] = 0.0
    return pos


@numba.njit(cache=CACHE, parallel=True)
def min_sum_rows(
    a_ptr: np.ndarray, a_idx: np.ndarray, a_val: np.ndarray, col_ptr: np.ndarray, col_rows: np.ndarray,
    col_vals: np.ndarray, m: int, start: int, stop: int, slots: np.ndarray, out_cols: np.ndarray,
    out_vals: np.ndarray, counts: np.ndarray, lanes: int, as_distance: bool, cap: float, terms, first_row: int,
    bucketed: bool, acc_space: np.ndarray, bits_space: np.ndarray, ends_space: np.ndarray, stream_cols_space: np.ndarray,
    stream_vals_space: np.ndarray,
) -> None:
    """S(i, j) = sum_k min(A_ik, B_jk) for rows [start, stop) of A against the m rows of B, by row.

    Row i's entries, columns ascending, go to out_cols / out_vals from slots[i - start] (room for
    min(m, contributions of i) entries); counts[i - start] gets how many. The rows are split into
    `lanes` contiguous ranges run in parallel, each with its own accumulator and bitmap of touched columns,
    emitted in order by scanning the bitmap words and cleared on the way.

    Without `bucketed` the accumulator is dense over all m columns. With it (from DIRECT_MAX_COLUMNS on), as a row's contributions are
    several thousand at random places among up to millions of columns (an 8 MB accumulator at a million, out of
    cache on nearly every touch: 46 ns a contribution on this project's 2-core machine), so they are first
    counted, then copied in generation order into buckets of BUCKET_COLUMNS consecutive columns, and each bucket is
    summed in a small accumulator that stays in the L1 cache. Either way S(i, j) adds its terms in the same order
    (ascending k), so the two give the same values to the bit.

    Args:
        a_ptr, a_idx, a_val: A in CSR (int64 offsets, float64 > 0); each row's entries in the order to sum them
            (columns ascending, or see `permuted_rows`).
        col_ptr, col_rows, col_vals: B in CSC (int64 offsets, int32 rows sorted per column, float64 > 0).
        m: number of rows of B.
        start, stop: the row range of A.
        slots: (stop - start,) int64 offsets into the outputs.
        out_cols: int32 columns.
        out_vals: float64 S, or with `as_distance` float32 Jaccard distances max(0, 1 - S / (2 - S)),
            keeping only those < cap (`stages.clustering.jaccard`).
        counts: (stop - start,) int64 entries written per row.
        lanes: parallel row ranges (see `lane_count`).
        as_distance: emit distances instead of sums.
        cap: with `as_distance`, the float32 bound below which distances are kept (1.0: every pair that shares
            weight; lower at city scale, where only the pairs that can fall within eps are worth memory).
        terms: `stages.clustering.penalties.KernelTerms`: with SCP or STS, a distance is kept when its penalised
            value (`penalised`) is below the cap; the raw value is stored.
        first_row: the row of B that A's row 0 is (for the penalties: A is a slice of B's rows).
        most: the most contributions of any row in [start, stop) (room for the buckets).
        bucketed: sum through the buckets (the same values; faster when the dense accumulator is beyond the cache).
    """
    rows = stop - start
    bound = np.float32(cap)
    one = np.uint64(1)
    direct = not bucketed
    width = m if direct else BUCKET_COLUMNS
    words = (width + 63) >> 6
    buckets = 1 if direct else (m + BUCKET_COLUMNS - 1) >> BUCKET_SHIFT
    for lane in numba.prange(lanes):
        lo = start + rows * lane // lanes
        hi = start + rows * (lane + 1) // lanes
        acc = acc_space[lane]
        bits = bits_space[lane]
        ends = ends_space[lane]
        stream_cols = stream_cols_space[lane]
        stream_vals = stream_vals_space[lane]
        for i in range(lo, hi):
            pos = slots[i - start]
            first = pos
            if direct:
                first_word, last_word = words, -1
                for e in range(a_ptr[i], a_ptr[i + 1]):
                    k = a_idx[e]
                    x = a_val[e]
                    begin, end = col_ptr[k], col_ptr[k + 1]
                    if begin == end:
                        continue
                    first_word = min(first_word, col_rows[begin] >> 6)
                    last_word = max(last_word, col_rows[end - 1] >> 6)
                    for p in range(begin, end):
                        j = col_rows[p]
                        y = col_vals[p]
                        acc[j] += x if x < y else y
                        bits[j >> 6] |= one << np.uint64(j & 63)
                pos = _emit_touched(acc, bits, first_word, last_word + 1, 0, i, pos, out_cols, out_vals, as_distance,
                                    bound, terms, first_row)
            else:
                for e in range(a_ptr[i], a_ptr[i + 1]):
                    k = a_idx[e]
                    for p in range(col_ptr[k], col_ptr[k + 1]):
                        ends[(col_rows[p] >> BUCKET_SHIFT) + 1] += 1
                for b in range(buckets):
                    ends[b + 1] += ends[b]
                for e in range(a_ptr[i], a_ptr[i + 1]):
                    k = a_idx[e]
                    x = a_val[e]
                    for p in range(col_ptr[k], col_ptr[k + 1]):
                        j = col_rows[p]
                        y = col_vals[p]
                        b = j >> BUCKET_SHIFT
                        q = ends[b]
                        stream_cols[q] = j
                        stream_vals[q] = x if x < y else y
                        ends[b] = q + 1
                begin = 0
                for b in range(buckets):
                    end = ends[b]
                    if end == begin:
                        continue
                    base = b << BUCKET_SHIFT
                    for q in range(begin, end):
                        local = stream_cols[q] - base
                        acc[local] += stream_vals[q]
                        bits[local >> 6] |= one << np.uint64(local & 63)
                    pos = _emit_touched(acc, bits, 0, words, base, i, pos, out_cols, out_vals, as_distance, bound,
                                        terms, first_row)
                    begin = end
                ends[:] = 0
            counts[i - start] = pos - first


@numba.njit(cache=CACHE, parallel=True)
def gather_rows(
    slots: np.ndarray, counts: np.ndarray, cols: np.ndarray, vals: np.ndarray, out_cols: np.ndarray,
    out_vals: np.ndarray, lanes: int,
) -> None:
    """Concatenate the rows left by `min_sum_rows` (counts[r] entries from slots[r]) into out_*, in order."""
    rows = len(slots)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    for r in range(rows):
        offsets[r + 1] = offsets[r] + counts[r]
    for lane in numba.prange(lanes):
        for r in range(rows * lane // lanes, rows * (lane + 1) // lanes):
            source = slots[r]
            target = offsets[r]
            for e in range(counts[r]):
                out_cols[target + e] = cols[source + e]
                out_vals[target + e] = vals[source + e]


@numba.njit(cache=CACHE, parallel=True)
def permuted_rows(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, order: np.ndarray, rank: np.ndarray, lanes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR whose row r is row order[r], its columns renamed by rank (rank[order[r]] = r), entries left in their order.

    The entry order is the summation order of `min_sum_rows`: kept, a renamed row sums as the original does.
    """
    n = len(order)
    counts = np.empty(n, dtype=np.int64)
    for r in range(n):
        counts[r] = indptr[order[r] + 1] - indptr[order[r]]
    out_ptr = _offsets(counts)
    out_indices = np.empty(out_ptr[n], dtype=np.int32)
    out_data = np.empty(out_ptr[n], dtype=data.dtype)
    for lane in numba.prange(lanes):
        for r in range(n * lane // lanes, n * (lane + 1) // lanes):
            source = indptr[order[r]]
            for e in range(counts[r]):
                out_indices[out_ptr[r] + e] = rank[indices[source + e]]
                out_data[out_ptr[r] + e] = data[source + e]
    return out_ptr, out_indices, out_data


@numba.njit(cache=CACHE, parallel=True)
def restored_rows(
    counts: np.ndarray, indices: np.ndarray, data: np.ndarray, order: np.ndarray, rank: np.ndarray, lanes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of `permuted_rows` for rows of `counts` entries: row order[r] gets row r's entries, columns
    named back (order[c]) and sorted ascending."""
    n = len(counts)
    source_ptr = _offsets(counts)
    out_counts = np.empty(n, dtype=np.int64)
    for r in range(n):
        out_counts[r] = counts[rank[r]]
    out_ptr = _offsets(out_counts)
    out_indices = np.empty(out_ptr[n], dtype=np.int32)
    out_data = np.empty(out_ptr[n], dtype=data.dtype)
    for lane in numba.prange(lanes):
        for r in range(n * lane // lanes, n * (lane + 1) // lanes):
            source = source_ptr[rank[r]]
            count = out_counts[r]
            named = np.empty(count, dtype=np.int64)
            for e in range(count):
                named[e] = order[indices[source + e]]
            ascending = np.argsort(named)
            target = out_ptr[r]
            for e in range(count):
                out_indices[target + e] = named[ascending[e]]
                out_data[target + e] = data[source + ascending[e]]
    return out_counts, out_indices, out_data


@numba.njit(cache=CACHE, parallel=True)
def reciprocal_rows(
    neighbours: np.ndarray, length: int, half_length: int, lanes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR of R(i) = {j in L(i) : i in L(j)} for two list lengths at once (the shorter lists are prefixes).

    Args:
        neighbours: (n, k) int64 neighbour lists, k >= length >= half_length.
        length, half_length: the two list lengths.
        lanes: parallel row ranges (see `lane_count`).

    Returns:
        (indptr, sorted int32 indices) for `length`, then for `half_length`.
    """
    n = neighbours.shape[0]
    room = np.empty((2, n * length), dtype=np.int32)
    counts = np.zeros((2, n), dtype=np.int64)
    for lane in numba.prange(lanes):
        for i in range(n * lane // lanes, n * (lane + 1) // lanes):
            found = 0
            found_half = 0
            for t in range(length):
                j = neighbours[i, t]
                for u in range(length):
                    if neighbours[j, u] == i:
                        room[0, i * length + found] = j
                        found += 1
                        if t < half_length and u < half_length:
                            room[1, i * length + found_half] = j
                            found_half += 1
                        break
            room[0, i * length:i * length + found].sort()
            room[1, i * length:i * length + found_half].sort()
            counts[0, i] = found
            counts[1, i] = found_half
    full_ptr, full_idx = _gather_room(room[0], counts[0], length)
    half_ptr, half_idx = _gather_room(room[1], counts[1], length)
    return full_ptr, full_idx, half_ptr, half_idx


@numba.njit(cache=CACHE, parallel=True)
def _gather_room(room: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of rows stored at room[i * width:][:counts[i]]."""
    n = len(counts)
    indptr = _offsets(counts)
    indices = np.empty(indptr[n], dtype=np.int32)
    for i in numba.prange(n):
        indices[indptr[i]:indptr[i + 1]] = room[i * width:i * width + counts[i]]
    return indptr, indices


@numba.njit(cache=CACHE, parallel=True)
def expanded_rows(
    full_ptr: np.ndarray, full_idx: np.ndarray, half_ptr: np.ndarray, half_idx: np.ndarray, lanes: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR of R*(i): R(i) united with R_half(c) of each c in R(i) sharing more than 2/3 of R_half(c) with R(i).

    Two passes over the rows (count, then fill), each row built in a small buffer and sorted.

    Args:
        full_ptr, full_idx: the full reciprocal sets R (CSR, sorted).
        half_ptr, half_idx: the half-size sets R_half (CSR, sorted).
        lanes: parallel row ranges (see `lane_count`).

    Returns:
        (indptr, sorted int32 indices).
    """
    n = len(full_ptr) - 1
    width = 1
    for i in range(n):
        size = full_ptr[i + 1] - full_ptr[i]
        for e in range(full_ptr[i], full_ptr[i + 1]):
            c = full_idx[e]
            size += half_ptr[c + 1] - half_ptr[c]
        width = max(width, size)
    counts = np.zeros(n, dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(0, dtype=np.int32)
    for fill in range(2):
        if fill:
            indptr = _offsets(counts)
            indices = np.empty(indptr[n], dtype=np.int32)
        for lane in numba.prange(lanes):
            in_full = np.zeros(n, dtype=np.bool_)
            in_union = np.zeros(n, dtype=np.bool_)
            buffer = np.empty(width, dtype=np.int32)
            for i in range(n * lane // lanes, n * (lane + 1) // lanes):
                found = _expanded_row(i, full_ptr, full_idx, half_ptr, half_idx, in_full, in_union, buffer)
                if fill:
                    indices[indptr[i]:indptr[i] + found] = np.sort(buffer[:found])
                else:
                    counts[i] = found
    return indptr, indices


@numba.njit(cache=CACHE)
def _expanded_row(
    i: int, full_ptr: np.ndarray, full_idx: np.ndarray, half_ptr: np.ndarray, half_idx: np.ndarray,
    in_full: np.ndarray, in_union: np.ndarray, buffer: np.ndarray,
) -> int:
    """R*(i) into buffer (unsorted); returns its size. The marks are all False again on return."""
    found = 0
    for e in range(full_ptr[i], full_ptr[i + 1]):
        in_full[full_idx[e]] = True
        in_union[full_idx[e]] = True
        buffer[found] = full_idx[e]
        found += 1
    for e in range(full_ptr[i], full_ptr[i + 1]):
        c = full_idx[e]
        shared = 0
        for h in range(half_ptr[c], half_ptr[c + 1]):
            if in_full[half_idx[h]]:
                shared += 1
        if shared > 2 / 3 * (half_ptr[c + 1] - half_ptr[c]):
            for h in range(half_ptr[c], half_ptr[c + 1]):
                member = half_idx[h]
                if not in_union[member]:
                    in_union[member] = True
                    buffer[found] = member
                    found += 1
    for e in range(full_ptr[i], full_ptr[i + 1]):
        in_full[full_idx[e]] = False
    for e in range(found):
        in_union[buffer[e]] = False
    return found


@numba.njit(cache=CACHE, parallel=True)
def squared_norms(points: np.ndarray) -> np.ndarray:
    """(n,) float64 squared L2 norm of each float32 row, summed in 8 interleaved partial sums."""
    n, d = points.shape
    out = np.empty(n, dtype=np.float64)
    for i in numba.prange(n):
        partial = np.zeros(8, dtype=np.float64)
        for start in range(0, d - d % 8, 8):
            for lane in range(8):
                value = np.float64(points[i, start + lane])
                partial[lane] += value * value
        total = 0.0
        for lane in range(8):
            total += partial[lane]
        for rest in range(d - d % 8, d):
            value = np.float64(points[i, rest])
            total += value * value
        out[i] = total
    return out


@numba.njit(cache=CACHE, parallel=True)
def listed_sqdist(
    indices: np.ndarray, sqdist: np.ndarray, support_ptr: np.ndarray, support_idx: np.ndarray
) -> np.ndarray:
    """(nnz,) float64 squared distance of each support pair (i, j) found in i's or j's kNN list, else NaN.

    Args:
        indices, sqdist: (n, k) kNN lists and their float32 squared distances.
        support_ptr, support_idx: the pairs, CSR.
    """
    n, k = indices.shape
    out = np.full(len(support_idx), np.nan)
    for i in numba.prange(n):
        for e in range(support_ptr[i], support_ptr[i + 1]):
            j = support_idx[e]
            listed = False
            for t in range(k):
                if indices[i, t] == j:
                    out[e] = sqdist[i, t]
                    listed = True
                    break
            if not listed:
                for t in range(k):
                    if indices[j, t] == i:
                        out[e] = sqdist[j, t]
                        break
    return out


@numba.njit(cache=CACHE, parallel=True)
def mean_of_listed_rows(
    v_ptr: np.ndarray, v_idx: np.ndarray, v_val: np.ndarray, neighbours: np.ndarray, k2: int, m: int, lanes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of row i = (sum of the V rows neighbours[i, :k2], added in list order) / k2, columns sorted.

    Two passes over the rows (count the union of columns, then sum and fill).

    Args:
        v_ptr, v_idx, v_val: V (CSR, values > 0).
        neighbours: (n, k) int64 lists, k >= k2.
        k2: rows averaged.
        m: columns of V.
        lanes: parallel row ranges (see `lane_count`).

    Returns:
        (indptr, int32 indices, float64 data).
    """
    n = neighbours.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for lane in numba.prange(lanes):
        seen = np.zeros(m, dtype=np.bool_)
        for i in range(n * lane // lanes, n * (lane + 1) // lanes):
            found = 0
            for t in range(k2):
                q = neighbours[i, t]
                for e in range(v_ptr[q], v_ptr[q + 1]):
                    if not seen[v_idx[e]]:
                        seen[v_idx[e]] = True
                        found += 1
            counts[i] = found
            for t in range(k2):
                q = neighbours[i, t]
                for e in range(v_ptr[q], v_ptr[q + 1]):
                    seen[v_idx[e]] = False
    indptr = _offsets(counts)
    indices = np.empty(indptr[n], dtype=np.int32)
    data = np.empty(indptr[n], dtype=np.float64)
    for lane in numba.prange(lanes):
        seen = np.zeros(m, dtype=np.bool_)
        acc = np.zeros(m, dtype=np.float64)
        for i in range(n * lane // lanes, n * (lane + 1) // lanes):
            base = indptr[i]
            found = 0
            for t in range(k2):
                q = neighbours[i, t]
                for e in range(v_ptr[q], v_ptr[q + 1]):
                    col = v_idx[e]
                    acc[col] += v_val[e]
                    if not seen[col]:
                        seen[col] = True
                        indices[base + found] = col
                        found += 1
            indices[base:base + found].sort()
            for e in range(base, base + found):
                col = indices[e]
                data[e] = acc[col] / k2
                acc[col] = 0.0
                seen[col] = False
    return indptr, indices, data


@numba.njit(cache=CACHE)
def _offsets(counts: np.ndarray) -> np.ndarray:
    """(n + 1,) int64 running sum of counts, starting at 0."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    for i in range(len(counts)):
        indptr[i + 1] = indptr[i] + counts[i]
    return indptr


#: Buckets of `upper_histogram`: the top 16 bits of an order-preserving key of a float32.
KEY_BUCKETS = 1 << 16


def bucket_of(value: float) -> int:
    """`upper_histogram`'s bucket of one float32 value (Python side)."""
    bits = int(np.float32(value).view(np.uint32))
    return ((~bits & 0xFFFFFFFF) if bits & 0x80000000 else bits | 0x80000000) >> 16


@numba.njit(cache=CACHE)
def _bucket(bits: np.uint32) -> int:
    """Bucket of a float32 given its bits, in the order of the values (negatives below positives)."""
    key = ~bits if bits & np.uint32(0x80000000) else bits | np.uint32(0x80000000)
    return np.int64(key >> np.uint32(16))


@numba.njit(cache=CACHE)
def upper_histogram(
    indptr: np.ndarray, indices: np.ndarray, bits: np.ndarray, zero_bits: np.uint32
) -> tuple[int, np.ndarray]:
    """(stored entries above the diagonal, histogram of their non-zero values over `KEY_BUCKETS`).

    Args:
        indptr, indices: the CSR pattern.
        bits: (nnz,) the float32 values viewed as uint32.
        zero_bits: the bits of the zero tolerance (a float32 >= 0): a value is non-zero when its
            magnitude's bits exceed these (the bits of non-negative float32s are ordered as the values).
    """
    histogram = np.zeros(KEY_BUCKETS, dtype=np.int64)
    stored = 0
    for i in range(len(indptr) - 1):
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] > i:
                stored += 1
                if (bits[e] & np.uint32(0x7FFFFFFF)) > zero_bits:
                    histogram[_bucket(bits[e])] += 1
    return stored, histogram


@numba.njit(cache=CACHE)
def upper_values_up_to(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bits: np.ndarray, zero_bits: np.uint32,
    last_bucket: int, count: int,
) -> np.ndarray:
    """The `count` non-zero values (see `upper_histogram`) above the diagonal whose bucket is <= last_bucket
    (float32, any order)."""
    out = np.empty(count, dtype=np.float32)
    found = 0
    for i in range(len(indptr) - 1):
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] > i and (bits[e] & np.uint32(0x7FFFFFFF)) > zero_bits and _bucket(bits[e]) <= last_bucket:
                out[found] = data[e]
                found += 1
    return out


def _uncached() -> list[str]:
    """The kernels numba has no cached machine code for (for this source), i.e. that compile in this process.

    Reads numba's cache index through its dispatcher internals; should they change, nothing is reported.
    """
    missing = []
    for name, value in globals().items():
        cache = getattr(value, "_cache", None)
        if not isinstance(value, numba.core.registry.CPUDispatcher) or cache is None:
            continue
        try:
            cached = bool(cache._cache_file._load_index())
        except Exception:  # noqa: BLE001 -- private numba API: a notice is not worth a failure
            cached = True
        if not cached:
            missing.append(name)
    return missing


# The first use of the kernels after installing or editing them compiles for ~15 s with no progress to show;
# a status line says so instead of a silent pause.
if CACHE and _uncached():
    print(f"compiling the clustering kernels with numba, once (~15 s; cached in {min_sum_rows._cache.cache_path})",
          file=sys.stderr, flush=True)

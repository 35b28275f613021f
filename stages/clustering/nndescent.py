"""All k-nearest-neighbour lists at once by nearest-neighbour descent (Dong, Charikar and Li, WWW 2011).

Why: the Jaccard distance needs every point's k1 list, not answers to outside queries. An index (HNSW) is built
one point at a time on one thread (for lists that do not depend on thread timing) and then searched once per
point, which took over 18 minutes for a million 256-d points on 2 cores. NN-descent improves all the lists
together: a neighbour of a neighbour is likely a neighbour, so each round compares every point with its
neighbours' neighbours (and reverse neighbours') and keeps the k best. It starts from random-projection trees
(points in one leaf are near each other).

Determinism: every random draw comes from `seed` through a counter-based hash (not from a thread's stream), and
each round reads only the previous round's lists (every point's new list is computed from them alone), so the
lists are the same for any number of threads. The distances are exact squared Euclidean distances on the points
as given, so the lists keep `stages.clustering.knn.Neighbours`' contract; only some true neighbours may be
missing, as with any approximate search.
"""

from __future__ import annotations

import numba
import numpy as np

from stages.clustering.kernels import CACHE

#: Random-projection trees for the start, and the most points in one of their leaves.
TREES = 6
LEAF_SIZE = 48
#: Rounds at most, and the share of list entries that must change in a round for another to run.
MAX_ROUNDS = 12
CONVERGED = 0.001
#: Reverse neighbours used per point (the first by index), so a hub's candidates stay bounded.
REVERSE_CAP = 30


def nn_descent(points: np.ndarray, *, k: int, seed: int = 0, trees: int = TREES, leaf_size: int = LEAF_SIZE,
               max_rounds: int = MAX_ROUNDS, converged: float = CONVERGED) -> tuple[np.ndarray, np.ndarray, int]:
    """Each point's k nearest points (itself included), approximately.

    Args:
        points: (n, d) float32, C-contiguous, finite.
        k: list length, 1 <= k <= n.
        seed: draws the trees' hyperplanes.
        trees, leaf_size: the random-projection forest the lists start from.
        max_rounds, converged: stop after this many rounds, or when fewer than converged x n x k entries changed.

    Returns:
        (sqdist (n, k) float32, indices (n, k) int64, rounds run); each row sorted by (distance, index).
    """
    n = points.shape[0]
    leaf_size = max(leaf_size, k + 1)
    forest = np.empty((trees, n), dtype=np.int64)
    leaf_start = np.empty((trees, n), dtype=np.int64)
    leaf_stop = np.empty((trees, n), dtype=np.int64)
    _forest(points, np.uint64(seed), leaf_size, forest, leaf_start, leaf_stop)
    indices, sqdist = _from_leaves(points, forest, leaf_start, leaf_stop, k)
    fresh = np.ones((n, k), dtype=np.bool_)
    rounds = 0
    while rounds < max_rounds:
        reverse_ptr, reverse = _reverse(indices, fresh, REVERSE_CAP)
        indices, sqdist, fresh, changed = _round(points, indices, sqdist, fresh, reverse_ptr, reverse,
                                                 4 * numba.get_num_threads())
        rounds += 1
        if changed < converged * n * k:
            break
    return sqdist, indices, rounds


@numba.njit(cache=CACHE, inline="always")
def _hash(a: np.uint64, b: np.uint64) -> np.uint64:
    """splitmix64 of a and b: a random 64-bit word that depends only on its inputs."""
    z = a * np.uint64(0x9E3779B97F4A7C15) + b + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=CACHE, fastmath={"reassoc", "contract"})
def _sqdist(points: np.ndarray, i: int, j: int) -> np.float32:
    total = np.float32(0.0)
    for t in range(points.shape[1]):
        diff = points[i, t] - points[j, t]
        total += diff * diff
    return total


@numba.njit(cache=CACHE, parallel=True)
def _forest(points: np.ndarray, seed: np.uint64, leaf_size: int, forest: np.ndarray, leaf_start: np.ndarray,
            leaf_stop: np.ndarray) -> None:
    """Random-projection trees: forest[t] a permutation of the points, cut into leaves of at most leaf_size;
    leaf_start / leaf_stop[t, p] the range of point p's leaf in forest[t]. A node is split by the hyperplane
    halfway between two of its points drawn from (seed, tree, node range)."""
    n, dims = points.shape
    for t in numba.prange(forest.shape[0]):
        order = forest[t]
        for p in range(n):
            order[p] = p
        side = np.empty(n, dtype=np.float32)
        stack = np.empty((2 * (n // max(leaf_size // 2, 1) + 64), 2), dtype=np.int64)
        top = 0
        stack[0, 0], stack[0, 1] = 0, n
        top = 1
        while top > 0:
            top -= 1
            lo, hi = stack[top, 0], stack[top, 1]
            size = hi - lo
            if size <= leaf_size:
                for q in range(lo, hi):
                    leaf_start[t, order[q]] = lo
                    leaf_stop[t, order[q]] = hi
                continue
            word = _hash(_hash(seed, np.uint64(t)), np.uint64(lo) * np.uint64(n + 1) + np.uint64(hi))
            a = order[lo + np.int64(word % np.uint64(size))]
            b = order[lo + np.int64(_hash(word, np.uint64(1)) % np.uint64(size))]
            for q in range(lo, hi):
                p = order[q]
                total = np.float32(0.0)
                for u in range(dims):
                    total += (points[a, u] - points[b, u]) * (points[p, u] - np.float32(0.5) * (points[a, u]
                                                                                               + points[b, u]))
                side[q] = total
            left = lo
            for q in range(lo, hi):  # stable partition: left side first, each side in its former order
                if side[q] > 0:
                    left += 1
            middle = left
            if middle == lo or middle == hi:  # a degenerate split (duplicates): halve the range
                middle = lo + size // 2
            else:
                buffer = np.empty(size, dtype=np.int64)
                write_left, write_right = 0, middle - lo
                for q in range(lo, hi):
                    if side[q] > 0:
                        buffer[write_left] = order[q]
                        write_left += 1
                    else:
                        buffer[write_right] = order[q]
                        write_right += 1
                order[lo:hi] = buffer
            stack[top, 0], stack[top, 1] = lo, middle
            stack[top + 1, 0], stack[top + 1, 1] = middle, hi
            top += 2


@numba.njit(cache=CACHE, inline="always")
def _insert(row_idx: np.ndarray, row_dist: np.ndarray, row_new: np.ndarray, j: int, d: np.float32) -> bool:
    """Put (d, j) into a row sorted by (distance, index) when it beats the last entry and is not in it yet."""
    k = row_idx.shape[0]
    last = k - 1
    if d > row_dist[last] or (d == row_dist[last] and j >= row_idx[last]):
        return False
    for e in range(k):
        if row_idx[e] == j:
            return False
    position = last
    while position > 0 and (row_dist[position - 1] > d or (row_dist[position - 1] == d and row_idx[position - 1] > j)):
        row_idx[position] = row_idx[position - 1]
        row_dist[position] = row_dist[position - 1]
        row_new[position] = row_new[position - 1]
        position -= 1
    row_idx[position] = j
    row_dist[position] = d
    row_new[position] = True
    return True


@numba.njit(cache=CACHE, parallel=True)
def _from_leaves(points: np.ndarray, forest: np.ndarray, leaf_start: np.ndarray, leaf_stop: np.ndarray, k: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each point's k best among its leaf mates in every tree (itself included, at distance 0)."""
    n = points.shape[0]
    indices = np.empty((n, k), dtype=np.int64)
    sqdist = np.empty((n, k), dtype=np.float32)
    for p in numba.prange(n):
        row_idx = indices[p]
        row_dist = sqdist[p]
        row_new = np.zeros(k, dtype=np.bool_)
        for e in range(k):
            row_idx[e] = n
            row_dist[e] = np.inf
        for t in range(forest.shape[0]):
            for q in range(leaf_start[t, p], leaf_stop[t, p]):
                j = forest[t, q]
                _insert(row_idx, row_dist, row_new, j, np.float32(0.0) if j == p else _sqdist(points, p, j))
    return indices, sqdist


@numba.njit(cache=CACHE)
def _reverse(indices: np.ndarray, fresh: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Reverse lists: for each point, the points listing it (by ascending index, at most `cap`), as CSR; an entry
    is stored negative-minus-one when that listing is not fresh."""
    n, k = indices.shape
    counts = np.zeros(n + 1, dtype=np.int64)
    for p in range(n):
        for e in range(k):
            j = indices[p, e]
            if j != p and j < n and counts[j + 1] < cap:
                counts[j + 1] += 1
    for p in range(n):
        counts[p + 1] += counts[p]
    filled = counts[:-1].copy()
    reverse = np.empty(counts[n], dtype=np.int64)
    for p in range(n):
        for e in range(k):
            j = indices[p, e]
            if j != p and j < n and filled[j] < counts[j + 1]:
                reverse[filled[j]] = p if fresh[p, e] else -p - 1
                filled[j] += 1
    return counts, reverse


@numba.njit(cache=CACHE, inline="always")
def _entry(indices: np.ndarray, fresh: np.ndarray, reverse_ptr: np.ndarray, reverse: np.ndarray, p: int, s: int
           ) -> tuple[int, bool]:
    """Entry s of p's neighbours followed by its reverse neighbours: (the point, whether that edge is fresh)."""
    k = indices.shape[1]
    if s < k:
        return indices[p, s], fresh[p, s]
    r = reverse[reverse_ptr[p] + s - k]
    return (r, True) if r >= 0 else (-r - 1, False)


@numba.njit(cache=CACHE, parallel=True)
def _round(points: np.ndarray, indices: np.ndarray, sqdist: np.ndarray, fresh: np.ndarray, reverse_ptr: np.ndarray,
           reverse: np.ndarray, lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One round: each point tries its neighbours' and reverse neighbours' lists (a pair reached only through two
    old edges was tried before), reading the previous round's lists only."""
    n, k = indices.shape
    out_idx = indices.copy()
    out_dist = sqdist.copy()
    out_new = np.zeros((n, k), dtype=np.bool_)
    changes = np.zeros(lanes, dtype=np.int64)
    for lane in numba.prange(lanes):
        seen = np.full(n, -1, dtype=np.int64)
        for p in range(n * lane // lanes, n * (lane + 1) // lanes):
            row_idx, row_dist, row_new = out_idx[p], out_dist[p], out_new[p]
            for e in range(k):
                if indices[p, e] < n:
                    seen[indices[p, e]] = p
            seen[p] = p
            for s in range(k + reverse_ptr[p + 1] - reverse_ptr[p]):
                v, edge_new = _entry(indices, fresh, reverse_ptr, reverse, p, s)
                if v == p or v >= n:
                    continue
                for f in range(k + reverse_ptr[v + 1] - reverse_ptr[v]):
                    w, other_new = _entry(indices, fresh, reverse_ptr, reverse, v, f)
                    if w >= n or seen[w] == p or not (edge_new or other_new):
                        continue
                    seen[w] = p
                    if _insert(row_idx, row_dist, row_new, w, _sqdist(points, p, w)):
                        changes[lane] += 1
    return out_idx, out_dist, out_new, int(changes.sum())

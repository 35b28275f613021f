"""k-reciprocal Jaccard distance of the clustering stage, sparse and memory-bounded.

Same definition as the reference (SpCL/MMT `compute_jaccard_distance`, after Zhong et al., CVPR
2017): kNN lists of k1 entries, self first; k-reciprocal sets expanded with the candidates' k1/2 sets;
V(i, R*) = softmax(-(2 - 2 x_i.x_j)) over R*(i) on the features as given; local query expansion
over the first k2 list entries; d(i, j) = 1 - S / (2 - S) with S = sum_k min(V_ik, V_jk), clipped at 0.
Every step is a sparse operation (`stages.clustering.kreciprocal`, per-row loops compiled with numba in
`stages.clustering.kernels`); the min-sum kernel emits the float32 distances below 1 directly, so the result
stores only those pairs (and the diagonal) as a `SparseDistance` and no n x n array is allocated.
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from stages.clustering import kernels
from stages.clustering.knn import EXACT, Backend, KnnSettings, Neighbours, knn_search
from stages.clustering.kreciprocal import (
    expanded_sets,
    min_sum_contributions,
    min_sum_scratch,
    query_expansion,
    row_softmax,
)
from stages.clustering.penalties import NO_TERMS, AuxPenalties
from stages.clustering.sparse_distance import IMPLICIT, ZERO_TOLERANCE, SparseDistance
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress
from stages.shards import WHOLE, Shard


def jaccard_distance(
    features: np.ndarray, *, k1: int, k2: int, normalize: bool = False, backend: Backend = "auto",
    device: str | torch.device = "cpu", knn: KnnSettings = EXACT, progress: Progress | None = None,
) -> SparseDistance:
    """The (n, n) k-reciprocal Jaccard distance of n points; missing entries are 1.0.

    Args:
        features: (n, d) features, used as given (the reference feeds raw cluster-mode features).
        k1: k-reciprocal list size (30 in the paper), capped at n.
        k2: local query expansion size (6), capped at the capped k1.
        normalize: L2-normalise the rows first.
        backend: kNN backend, see `stages.clustering.knn.knn_search`.
        device: where the kNN search runs (either backend), see `knn_search`.
        knn: exact or approximate search (`stages.clustering.knn.KnnSettings`, from cluster.knn).
        progress: receives the "kNN" and "Jaccard" tasks.

    Returns:
        Symmetric `SparseDistance` holding every d < 1 and the diagonal (about 0).

    Raises:
        AuxReidError: features not a finite non-empty 2-D array, or k1 / k2 < 1.
    """
    progress = progress or NullProgress()
    weights = jaccard_weights(features, k1=k1, k2=k2, normalize=normalize, backend=backend, device=device, knn=knn,
                              progress=progress)
    return jaccard_from_weights(weights, progress=progress)


def jaccard_weights(
    features: np.ndarray, *, k1: int, k2: int, normalize: bool = False, backend: Backend = "auto",
    device: str | torch.device = "cpu", knn: KnnSettings = EXACT, progress: Progress | None = None,
    shard: Shard = WHOLE,
) -> sp.csr_matrix:
    """The k-reciprocal encoding V of `jaccard_distance`'s features (its arguments), before any pair is compared:
    the city-scale stage computes the distances from it more than once (`stages.clustering.city`). Under torchrun
    (`shard`) each rank searches its slice of the kNN lists; every rank gets all of them, and the same V."""
    points = _validated(features, k1=k1, k2=k2)
    if normalize:
        points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    progress = progress or NullProgress()
    n = points.shape[0]
    k1 = min(k1, n)
    k2 = min(k2, k1)
    progress.start("kNN", total=1)
    neighbours = knn_search(points, k=k1, backend=backend, device=device, search=knn, shard=shard)
    progress.done("kNN", f"{n:,} x {k1} neighbours, {knn.describe(n)}")
    return encoded_rows(points, neighbours, k1=k1, k2=k2)


def encoded_rows(points: np.ndarray, neighbours: Neighbours, *, k1: int, k2: int) -> sp.csr_matrix:
    """The k-reciprocal encoding V after local query expansion.

    Args:
        points: (n, d) float32 features.
        neighbours: their k1-nearest-neighbour lists (self first).
        k1, k2: as in `jaccard_distance` (already capped).

    Returns:
        (n, n) CSR of V rows (each sums to 1).
    """
    support = expanded_sets(neighbours.indices, k1=k1)
    v = row_softmax(support, _pair_logits(points, neighbours, support))
    return query_expansion(v, neighbours.indices, k2=k2) if k2 > 1 else v


def jaccard_from_weights(
    weights: sp.csr_matrix, *, cap: float = 1.0, penalties: Callable[[SparseDistance], SparseDistance] | None = None,
    progress: Progress | None = None, shard: Shard = WHOLE,
) -> SparseDistance:
    """d(i, j) = max(0, 1 - S / (2 - S)), S = sum_k min(V_ik, V_jk), kept where d < cap.

    Args:
        weights: (n, n) CSR of non-negative V rows, each summing to 1 (so S_ii = 1 and d_ii = 0 is kept).
        cap: keep the pairs below this (1.0: every pair sharing weight, the exact stage). Below 1, memory follows
            the pairs kept instead of every pair sharing weight (about 9,000 a tracklet on a dense network).
        penalties: with a cap, SCP / STS as they will be applied to the result: a pair is kept only when its
            penalised value is below the cap (the stored value stays the unpenalised one). The penalties raise most
            cross-camera distances, so this keeps far fewer pairs than the raw values would.
        progress: receives the "Jaccard" task (rows done).
        shard: under torchrun, this rank computes its slice of the rows and every rank gathers all of them
            (`stages.shards`): the same distance on every rank, whatever their number.

    Returns:
        The symmetric `SparseDistance` (its `cap` is `cap`).
    """
    progress = progress or NullProgress()
    n = weights.shape[0]
    first, last = shard.bounds(n)
    order = None
    if cap < 1.0:
        order = penalties.time_order() if isinstance(penalties, AuxPenalties) and penalties.sts else None
        counts, indices, data = _capped_rows(weights, first, last, cap=float(np.float32(cap)), penalties=penalties,
                                             progress=progress, order=order)
    else:
        counts, indices, data = _rows(weights, first, last, progress=progress)
    if shard.world > 1:
        counts, indices, data = shard.gather(counts), shard.gather(indices), shard.gather(data)
    if order is not None:
        counts, indices, data = kernels.restored_rows(counts, indices, data, order, _rank(order),
                                                      kernels.lane_count(n))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    below = f" below {cap:.4g}" if cap < 1.0 else ""
    progress.done("Jaccard", f"{len(data):,} stored pairs{below}")
    if cap < 1.0:
        return SparseDistance(indptr, indices, data, cap=float(np.float32(cap)))
    return SparseDistance(indptr, indices, data)


def _rows(weights: sp.csr_matrix, first: int, last: int, *, progress: Progress
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows [first, last) of the distance, every pair below 1: (counts per row, columns, values)."""
    n = weights.shape[0]
    rows = weights[first:last] if (first, last) != (0, n) else weights
    progress.start("Jaccard", total=last - first)
    counts = np.zeros(last - first, dtype=np.int64)
    # Row i stores at most min(n, contributions of i) pairs; the buffers are only committed as they
    # are written (untouched pages cost no memory), which spares a second copy of the result.
    column_ptr = np.concatenate([[0], np.cumsum(np.bincount(weights.indices, minlength=n))])
    bound = int(np.minimum(min_sum_contributions(rows, column_ptr), n).sum())
    indices = _mapped(bound, np.int32)
    data = _mapped(bound, np.float32)
    offset = 0
    for block in min_sum_scratch(rows, weights, as_distance=True, first_row=first):
        kept = int(block.counts.sum())
        kernels.gather_rows(
            block.slots, block.counts, block.cols, block.values, indices[offset:offset + kept],
            data[offset:offset + kept], kernels.lane_count(block.stop - block.start),
        )
        counts[block.start:block.stop] = block.counts
        offset += kept
        progress.advance("Jaccard", block.stop - block.start)
    return counts, indices[:offset], data[:offset]


def _capped_rows(weights: sp.csr_matrix, first: int, last: int, *, cap: float,
                 penalties: Callable[[SparseDistance], SparseDistance] | None, progress: Progress,
                 order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs below `cap` (after `penalties`), block by block: each block's kept pairs are copied out as they come,
    so memory holds the kept pairs (and one block's scratch), never room for every pair sharing weight.

    SCP and STS (`AuxPenalties`) are evaluated inside the kernel, pair by pair, before a pair takes any memory; any
    other penalty function is applied to each block's raw pairs below the cap.

    With STS, `order` is the penalties' time order (`AuxPenalties.time_order`): the tracklets are renamed first so
    that rows [first, last) and their columns are in that order (`kernels.permuted_rows`, each row summed in its
    original order, so every value is the same to the bit), and the result is in that order too
    (`kernels.restored_rows` names it back). In time order the partners that can have a transit density with a
    row are one range of columns, and the thousands outside it need no penalty evaluated
    (`stages.clustering.penalties.KernelTerms`)."""
    n = weights.shape[0]
    terms = penalties.kernel_terms(in_time_order=order is not None) if isinstance(penalties, AuxPenalties) else NO_TERMS
    as_given = order is not None
    if as_given:
        canonical = sp.csr_matrix(weights, dtype=np.float64)
        canonical.sort_indices()
        indptr, indices, data = kernels.permuted_rows(canonical.indptr.astype(np.int64), canonical.indices,
                                                      canonical.data, order, _rank(order), kernels.lane_count(n))
        del canonical  # a million tracklets' encoding is about 1.1 GB a copy
        weights = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    if (first, last) == (0, n):
        rows = weights
    else:
        indptr = weights.indptr[first:last + 1]
        rows = sp.csr_matrix((weights.data[indptr[0]:indptr[-1]], weights.indices[indptr[0]:indptr[-1]],
                              indptr - indptr[0]), shape=(last - first, n))
    progress.start("Jaccard", total=last - first)
    counts = np.zeros(last - first, dtype=np.int64)
    kept_indices, kept_data = [], []
    for block in min_sum_scratch(rows, weights, as_distance=True, cap=cap, terms=terms, first_row=first,
                                 as_given=as_given):
        kept = int(block.counts.sum())
        indices, data = np.empty(kept, dtype=np.int32), np.empty(kept, dtype=np.float32)
        kernels.gather_rows(block.slots, block.counts, block.cols, block.values, indices, data,
                            kernels.lane_count(block.stop - block.start))
        block_counts = block.counts
        if penalties is not None and terms is NO_TERMS and kept:
            indptr = np.zeros(n + 1, dtype=np.int64)
            indptr[first + block.start + 1:first + block.stop + 1] = np.cumsum(block_counts)
            indptr[first + block.stop + 1:] = kept
            below = penalties(SparseDistance(indptr, indices, data)).data < np.float32(cap)
            owners = np.repeat(np.arange(block.stop - block.start), block_counts)
            block_counts = np.bincount(owners[below], minlength=block.stop - block.start)
            indices, data = indices[below], data[below]
        kept_indices.append(indices)
        kept_data.append(data)
        counts[block.start:block.stop] = block_counts
        progress.advance("Jaccard", block.stop - block.start)
    indices = np.concatenate(kept_indices) if kept_indices else np.empty(0, dtype=np.int32)
    data = np.concatenate(kept_data) if kept_data else np.empty(0, dtype=np.float32)
    return counts, indices, data


def _rank(order: np.ndarray) -> np.ndarray:
    """The inverse permutation: rank[order[r]] = r."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def sampled_rows(weights: sp.csr_matrix, rows: np.ndarray) -> SparseDistance:
    """Every Jaccard distance below 1 from each of `rows` (sorted) to all points, as an n x n distance whose other
    rows are empty: the SCP / STS penalties apply to it as to the whole distance (they index global rows)."""
    n = weights.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    cols, values = [], []
    for block in min_sum_scratch(weights[rows], weights, as_distance=True):
        for r in range(block.stop - block.start):
            first, count = block.slots[r], block.counts[r]
            cols.append(block.cols[first:first + count].copy())
            values.append(block.values[first:first + count].copy())
            counts[rows[block.start + r]] = count
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SparseDistance(indptr, np.concatenate(cols).astype(np.int32), np.concatenate(values))


def cap_for(weights: sp.csr_matrix, *, pairs_per_row: float, adjust: Callable[[SparseDistance], SparseDistance]
            | None = None, sample: int = 2000, seed: int = 0) -> float:
    """A cap below which a row holds about `pairs_per_row` neighbours (itself not counted) after the penalties.

    Measured on `sample` rows drawn with `seed`: their exact distances to every point, penalised by `adjust` (SCP
    and STS raise a distance, often past a cap set on the raw values), pooled, and the value at rank
    pairs_per_row x rows. A pair below it after the penalties was below it before, so a distance capped there
    keeps it. When the rows have fewer pairs than that below 1 after the penalties, the cap is just below 1: it
    keeps every pair that can fall within any eps below 1 and still drops the many the penalties push past 1.
    """
    n = weights.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
    distance = sampled_rows(weights, rows)
    pooled = (adjust(distance) if adjust is not None else distance).data
    pooled = pooled[(pooled > ZERO_TOLERANCE) & (pooled < IMPLICIT)]
    wanted = int(np.ceil(pairs_per_row * len(rows)))
    if wanted >= len(pooled):
        return float(np.nextafter(IMPLICIT, np.float32(0.0)))
    return float(np.nextafter(np.partition(pooled, wanted)[wanted], IMPLICIT))


def _mapped(count: int, dtype: type) -> np.ndarray:
    """An uninitialised (count,) array in its own anonymous mapping, committed page by page as written.

    Unlike `np.empty`, which asks for transparent huge pages on large arrays, the mapping gets the
    system's default policy. On this project's virtual machines first writes to fresh huge pages cost
    up to 3x more than to small pages when the host must back them anew (220 MB: 0.27 s against
    0.10 s from 2 threads), and the result is the largest fresh allocation of the Jaccard stage.
    """
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(mmap.mmap(-1, max(count, 1) * itemsize), dtype=dtype, count=count)


def _pair_logits(points: np.ndarray, neighbours: Neighbours, support: sp.csr_matrix) -> np.ndarray:
    """-(2 - 2 x_i.x_j) up to a per-row constant (softmax ignores it): 2 x_i.x_j - |x_i|^2 = |x_j|^2 - |x_i - x_j|^2.

    Squared distances come from the kNN search where (i, j) or (j, i) is in a list; the other pairs of
    R* (about a quarter) get their inner product from one sampled matrix product.
    """
    rows = np.repeat(np.arange(support.shape[0], dtype=np.int64), np.diff(support.indptr))
    cols = support.indices.astype(np.int64)
    sq_norms = kernels.squared_norms(points)
    d2 = kernels.listed_sqdist(
        neighbours.indices, neighbours.sqdist, support.indptr.astype(np.int64), support.indices
    )
    logits = sq_norms[cols] - d2
    missing = np.flatnonzero(np.isnan(d2))
    if len(missing):
        dots = _sampled_dots(points, rows[missing], cols[missing])
        logits[missing] = 2.0 * dots - sq_norms[rows[missing]]
    return logits


def _sampled_dots(points: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """x_rows . x_cols for row-sorted pairs, as a sampled dense product (torch, CPU or the points' device)."""
    n = len(points)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    tensor = torch.from_numpy(points)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(
            torch.from_numpy(indptr), torch.from_numpy(cols), torch.zeros(len(cols), dtype=tensor.dtype),
            size=(n, n), check_invariants=False,
        )
        product = torch.sparse.sampled_addmm(pattern, tensor, tensor.T, beta=0.0)
    return product.values().numpy().astype(np.float64)


def _validated(features: np.ndarray, *, k1: int, k2: int) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise AuxReidError(
            f"the Jaccard distance needs a non-empty (n, d) feature array, got shape {array.shape}"
        )
    if k1 < 1 or k2 < 1:
        raise AuxReidError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2} (cluster.k1 / cluster.k2)")
    if not np.isfinite(array).all():
        raise AuxReidError("the features hold NaN or infinite values; re-extract them (`auxreid extract`)")
    return np.ascontiguousarray(array, dtype=np.float32)

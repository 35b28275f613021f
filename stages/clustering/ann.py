"""Approximate kNN for city-scale N: faiss IVF or HNSW candidates, re-ranked exactly on the original features.

The exact search behind the Jaccard distance costs O(N^2 d) (52 s at N = 50,000, d = 2,048 on 2 cores; hours
at a million). Here an index proposes each point's candidates: IVF (`IndexIVFFlat`: k-means lists over a flat
quantizer, nprobe lists scanned per query) or HNSW (`IndexHNSWFlat`), optionally on a PCA reduction of the
features (`faiss.PCAMatrix`). Their squared Euclidean distances are then recomputed on the ORIGINAL features
and the k best kept, so the lists keep `stages.clustering.knn.Neighbours`' contract (self first, ascending exact
distances, ties by the lower index); only some true neighbours may be missing. The default parameters reach a
recall@30 of at least 0.98 on clustered features of low intrinsic dimension (docs/benchmarks.md, "Approximate
kNN").

Determinism: the k-means and PCA training samples are drawn from `seed`, faiss's k-means seed is `seed`, and IVF
search is per query, so IVF gives the same lists every run. HNSW is built with one faiss thread for the same
reason (faiss inserts points concurrently under locks with more, so the graph, and the lists, would change
from run to run); its search uses every thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import numba
import numpy as np

from stages.clustering.kernels import CACHE

ApproxMethod = Literal["ivf", "hnsw"]

#: Candidates searched per point, as a multiple of k, when a PCA reduction ranks them: the reduced distances
#: misorder near neighbours, and the exact re-rank recovers those within the wider list.
PCA_CANDIDATE_FACTOR = 2
#: IVF lists: this many times sqrt(N), the usual faiss rule (4 sqrt(N) to 16 sqrt(N)) at its cheap end.
IVF_LISTS_PER_SQRT_N = 4
#: Training points per IVF list (faiss warns below 39; more only slows the k-means).
IVF_TRAIN_PER_LIST = 64
#: Share of the IVF lists scanned per query. A fixed nprobe loses recall as N (and so the lists) grows: 128
#: lists kept recall@30 at 0.99 of 894 lists (N = 50,000) but 0.96 of 1,789 (N = 200,000); a seventh of them
#: kept it at 0.98 or more at both.
IVF_PROBE_SHARE = 1 / 7
#: ... and at least this many: with few lists (small N) a seventh missed more (recall 0.974 at N = 4,000).
IVF_MIN_NPROBE = 32
#: HNSW links per node, and the candidate queue while building and while searching. On clustered features
#: (`benchmarks/knn_recall.py`) efSearch 64 gave recall@30 0.982 at N = 200,000 and 128 gave 0.990; on the city
#: test bed (`stages/city_bed.py`, N = 200,000, d = 256, 20,000 queries) 128 gave 0.976, 256 gave 0.995 and 512
#: 0.999, at 5.6 / 9.9 / 18.1 s: 256 keeps 0.98 with a margin for the larger N that auto sends here.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256
#: Points the PCA is trained on (its covariance is d x d; more points barely change the leading axes).
PCA_TRAIN_POINTS = 50_000


@dataclass(frozen=True)
class IndexParams:
    """The index's knobs; the defaults are the measured ones, the benchmark sweeps others.

    Attributes:
        nprobe: IVF lists scanned per query; None: `ivf_probes`' rule.
        lists_per_sqrt_n: IVF lists per sqrt(N).
        hnsw_m: HNSW links per node.
        ef_construction: HNSW build queue.
        ef_search: HNSW search queue (raised to the candidate count when lower).
    """

    nprobe: int | None = None
    lists_per_sqrt_n: float = IVF_LISTS_PER_SQRT_N
    hnsw_m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = HNSW_EF_SEARCH


DEFAULT_PARAMS = IndexParams()


@dataclass(frozen=True)
class ApproximateIndex:
    """A built index over all points, ready to answer any rows' queries.

    Attributes:
        index: the faiss index (IVF or HNSW) over `searched`.
        searched: (n, d') float32 points as the index sees them (the PCA projection, or the features).
        candidates: candidates asked of the index per query, before the exact re-rank.
    """

    index: Any
    searched: np.ndarray
    candidates: int


def build_index(
    points: np.ndarray, *, k: int, method: ApproxMethod, pca_dim: int = 0, seed: int = 0, gpu: int | None = None,
    params: IndexParams = DEFAULT_PARAMS,
) -> ApproximateIndex:
    """An IVF or HNSW index over `points`, built once for any rows' queries (`query_rows`).

    Args:
        points: (n, d) float32, C-contiguous, finite.
        k: list length, 1 <= k <= n.
        method: "ivf" or "hnsw".
        pca_dim: search on this many PCA dimensions (0: the features as given), 1 <= pca_dim <= d.
        seed: draws the training samples and seeds faiss's k-means.
        gpu: the GPU faiss searches IVF on (None: the CPU); HNSW has no faiss GPU index and runs on the CPU.
        params: index knobs.
    """
    searched = reduced(points, pca_dim, seed=seed) if pca_dim else points
    candidates = min(points.shape[0], k * PCA_CANDIDATE_FACTOR if pca_dim else k)
    if method == "ivf":
        index = _ivf_index(searched, seed=seed, gpu=gpu, params=params)
    else:
        with _faiss_threads(1):
            index = _hnsw_index(searched, params=params)
        index.hnsw.efSearch = max(params.ef_search, candidates)
    return ApproximateIndex(index=index, searched=searched, candidates=candidates)


def query_rows(
    points: np.ndarray, built: ApproximateIndex, rows: np.ndarray, *, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest points of `rows` (m,): the index's candidates re-ranked exactly on `points`.

    Returns:
        (sqdist, indices), both (m, k), sorted by (exact distance, index).
    """
    import faiss  # deferred: an optional extra, imported only by an approximate search

    _, candidates = built.index.search(np.ascontiguousarray(built.searched[rows]), built.candidates)
    candidates = candidates.astype(np.int64)
    short = np.flatnonzero((candidates >= 0).sum(axis=1) < k)
    if short.size:  # too few points in the scanned lists (or an HNSW dead end): search those rows exactly
        candidates[short] = -1
        candidates[short, :k] = faiss.knn(points[rows[short]], points, k)[1]
    sqdist = exact_sqdist(points, rows.astype(np.int64), candidates)
    order = np.lexsort((candidates, sqdist), axis=1)[:, :k]
    return np.take_along_axis(sqdist, order, axis=1), np.take_along_axis(candidates, order, axis=1)


@numba.njit(cache=CACHE, parallel=True, fastmath={"reassoc", "contract"})
def exact_sqdist(points: np.ndarray, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """|x_i - x_j|^2 for every listed j of every row i; inf where j is -1 (no candidate).

    Reading each candidate row once, with no gathered copy, is 13x faster than numpy blocks at d = 2,048 (1.6 s
    against 21 s for 50,000 x 60 pairs on 2 cores). The sums may be reordered for SIMD (`reassoc`), which is
    the same order on every run of one machine.

    Args:
        points: (n, d) float32.
        rows: (m,) int64 the query rows i.
        candidates: (m, c) int64 indices into `points`, -1 for none.

    Returns:
        (m, c) float32.
    """
    m, width = candidates.shape
    dims = points.shape[1]
    out = np.empty((m, width), dtype=np.float32)
    for q in numba.prange(m):
        i = rows[q]
        for slot in range(width):
            j = candidates[q, slot]
            if j < 0:
                out[q, slot] = np.inf
                continue
            total = np.float32(0.0)
            for t in range(dims):
                diff = points[i, t] - points[j, t]
                total += diff * diff
            out[q, slot] = total
    return out


def ivf_lists(n: int, params: IndexParams = DEFAULT_PARAMS) -> int:
    """IVF lists for n points: lists_per_sqrt_n x sqrt(n), at most one per 39 points (faiss's k-means minimum)."""
    return int(max(1, min(round(params.lists_per_sqrt_n * np.sqrt(n)), n // 39)))


def ivf_probes(n: int, params: IndexParams = DEFAULT_PARAMS) -> int:
    """IVF lists scanned per query for n points: `params.nprobe`, else `IVF_PROBE_SHARE` of the lists (at least
    `IVF_MIN_NPROBE`), never more than the lists."""
    lists = ivf_lists(n, params)
    if params.nprobe is not None:
        return max(1, min(params.nprobe, lists))
    return min(lists, max(IVF_MIN_NPROBE, int(np.ceil(lists * IVF_PROBE_SHARE))))


def _sample(n: int, size: int, *, seed: int) -> np.ndarray:
    """`size` distinct row indices of n, sorted, drawn from `seed` (all rows when size >= n)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def reduced(points: np.ndarray, dim: int, *, seed: int) -> np.ndarray:
    """`points` projected on their first `dim` principal axes, fitted on a seeded sample."""
    import faiss  # deferred: an optional extra

    pca = faiss.PCAMatrix(points.shape[1], dim)
    pca.train(np.ascontiguousarray(points[_sample(len(points), PCA_TRAIN_POINTS, seed=seed)]))
    return pca.apply(points)


def _ivf_index(points: np.ndarray, *, seed: int, gpu: int | None, params: IndexParams):
    """An IndexIVFFlat of `points`, trained on the CPU (seeded k-means on a seeded sample), moved to `gpu` if given."""
    import faiss  # deferred: an optional extra

    n, d = points.shape
    lists = ivf_lists(n, params)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, lists)
    index.cp.seed = seed
    index.cp.min_points_per_centroid = 1  # `ivf_lists` keeps 39 points a list where N allows; below, no warning
    index.train(np.ascontiguousarray(points[_sample(n, lists * IVF_TRAIN_PER_LIST, seed=seed)]))
    index.nprobe = ivf_probes(n, params)
    if gpu is not None:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    index.add(points)
    return index


def _hnsw_index(points: np.ndarray, *, params: IndexParams):
    """An IndexHNSWFlat of `points` (faiss draws the node levels from its own fixed seed)."""
    import faiss  # deferred: an optional extra

    index = faiss.IndexHNSWFlat(points.shape[1], params.hnsw_m)
    index.hnsw.efConstruction = params.ef_construction
    index.add(points)
    return index


@contextmanager
def _faiss_threads(count: int) -> Iterator[None]:
    """faiss's OpenMP thread count set to `count` inside the block, restored after."""
    import faiss  # deferred: an optional extra

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)

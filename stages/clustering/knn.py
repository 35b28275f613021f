"""k-nearest-neighbour search (squared Euclidean) with a deterministic, self-first order.

The k-reciprocal Jaccard distance (`stages.clustering.jaccard`) starts from each point's k1 nearest neighbours,
the point itself included and listed first, as the reference (SpCL's `compute_jaccard_distance`,
faiss `IndexFlatL2`) does. Backends: faiss (an install extra; "auto" takes it when installed) or torch
(blocked matmul + top-k), both on the device given:
faiss searches on that GPU when the device is CUDA and the installed faiss has GPU support (the `gpu`
extra), on the CPU otherwise, so `device=cpu` never touches a GPU. Ties are broken by the lower index,
so the same input always gives the same lists.

For city-scale N the search can be approximate (`KnnSettings`, from cluster.knn): a faiss IVF or HNSW index
proposes the candidates and `stages.clustering.ann` re-ranks them exactly, so the lists keep the same contract
(self first, exact distances, ties by index) and only some true neighbours may be missing. The default, auto,
searches exactly up to knn_exact_max points, with exactly the code above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from stages.clustering.ann import DEFAULT_PARAMS, build_index, exact_sqdist, ivf_lists, ivf_probes, query_rows, reduced
from stages.clustering.nndescent import TREES, nn_descent
from stages.config import ClusterConfig
from stages.errors import AuxReidError
from stages.runtime import cuda_index, resolve_device
from stages.shards import WHOLE, Shard

Backend = Literal["auto", "faiss", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "faiss", "torch")

KnnMethod = Literal["auto", "exact", "ivf", "hnsw", "nndescent"]
#: What auto searches with above knn_exact_max points: HNSW reached a higher recall than IVF in less time on
#: the CPU (docs/benchmarks.md, "Approximate kNN").
AUTO_APPROXIMATE = "hnsw"

#: NN-descent keeps lists this many times k long, then the exact re-rank keeps k: on the city test bed (N = 200,000,
#: d = 256) lists of k gave recall@30 0.93 in 61 s, of 1.5 k 0.978 in 122 s (2 threads, load 2); the cost grows as
#: the square of the width (each round tries the lists of a list's entries).
NNDESCENT_WIDTH_FACTOR = 1.5
#: Query rows per torch block: bounds the similarity block to block_rows x n floats.
DEFAULT_BLOCK_ROWS = 2048


@dataclass(frozen=True)
class Neighbours:
    """Each point's k nearest points, itself first.

    Attributes:
        indices: (n, k) int64 neighbour indices, ascending distance, ties by index, column 0 = the point.
        sqdist: (n, k) float32 squared Euclidean distances matching `indices`.
    """

    indices: np.ndarray
    sqdist: np.ndarray

    @property
    def k(self) -> int:
        return self.indices.shape[1]


@dataclass(frozen=True)
class KnnSettings:
    """Which search finds the neighbours: exact, or an approximate faiss index (cluster.knn and its keys).

    Attributes:
        method: "exact"; "ivf", "hnsw" (a faiss index) or "nndescent" (`stages.clustering.nndescent`), approximate
            at any N; "auto": exact up to `exact_max` points, else `AUTO_APPROXIMATE`. The default is exact, so
            callers that pass nothing keep the exact lists.
        exact_max: the largest N auto searches exactly.
        pca_dim: an approximate search reduces the features to this many dimensions by PCA first (0: none).
        seed: draws the index's training samples, so the same input gives the same lists.
    """

    method: KnnMethod = "exact"
    exact_max: int = 200_000
    pca_dim: int = 0
    seed: int = 0

    def chosen(self, n: int) -> str:
        """The search that runs for n points: "exact", "ivf" or "hnsw"."""
        if self.method == "auto":
            return "exact" if n <= self.exact_max else AUTO_APPROXIMATE
        return self.method

    def describe(self, n: int) -> str:
        """The search that runs for n points in words, for the progress line ("exact", "hnsw (M 32, ...)")."""
        method = self.chosen(n)
        if method == "exact":
            return "exact"
        index = {"ivf": f"nlist {ivf_lists(n)}, nprobe {ivf_probes(n)}",
                 "hnsw": f"M {DEFAULT_PARAMS.hnsw_m}, efSearch {DEFAULT_PARAMS.ef_search}",
                 "nndescent": f"lists of {NNDESCENT_WIDTH_FACTOR} x k, {TREES} trees"}[method]
        reduced = f" on {self.pca_dim} PCA dims" if self.pca_dim else ""
        return f"approximate: {method} ({index}){reduced}, exact re-rank, recall not measured"


EXACT = KnnSettings()


def knn_settings(cluster: ClusterConfig, *, seed: int = 0) -> KnnSettings:
    """The search the cluster config asks for (cluster.knn, knn_exact_max, knn_pca_dim), its samples drawn with
    `seed` (the run's)."""
    return KnnSettings(method=cluster.knn, exact_max=cluster.knn_exact_max, pca_dim=cluster.knn_pca_dim, seed=seed)


def knn_search(
    features: np.ndarray, *, k: int, backend: Backend = "auto", device: str | torch.device = "cpu",
    block_rows: int = DEFAULT_BLOCK_ROWS, search: KnnSettings = EXACT, shard: Shard = WHOLE,
) -> Neighbours:
    """The k nearest neighbours of every row among all rows, exact or by an approximate index (`search`).

    Args:
        features: (n, d) float32 points.
        k: list length, 1 <= k <= n (the point itself counts).
        backend: "faiss", "torch" or "auto" (faiss when installed, else torch).
        device: where to search: "auto" (CUDA when present), "cpu", "cuda", "cuda:N" or a torch.device.
        block_rows: query rows per torch block.
        search: exact or approximate (`KnnSettings`); an approximate search always uses faiss (on the GPU of
            `device` for IVF when faiss has GPU support), whatever `backend` says.
        shard: under torchrun, this rank searches its slice of the rows and the lists are gathered from every
            rank (`stages.shards`); an approximate index is built whole on every rank.

    Returns:
        `Neighbours` with (n, k) arrays, self first, ties broken by the lower index; distances exact.

    Raises:
        AuxReidError: unknown backend, k out of range, a CUDA device that is not available, a PCA dimension
            above d, an approximate search without faiss.
    """
    if backend not in BACKENDS:
        raise AuxReidError(f"unknown kNN backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    n = features.shape[0]
    if not 1 <= k <= n:
        raise AuxReidError(f"kNN list length k={k} must be between 1 and the number of points ({n})")
    dims = features.shape[1]
    if search.pca_dim > dims:
        raise AuxReidError(f"cluster.knn_pca_dim={search.pca_dim} is more than the features' {dims} dimensions; set "
                           f"it to at most {dims}, or 0 for no PCA")
    points = np.ascontiguousarray(features, dtype=np.float32)
    where = device if isinstance(device, torch.device) else resolve_device(device)
    method = search.chosen(n)
    rows = shard.rows(n)
    if method == "nndescent":  # every list at once (each rank computes them all: they improve each other)
        return _nn_descent_search(points, k=k, search=search)
    if method != "exact":
        found = _approximate_search(points, rows, k=k, method=method, search=search, device=where)
    else:
        if backend == "auto":
            backend = "faiss" if _faiss_installed() else "torch"
        elif backend == "faiss" and not _faiss_installed():
            raise AuxReidError(
                "the faiss kNN backend needs faiss, which is not installed: pip install -e '.[cpu]' (or '.[gpu]' "
                "for CUDA 13), or set cluster.knn_backend=torch"
            )
        if backend == "torch":
            sqdist, indices = _torch_search(points, rows, k=k, device=where, block_rows=block_rows)
        else:
            sqdist, indices = _faiss_search(points, rows, k=k, device=where)
        found = _canonical(sqdist, indices, rows)
    if shard.world == 1:
        return found
    return Neighbours(indices=shard.gather(found.indices), sqdist=shard.gather(found.sqdist))


def _approximate_search(
    points: np.ndarray, rows: np.ndarray, *, k: int, method: str, search: KnnSettings, device: torch.device
) -> Neighbours:
    """An IVF or HNSW search (`stages.clustering.ann`), in the canonical order; refuses when faiss is missing."""
    if not _faiss_installed():
        raise AuxReidError(
            f"the approximate kNN search ({method}, cluster.knn={search.method} for {len(points):,} points) needs "
            "faiss, which is not installed: pip install -e '.[cpu]' (or '.[gpu]' for CUDA 13), or set "
            "cluster.knn=exact"
        )
    gpu = faiss_gpu(device) if method == "ivf" else None
    built = build_index(points, k=k, method=method, pca_dim=search.pca_dim, seed=search.seed, gpu=gpu)
    sqdist, indices = query_rows(points, built, rows, k=k)
    return _canonical(sqdist, indices, rows)


def _nn_descent_search(points: np.ndarray, *, k: int, search: KnnSettings) -> Neighbours:
    """All lists by NN-descent, NNDESCENT_WIDTH_FACTOR x k long (on the PCA projection when pca_dim is set), then
    re-ranked exactly on `points` and cut to k: longer lists reach the true neighbours that short ones miss."""
    searched = points
    if search.pca_dim:
        if not _faiss_installed():
            raise AuxReidError("cluster.knn_pca_dim needs faiss for its PCA, which is not installed: pip install -e "
                               "'.[cpu]', or set cluster.knn_pca_dim=0")
        searched = reduced(points, search.pca_dim, seed=search.seed)
    width = min(len(points), int(np.ceil(NNDESCENT_WIDTH_FACTOR * k)))
    _, candidates, _ = nn_descent(np.ascontiguousarray(searched, dtype=np.float32), k=width, seed=search.seed)
    rows = np.arange(len(points), dtype=np.int64)
    sqdist = exact_sqdist(points, rows, candidates)
    order = np.lexsort((candidates, sqdist), axis=1)[:, :k]
    return _canonical(np.take_along_axis(sqdist, order, axis=1), np.take_along_axis(candidates, order, axis=1), rows)


def _faiss_installed() -> bool:
    """faiss is an extra (faiss-cpu or faiss-cuda), so a plain install may lack it."""
    try:
        import faiss  # noqa: F401  -- deferred: an optional extra, absent from a plain install
    except ImportError:
        return False
    return True


def faiss_gpu(device: torch.device) -> int | None:
    """The GPU faiss should search on for `device`, or None for the CPU.

    None for a CPU device, and for a CUDA device when the installed faiss is a CPU-only build (the
    search is exact either way, so the CPU gives the same lists).
    """
    gpu = cuda_index(device)
    if gpu is None:
        return None
    import faiss  # deferred: an optional extra; the torch backend and CPU devices never import it

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        return None
    return gpu


def gpu_fallback_message(device: torch.device, backend: Backend) -> str | None:
    """What to tell a user who asked for the kNN on a GPU that faiss cannot use, or None when nothing falls back.

    A CPU-only faiss (the `cpu` extra) searches on the CPU even for a CUDA device; it is the same search (exact, or
    the approximate index cluster.knn asks for), only slower, so this is a note rather than an error.
    """
    if cuda_index(device) is None or (backend == "torch" or (backend == "auto" and not _faiss_installed())):
        return None
    if faiss_gpu(device) is not None:
        return None
    return (f"the kNN runs on the CPU: the installed faiss has no GPU support for device {device} (the same search, "
            "slower); install the gpu extra (make FAISS=gpu) or set cluster.knn_backend=torch to search "
            "with torch on the GPU")


def _faiss_search(points: np.ndarray, rows: np.ndarray, *, k: int, device: torch.device
                  ) -> tuple[np.ndarray, np.ndarray]:
    import faiss  # deferred: an optional extra, imported only by the faiss backend

    index = faiss.IndexFlatL2(points.shape[1])
    gpu = faiss_gpu(device)
    if gpu is not None:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    index.add(points)
    queries = points if len(rows) == len(points) else np.ascontiguousarray(points[rows])
    sqdist, indices = index.search(queries, k)
    return sqdist, indices.astype(np.int64)


@torch.no_grad()
def _torch_search(points: np.ndarray, rows: np.ndarray, *, k: int, device: torch.device, block_rows: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(points).to(device)
    norms = (x * x).sum(dim=1)
    sqdist = np.empty((len(rows), k), dtype=np.float32)
    indices = np.empty((len(rows), k), dtype=np.int64)
    first = int(rows[0]) if len(rows) else 0  # a shard's rows are contiguous
    for start in range(0, len(rows), block_rows):
        stop = min(start + block_rows, len(rows))
        queries = slice(first + start, first + stop)
        block = norms[queries, None] + norms[None, :] - 2.0 * (x[queries] @ x.T)
        values, found = torch.topk(block.clamp_min_(0.0), k, dim=1, largest=False, sorted=True)
        sqdist[start:stop] = values.cpu().numpy()
        indices[start:stop] = found.cpu().numpy()
    return sqdist, indices


def _canonical(sqdist: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> Neighbours:
    """Sort each list (of the points `rows`) by (distance, index) and move the point itself to the front.

    A point missing from its own list (more than k exact duplicates) is put first and the list's
    last entry dropped, so column 0 is always the point itself.
    """
    n, k = indices.shape
    order = np.lexsort((indices, sqdist), axis=1)
    sqdist = np.take_along_axis(sqdist, order, axis=1)
    indices = np.take_along_axis(indices, order, axis=1)
    own = np.asarray(rows, dtype=np.int64)[:, None]
    is_self = indices == own
    keep = ~is_self
    missing = ~is_self.any(axis=1)
    keep[missing, k - 1] = False
    rest_idx = indices[keep].reshape(n, k - 1)
    rest_dist = sqdist[keep].reshape(n, k - 1)
    self_dist = np.where(missing, 0.0, np.where(is_self, sqdist, np.inf).min(axis=1)).astype(np.float32)
    return Neighbours(
        indices=np.concatenate([own, rest_idx], axis=1),
        sqdist=np.concatenate([self_dist[:, None], rest_dist], axis=1),
    )

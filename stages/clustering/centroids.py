"""Cluster centroids and each cluster's K nearest clusters (the RLSCE neighbour map)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.clustering.dbscan import csr_parts
from stages.clustering.jaccard import jaccard_distance
from stages.clustering.knn import knn_settings
from stages.clustering.quality import cluster_sizes
from stages.clustering.sparse_distance import ZERO_TOLERANCE
from stages.config import ClusterConfig

#: Member rows gathered at once by `cluster_centroids` (a gather of every member is N x d: 8 GB at a million
#: 2,048-d features).
CHUNK_ROWS = 1 << 16
#: Rows of the centroid distance block ranked at once by `rlsce_map` (memory: rows x C).
RLSCE_BLOCK_ROWS = 1024


def cluster_centroids(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean feature of each cluster (float64 accumulation, so the result does not depend on order).

    Args:
        features: (n, d) features.
        labels: (n,) int labels 0..C-1, -1 noise (ignored).

    Returns:
        (C, d) float32.
    """
    labels = np.asarray(labels)
    sizes = cluster_sizes(labels)
    if not sizes.size:
        return np.zeros((0, features.shape[1]), dtype=np.float32)
    members = np.flatnonzero(labels >= 0)
    members = members[np.argsort(labels[members], kind="stable")]
    ends = np.cumsum(sizes)
    starts = ends - sizes
    sums = np.empty((len(sizes), features.shape[1]), dtype=np.float64)
    first = 0
    while first < len(sizes):  # whole clusters, about CHUNK_ROWS members at a time (each cluster summed alone)
        last = max(first + 1, int(np.searchsorted(ends, starts[first] + CHUNK_ROWS, side="right")))
        rows = members[starts[first]:ends[last - 1]]
        sums[first:last] = np.add.reduceat(features[rows], starts[first:last] - starts[first], axis=0,
                                           dtype=np.float64)
        first = last
    return (sums / sizes[:, None]).astype(np.float32)


def rlsce_map(centroids: np.ndarray, jaccard: Any, *, k: int) -> np.ndarray:
    """Each cluster's K = min(k, C - 1) nearest other clusters (the RLSCE neighbour map).

    Clusters are ranked by the Jaccard distance of their centroids (missing sparse entries are
    1.0, entries within `ZERO_TOLERANCE` of 0 are 0); ties, which include every cluster beyond the
    sparse support, are ranked by the squared Euclidean distance of the centroids, then by index. So
    every row has exactly K distinct entries and never the cluster itself.

    Args:
        centroids: (C, d) cluster centroids (the features the Jaccard distance was computed from).
        jaccard: (C, C) sparse Jaccard distance of the centroids (CSR, see `stages.clustering.dbscan.csr_parts`).
        k: requested neighbours per cluster.

    Returns:
        (C, K) int64.
    """
    count = centroids.shape[0]
    width = max(min(k, count - 1), 0)
    nearest = np.zeros((count, width), dtype=np.int64)
    if width == 0:
        return nearest
    _, indptr, indices, data = csr_parts(jaccard)
    points = centroids.astype(np.float64)
    norms = (points**2).sum(axis=1)
    for start in range(0, count, RLSCE_BLOCK_ROWS):
        stop = min(start + RLSCE_BLOCK_ROWS, count)
        rows = np.arange(start, stop)
        euclid = norms[rows, None] + norms[None, :] - 2.0 * points[rows] @ points.T
        dense = np.ones((rows.size, count))
        lo, hi = indptr[start], indptr[stop]
        entry_rows = np.repeat(rows - start, np.diff(indptr[start : stop + 1]))
        dense[entry_rows, indices[lo:hi]] = data[lo:hi]
        dense[dense <= ZERO_TOLERANCE] = 0.0  # zeros within float noise tie, and the Euclidean distance decides
        dense[rows - start, rows] = np.inf
        nearest[start:stop] = _first_by_keys(dense, euclid, width)
    return nearest


def _first_by_keys(dense: np.ndarray, euclid: np.ndarray, width: int) -> np.ndarray:
    """Per row, the columns of the `width` smallest (dense, euclid, column) keys, in that order.

    Only the columns whose dense value is at most the row's width-th smallest can be among them (ties included),
    so only those are sorted: a few times `width` a row instead of every cluster (a full sort of 43,000 clusters'
    rows took 199 s of a million-tracklet stage).
    """
    kth = np.partition(dense, width - 1, axis=1)[:, width - 1]
    rows, cols = np.nonzero(dense <= kth[:, None])
    order = np.lexsort((cols, euclid[rows, cols], dense[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    first = np.searchsorted(rows, np.arange(dense.shape[0]))
    return cols[first[:, None] + np.arange(width)]


def centroid_neighbours(centroids: np.ndarray, *, cluster: ClusterConfig) -> np.ndarray:
    """The RLSCE map of the centroids: Jaccard distance over them (k1, k2 capped at C), then `rlsce_map`."""
    count = centroids.shape[0]
    if count < 2:
        return np.zeros((count, 0), dtype=np.int64)
    k1 = min(cluster.k1, count)
    jaccard = jaccard_distance(
        centroids, k1=k1, k2=min(cluster.k2, k1), normalize=cluster.normalize, backend=cluster.knn_backend,
        device=cluster.device, knn=knn_settings(cluster),
    )
    points = _normalized(centroids) if cluster.normalize else centroids
    return rlsce_map(points, jaccard, k=cluster.rlsce_k)


def _normalized(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)

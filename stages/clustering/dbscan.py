"""DBSCAN (Ester et al., KDD 1996) on a sparse precomputed distance, and the eps radius graph it runs on.

The distance is a CSR matrix whose missing entries mean "far" (the Jaccard distance's 1.0; eps is
always below 1). A point's eps-neighbourhood is its stored entries with distance <= eps plus the
point itself, as `sklearn.cluster.DBSCAN(metric="precomputed")` counts it. `dbscan` cuts the
distance down to that radius graph (a few entries per row out of thousands) and hands it to
scikit-learn; cannot-link DBSCAN (`stages.clustering.icdbscan`) walks the same graph. A connected-
components DBSCAN over the graph used to live here; it was only 1.1-1.35x faster than scikit-learn
on the graph at N = 10,000 and 50,000 (`benchmarks/dbscan.py`, where it is kept) and was removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from stages.clustering.sparse_distance import ZERO_TOLERANCE
from stages.errors import AuxReidError

NOISE = -1


@dataclass(frozen=True)
class RadiusGraph:
    """The eps-neighbourhoods of n points as CSR rows, each point itself included when it counts.

    Each row is ordered by distance, ties by decreasing index (the order ICDBSCAN admits
    candidates in); distances within `ZERO_TOLERANCE` of each other are ties (`_tie_order`). Attributes:
        indptr: (n + 1,) int64 row pointers.
        indices: (nnz,) int64 neighbour indices.
        distances: (nnz,) float64 distances (the point itself: its stored diagonal, else 0).
    """

    indptr: np.ndarray
    indices: np.ndarray
    distances: np.ndarray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def degree(self) -> np.ndarray:
        """(n,) neighbourhood sizes, self included."""
        return np.diff(self.indptr)

    def rows(self) -> np.ndarray:
        """(nnz,) the row of each stored entry."""
        return np.repeat(np.arange(self.n, dtype=np.int64), self.degree)


def csr_parts(distance: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(n, indptr, indices, data) of a square CSR distance, without copying the arrays.

    Accepts a scipy sparse matrix or any object with `indptr`, `indices` (sorted within each
    row), `data` and `shape` (or `n`), such as `SparseDistance`. The support of a Jaccard distance
    holds thousands of entries per row, so nothing here may copy or sort all of it: callers pick the
    few entries they need (`entries_at_most`, `stored_values`).
    """
    if sparse.issparse(distance):
        if distance.format != "csr":
            distance = distance.tocsr()
        if not distance.has_sorted_indices:
            distance = distance.sorted_indices()
    indptr = np.asarray(distance.indptr)
    return len(indptr) - 1, indptr, np.asarray(distance.indices), np.asarray(distance.data)


def check_distance(distance: Any) -> None:
    """Validate a sparse distance once, at an algorithm's entry.

    Raises:
        AuxReidError: the matrix is not square or holds NaN distances.
    """
    n, _, _, data = csr_parts(distance)
    shape = tuple(getattr(distance, "shape", (getattr(distance, "n", n),) * 2))
    if shape != (n, n):
        raise AuxReidError(f"the distance matrix must be square (n x n), got shape {shape}")
    if np.isnan(data).any():
        raise AuxReidError("the distance matrix holds NaN entries; recompute the distances from finite features")


def entries_at_most(distance: Any, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored entries with distance <= threshold: (rows, cols, values), row-major.

    One comparison pass over the support; everything else touches only the entries found.

    Returns:
        rows (m,) int64, cols (m,) int64, values (m,) float64.
    """
    _, indptr, indices, data = csr_parts(distance)
    positions = np.flatnonzero(data <= threshold)
    rows = np.searchsorted(indptr, positions, side="right") - 1
    return rows.astype(np.int64), indices[positions].astype(np.int64), data[positions].astype(np.float64)


def stored_values(distance: Any, rows: np.ndarray, cols: np.ndarray, *, missing: float) -> np.ndarray:
    """distance[rows[k], cols[k]] for each k; pairs off the support give `missing`.

    A binary search within each queried row, vectorised over the queries (about log2(row length)
    passes over the m queries), so the support is never sorted or keyed as a whole.

    Returns:
        (m,) float64.
    """
    _, indptr, indices, data = csr_parts(distance)
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    out = np.full(rows.shape, missing, dtype=np.float64)
    if not indices.size or not rows.size:
        return out
    lo, end = indptr[rows].astype(np.int64), indptr[rows + 1].astype(np.int64)
    hi = end.copy()
    last = indices.size - 1
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        right = active & (indices[np.minimum(mid, last)] < cols)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    found = (lo < end) & (indices[np.minimum(lo, last)] == cols)
    out[found] = data[lo[found]]
    return out


def radius_graph(distance: Any, *, eps: float, always_self: bool = False) -> RadiusGraph:
    """Each point's eps-neighbourhood from a sparse distance: stored entries <= eps, and itself.

    The point itself counts as sklearn counts it on the dense matrix: when its stored diagonal
    entry is <= eps (SCP may have raised it above 0), or when no diagonal entry is stored (0 by
    definition). `always_self` counts it regardless, as the reference ICDBSCAN does.

    Args:
        distance: (n, n) sparse distance (see `csr_parts`); missing entries are treated as > eps.
        eps: neighbourhood radius, in the distance's units.
        always_self: include every point in its own neighbourhood.

    Returns:
        The neighbourhoods.
    """
    n = csr_parts(distance)[0]
    everyone = np.arange(n, dtype=np.int64)
    self_distance = stored_values(distance, everyone, everyone, missing=0.0)
    own = everyone if always_self else np.flatnonzero(self_distance <= eps)
    rows, cols, dist = entries_at_most(distance, eps)
    others = rows != cols
    rows = np.concatenate([rows[others], own])
    cols = np.concatenate([cols[others], own])
    dist = np.concatenate([dist[others], self_distance[own]])
    order = _tie_order(rows, cols, dist)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return RadiusGraph(indptr=indptr, indices=cols[order], distances=dist[order])


def _tie_order(rows: np.ndarray, cols: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Order of the entries: by row, then distance, ties by decreasing column (`RadiusGraph`).

    Distances within `ZERO_TOLERANCE` of the next smaller one in the row are tied: float rounding
    makes pairs that are equal in exact arithmetic (0 for identical expanded neighbourhoods) differ
    by a few ulps, and that noise must not decide who is admitted first.
    """
    by_distance = np.lexsort((dist, rows))
    r, d = rows[by_distance], dist[by_distance]
    starts = np.ones(len(r), dtype=bool)
    starts[1:] = (r[1:] != r[:-1]) | (d[1:] - d[:-1] > ZERO_TOLERANCE)
    tie_group = np.cumsum(starts)
    return by_distance[np.lexsort((-cols[by_distance], tie_group))]


def dbscan(distance: Any, *, eps: float, min_samples: int = 4) -> np.ndarray:
    """DBSCAN labels on a sparse precomputed distance: sklearn's `DBSCAN(eps, min_samples=min_samples,
    metric="precomputed")` run on the eps radius graph, which gives the labels it gives on the whole
    distance or on the dense matrix (missing entries = 1.0 > eps).

    The distance is assumed symmetric (the Jaccard distance is). A point counts in its own
    neighbourhood as sklearn counts it (see `radius_graph`): the graph carries every point's own
    entry, its stored diagonal or 0, and sklearn compares it with eps like the other entries.

    Args:
        distance: (n, n) sparse distance (see `csr_parts`).
        eps: neighbourhood radius, > 0.
        min_samples: neighbourhood size (self included) that makes a point a core point.

    Returns:
        (n,) int64 labels 0..C-1 numbered by each cluster's smallest core point; -1 for noise.

    Raises:
        AuxReidError: see `check_distance`; eps <= 0, min_samples < 1, or negative distances.
    """
    check_distance(distance)
    if not eps > 0:
        raise AuxReidError(f"eps must be > 0, got {eps}")
    if min_samples < 1:
        raise AuxReidError(f"min_samples must be >= 1, got {min_samples}")
    n, _, _, data = csr_parts(distance)
    graph = radius_graph(distance, eps=eps, always_self=True)
    # Back in the input's dtype, so sklearn's `<= eps` on the points themselves is the comparison
    # `entries_at_most` made on the others (float32 -> float64 -> float32 is exact).
    values = graph.distances.astype(data.dtype if data.dtype.kind == "f" else np.float64)
    if values.size and values.min() < 0:
        raise AuxReidError(f"the distance matrix holds negative entries (min {values.min():.4g}); distances are >= 0")
    matrix = sparse.csr_matrix((values, graph.indices, graph.indptr), shape=(n, n))
    # deferred: sklearn; quality, diagnosis, icdbscan and centroids import NOISE and the graph helpers without it, and
    # through quality so does stages.views.summaries (`auxreid inspect`, every stage's closing summary)
    from sklearn.cluster import DBSCAN

    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(matrix)
    return model.labels_.astype(np.int64, copy=False)

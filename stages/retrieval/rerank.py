"""k-reciprocal re-ranking of a query x gallery distance matrix (Zhong et al., CVPR 2017).

Follows the reference's `re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3)` exactly (open-reid /
SpCL `utils/rerank.py`): the combined (query + gallery) distances are squared, each row is divided by
its maximum, k-reciprocal neighbour sets (k1, expanded with the k1/2 sets of their members when
2/3 of those are shared) are weighted by exp(-distance), averaged over the k2 nearest neighbours
(query expansion), and the Jaccard distance of these encodings is mixed with the original one:
final = (1 - lambda) * jaccard + lambda * original.

Unlike the reference, no (n x n) matrix is ever held: rows of the combined distance matrix are
produced in blocks (twice: once for the kNN lists and row maxima, once for the weights), and the
encodings V are sparse. Memory is O(n * k1^2) plus the (n_query, n_gallery) output. The sparse
k-reciprocal blocks (expanded sets, softmax weights, query expansion, sum of minima) are the
cluster stage's (`stages.clustering.kreciprocal`); what differs from its SpCL-form Jaccard is only the input:
here, squared input distances divided by each row's maximum.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from stages.clustering.kreciprocal import expanded_sets, pairwise_min_sum, query_expansion, row_softmax
from stages.retrieval.distance import squared_distances

#: Rows of the combined distance matrix produced at once.
ROW_BLOCK = 512

RowSource = Callable[[int, int], np.ndarray]


def _combined_rows(
    q_g: np.ndarray, query_rows: RowSource, gallery_rows: RowSource
) -> RowSource:
    """Rows lo..hi of [[q_q, q_g], [q_g.T, g_g]] without building it; float32."""
    n_query = q_g.shape[0]

    def rows(lo: int, hi: int) -> np.ndarray:
        parts = []
        if lo < n_query:
            top = min(hi, n_query)
            parts.append(np.hstack([query_rows(lo, top), q_g[lo:top]]))
        if hi > n_query:
            bottom = max(lo, n_query) - n_query
            parts.append(np.hstack([q_g[:, bottom : hi - n_query].T, gallery_rows(bottom, hi - n_query)]))
        return np.vstack(parts).astype(np.float32, copy=False)

    return rows


def _normalised(block: np.ndarray) -> np.ndarray:
    """The reference's `original_dist`: squared, divided by the row maximum; float32."""
    power = np.square(block, dtype=np.float32)
    return power / np.maximum(power.max(axis=1, keepdims=True), np.finfo(np.float32).tiny)


def _nearest(norm: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest entries of each row, ascending (equal values by index). (b, k) int64."""
    k = min(k, norm.shape[1])
    part = np.argpartition(norm, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(norm, part, axis=1)
    order = np.lexsort((part, values), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _jaccard(v: sp.csr_matrix, n_query: int) -> np.ndarray:
    """1 - S / (2 - S) between query and gallery encodings, S = sum of element-wise minima. (n_query, n_gallery)."""
    n_gallery = v.shape[0] - n_query
    shared = np.zeros((n_query, n_gallery), dtype=np.float64)
    for block in pairwise_min_sum(v[:n_query], v[n_query:]):
        rows = np.repeat(np.arange(block.start, block.stop), np.diff(block.indptr))
        shared[rows, block.indices] = block.values
    return 1.0 - shared / (2.0 - shared)


def rerank_rows(rows: RowSource, n_query: int, n_total: int, *, k1: int, k2: int, lam: float) -> np.ndarray:
    """k-reciprocal re-ranking from a source of rows of the combined (query + gallery) distance matrix.

    Args:
        rows: rows(lo, hi) -> (hi - lo, n_total) distances; queries first, then gallery.
        n_query: number of queries.
        n_total: queries + gallery items.
        k1: k-reciprocal neighbourhood size (20 in the paper).
        k2: query-expansion neighbourhood (6).
        lam: weight of the original distance (0.3).

    Returns:
        (n_query, n_total - n_query) float32 re-ranked distances.
    """
    width = min(k1 + 1, n_total)
    ranks = np.empty((n_total, width), dtype=np.int64)
    original = np.empty((n_query, n_total - n_query), dtype=np.float32)
    for lo in range(0, n_total, ROW_BLOCK):
        norm = _normalised(rows(lo, min(lo + ROW_BLOCK, n_total)))
        ranks[lo : lo + len(norm)] = _nearest(norm, width)
        if lo < n_query:
            original[lo : min(lo + len(norm), n_query)] = norm[: n_query - lo, n_query:]
    pattern = expanded_sets(ranks, k1=k1)
    rows_of = np.repeat(np.arange(n_total), np.diff(pattern.indptr))
    logits = np.empty(pattern.nnz, dtype=np.float64)
    for lo in range(0, n_total, ROW_BLOCK):
        hi = min(lo + ROW_BLOCK, n_total)
        norm = _normalised(rows(lo, hi))
        part = slice(pattern.indptr[lo], pattern.indptr[hi])
        logits[part] = -norm[rows_of[part] - lo, pattern.indices[part]]
    v = row_softmax(pattern, logits)  # exp(-distance) over each expanded set, normalised
    if k2 != 1:
        v = query_expansion(v, ranks, k2=min(k2, width))
    jaccard = _jaccard(v, n_query)
    return (jaccard * (1.0 - lam) + original.astype(np.float64) * lam).astype(np.float32)


def rerank(
    q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, *, k1: int = 20, k2: int = 6, lam: float = 0.3
) -> np.ndarray:
    """Re-rank from the three distance matrices (the reference's interface).

    Args:
        q_g: (n_query, n_gallery) distances.
        q_q: (n_query, n_query) distances.
        g_g: (n_gallery, n_gallery) distances.
        k1, k2, lam: see `rerank_rows`.

    Returns:
        (n_query, n_gallery) float32.
    """
    n_query, n_gallery = q_g.shape
    rows = _combined_rows(q_g, lambda lo, hi: q_q[lo:hi], lambda lo, hi: g_g[lo:hi])
    return rerank_rows(rows, n_query, n_query + n_gallery, k1=k1, k2=k2, lam=lam)


def rerank_features(
    query: np.ndarray,
    gallery: np.ndarray,
    *,
    q_g: np.ndarray | None = None,
    k1: int = 20,
    k2: int = 6,
    lam: float = 0.3,
) -> np.ndarray:
    """Re-rank with query-query and gallery-gallery squared distances computed block by block.

    Args:
        query: (n_query, d) features.
        gallery: (n_gallery, d) features.
        q_g: (n_query, n_gallery) query-gallery distances to re-rank (e.g. with the auxiliary
            information terms added); None = squared Euclidean distances of the features.
        k1, k2, lam: see `rerank_rows`.

    Returns:
        (n_query, n_gallery) float32.
    """
    if q_g is None:
        q_g = squared_distances(query, gallery)
    rows = _combined_rows(
        q_g,
        lambda lo, hi: squared_distances(query[lo:hi], query),
        lambda lo, hi: squared_distances(gallery[lo:hi], gallery),
    )
    return rerank_rows(rows, len(query), len(query) + len(gallery), k1=k1, k2=k2, lam=lam)

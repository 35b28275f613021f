"""Per-cluster numbers of one clustering round, vectorised: sizes, camera spread, purity, cannot-link violations,
distance spread, nearest neighbours, and where the members of a round's clusters were in another round.

Everything here is numpy over whole arrays (no Python loop doing O(N) work per tracklet or per cluster), so a
10k-tracklet round with thousands of clusters takes a second or two. Tracklets are rows 0..n-1 in one order
shared by every array given (the browse site uses the dataset's train index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Nearest neighbours kept per tracklet, and the rows of one block of the similarity product.
KNN_K = 5
KNN_BLOCK = 1024


@dataclass(frozen=True)
class ClusterStats:
    """Numbers per cluster (arrays of length C) and per tracklet (length n).

    Attributes:
        sizes: (C,) members per cluster.
        cameras: (C,) distinct cameras among the members.
        known: (C,) members with a known person id (>= 0).
        majority: (C,) the most frequent known id (smallest on ties), -1 when no id is known.
        purity: (C,) share of the known members that have the majority id, NaN when no id is known.
        violations: (C,) cannot-link pairs with both members in the cluster.
        spread: (C,) mean Euclidean distance of the members' L2-normalised features to their mean.
        member_distance: (n,) each tracklet's distance to its cluster's mean (NaN for noise).
        violated: (n,) bool, the tracklet is in a cannot-link pair that shares its cluster.
    """

    sizes: np.ndarray
    cameras: np.ndarray
    known: np.ndarray
    majority: np.ndarray
    purity: np.ndarray
    violations: np.ndarray
    spread: np.ndarray
    member_distance: np.ndarray
    violated: np.ndarray


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), float32."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, np.float32(1e-12))


def distinct_per_group(groups: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """(count,) number of distinct `values` within each group 0..count-1 (rows of group < 0 ignored)."""
    keep = groups >= 0
    if not keep.any():
        return np.zeros(count, dtype=np.int64)
    pairs = np.unique(np.stack([groups[keep], values[keep]], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=count).astype(np.int64)


def majority_per_group(groups: np.ndarray, ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Known ids (>= 0) per group: (known count, majority id or -1, majority count), each (count,).

    Ties go to the smallest id, as `stages.views.montage.majority_id` decides them.
    """
    keep = (groups >= 0) & (ids >= 0)
    known = np.bincount(groups[keep], minlength=count).astype(np.int64)
    majority = np.full(count, -1, dtype=np.int64)
    top = np.zeros(count, dtype=np.int64)
    if keep.any():
        pairs, counts = np.unique(np.stack([groups[keep], ids[keep]], axis=1), axis=0, return_counts=True)
        # per group: highest count first, then the smallest id; the first row of each group wins
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        pairs, counts = pairs[order], counts[order]
        first = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]
        majority[pairs[first, 0]] = pairs[first, 1]
        top[pairs[first, 0]] = counts[first]
    return known, majority, top


def violated_pairs(labels: np.ndarray, pairs: np.ndarray | None) -> np.ndarray:
    """(v, 2) the cannot-link pairs whose two tracklets share a (non-noise) cluster."""
    if pairs is None or not len(pairs):
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    return pairs[(a == b) & (a >= 0)]


def centroid_distances(labels: np.ndarray, normalised: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(per tracklet distance to its cluster's mean feature, NaN for noise; per cluster mean of those)."""
    n = len(labels)
    member = labels >= 0
    sums = np.zeros((count, normalised.shape[1]), dtype=np.float64)
    sizes = np.bincount(labels[member], minlength=count)
    if member.any():
        order = np.argsort(labels[member], kind="stable")
        rows = np.flatnonzero(member)[order]
        sorted_labels = labels[rows]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        sums[sorted_labels[starts]] = np.add.reduceat(normalised[rows].astype(np.float64), starts, axis=0)
    centroids = sums / np.maximum(sizes, 1)[:, None]
    distance = np.full(n, np.nan, dtype=np.float64)
    for start in range(0, n, KNN_BLOCK):
        block = slice(start, min(start + KNN_BLOCK, n))
        inside = member[block]
        rows = np.arange(block.start, block.stop)[inside]
        if rows.size:
            distance[rows] = np.linalg.norm(normalised[rows] - centroids[labels[rows]], axis=1)
    spread = np.full(count, np.nan, dtype=np.float64)
    if member.any():
        totals = np.bincount(labels[member], weights=distance[member], minlength=count)
        spread = np.where(sizes > 0, totals / np.maximum(sizes, 1), np.nan)
    return distance, spread


def cluster_stats(labels: np.ndarray, *, count: int, camera: np.ndarray, person_id: np.ndarray,
                  normalised: np.ndarray, cannot_link: np.ndarray | None) -> ClusterStats:
    """The ClusterStats of one round.

    Args:
        labels: (n,) cluster per tracklet, -1 noise.
        count: the number of clusters C (labels lie in -1..C-1).
        camera: (n,) camera per tracklet.
        person_id: (n,) true id per tracklet, -1 unknown.
        normalised: (n, d) L2-normalised features.
        cannot_link: (m, 2) tracklet pairs that may not share a cluster, or None when unknown.
    """
    labels = np.asarray(labels, dtype=np.int64)
    member = labels >= 0
    sizes = np.bincount(labels[member], minlength=count).astype(np.int64)
    cameras = distinct_per_group(labels, np.asarray(camera, dtype=np.int64), count)
    known, majority, top = majority_per_group(labels, np.asarray(person_id, dtype=np.int64), count)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(known > 0, top / np.maximum(known, 1), np.nan)
    violated = violated_pairs(labels, cannot_link)
    violations = np.bincount(labels[violated[:, 0]], minlength=count).astype(np.int64)
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[violated.ravel()] = True
    distance, spread = centroid_distances(labels, normalised, count)
    return ClusterStats(sizes=sizes, cameras=cameras, known=known, majority=majority, purity=purity,
                        violations=violations, spread=spread, member_distance=distance, violated=flagged)


def nearest_neighbours(normalised: np.ndarray, k: int = KNN_K, *, block: int = KNN_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows by Euclidean distance of L2-normalised features, nearest first.

    Computed block by block as one matrix product per block (||a - b||^2 = 2 - 2 a.b on unit vectors), so memory
    stays at block x n.

    Returns:
        index (n, k') int64 and distance (n, k') float32, k' = min(k, n - 1).
    """
    n = len(normalised)
    k = max(0, min(k, n - 1))
    index = np.zeros((n, k), dtype=np.int64)
    distance = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return index, distance
    x = np.asarray(normalised, dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = x[start:stop] @ x.T
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never its own neighbour
        part = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(similarity, part, axis=1)
        order = np.lexsort((part, -picked), axis=1)  # most similar first, ties by row
        index[start:stop] = np.take_along_axis(part, order, axis=1)
        best = np.take_along_axis(picked, order, axis=1)
        distance[start:stop] = np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))
    return index, distance


def transitions(labels: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the members of each cluster of `labels` are in `other` (another round's labels of the same rows).

    Returns:
        cluster (t,), other label (t,) (-1 noise) and count (t,): one row per (cluster, other label) pair that
        occurs, ordered by cluster, then count descending, then other label.
    """
    labels, other = np.asarray(labels, dtype=np.int64), np.asarray(other, dtype=np.int64)
    member = labels >= 0
    if not member.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pairs, counts = np.unique(np.stack([labels[member], other[member]], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    return pairs[order, 0], pairs[order, 1], counts[order].astype(np.int64)

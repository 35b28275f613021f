"""Cannot-link DBSCAN (ICDBSCAN): DBSCAN whose clusters never hold a cannot-link pair.

Teng et al. 2022 (arXiv 2205.03124) cluster with temporal-overlap constraints (TOC): two tracklets
of one camera whose spans overlap show two different people, so they may not share a cluster. The
expansion of a cluster never admits a point that cannot-link with a point already in it: the
cluster's cannot-link set grows as points join, a point's neighbourhood is taken minus its own
cannot-links and the cluster's, and a cluster that ends smaller than `min_samples` is dissolved
back to unassigned. Before clustering, `relaxed` = r reduces each point's cannot-links: r >= 0
drops those to points at distance <= eps * r; r < 0 drops those to points farther than eps * |r|.

The reference implementation juggles Python sets per point and visits candidates in CPython's set
order. Here the neighbourhoods are CSR rows and the cluster's cannot-link set is a boolean mark
array, so each step costs O(degree) numpy work. Unlike the reference, which grows the caller's
cannot-link set of a dissolved cluster's seed in place, no input is modified.

Tie rule. Which of two candidates that cannot-link each other joins depends on the order in which
one expansion step admits them; the method leaves it free. The rule here: clusters start from the
core points in increasing index; the cluster grows breadth-first (first in, first expanded); the
candidates of one step are admitted in increasing distance to the expanding point, distances within
`sparse_distance.ZERO_TOLERANCE` (1e-5) of the next smaller one counting as equal (float rounding
must not decide), and equal ones in decreasing index (`stages.clustering.dbscan.radius_graph`). It
is a choice, not the reference's order: that one is CPython's set iteration order, an accident of
hashing. The two give identical labels on the reference vectors (where the rule was chosen); on
held-out clustered random problems (`benchmarks/cluster_icdbscan.py --seeds 1 2 3 4 5`) ARI 0.995-1.0
at N = 2,000, 0.964-1.0 at 5,000 and 0.945-0.975 at 10,000 (eps 0.44, large neighbourhoods), the
differences coming from the order of conflicting candidates rather than from float ties, with 0
violations of enforced cannot-links either way (docs/method.md, cluster).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.clustering.dbscan import NOISE, RadiusGraph, check_distance, csr_parts, radius_graph
from stages.errors import AuxReidError

_UNASSIGNED = -2


def check_pairs(pairs: Any, *, n: int) -> np.ndarray:
    """Validate cannot-link pairs: an (m, 2) integer array of indices in [0, n).

    Returns:
        (m, 2) int64 copy.

    Raises:
        AuxReidError: wrong shape, non-integer or out-of-range indices.
    """
    pairs = np.asarray(pairs)
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.kind not in "iu":
        raise AuxReidError(
            f"cannot-link pairs must be an (m, 2) integer array, got shape {pairs.shape} of {pairs.dtype}; "
            "re-run `auxreid mine-aux`"
        )
    if pairs.min() < 0 or pairs.max() >= n:
        raise AuxReidError(
            f"cannot-link pairs index tracklets {pairs.min()}..{pairs.max()} but there are {n}; "
            "aux.h5 and features.h5 belong to different datasets, re-run `auxreid mine-aux`"
        )
    return pairs.astype(np.int64)


def cannot_link_graph(
    distance: Any, pairs: Any, *, eps: float, relaxed: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each point's cannot-link set as CSR rows, symmetrised, then reduced by `relaxed`.

    Args:
        distance: (n, n) sparse distance; a pair off the support counts as 1.0 (SCP/STS can only
            raise it, which matters only for eps * |relaxed| >= 1).
        pairs: (m, 2) cannot-link pairs, either orientation.
        eps: the clustering radius; `relaxed` scales it.
        relaxed: None keeps every cannot-link; r >= 0 drops links to points at distance <= eps * r;
            r < 0 drops links to points at distance > eps * |r| (only near neighbours constrain).

    Returns:
        indptr (n + 1,) int64 and indices (l,) int64, sorted within each row.
    """
    n = csr_parts(distance)[0]
    pairs = check_pairs(pairs, n=n)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[both[:, 0] != both[:, 1]]
    keys = np.unique(both[:, 0] * n + both[:, 1])
    rows, cols = keys // n, keys % n
    if relaxed is not None and rows.size:
        near = _within(distance, keys, threshold=eps * abs(relaxed))
        keep = ~near if relaxed >= 0 else near
        rows, cols = rows[keep], cols[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols


def _within(distance: Any, keys: np.ndarray, *, threshold: float) -> np.ndarray:
    """(m,) bool: distance <= threshold for the pairs `keys` (row * n + col); off-support pairs are 1.0.

    One pass over the support finds the stored entries on the other side of `threshold` from 1.0
    (few: the support's values lie below 1 and eps is small); their row-major keys are sorted, so a
    binary search per pair decides.
    """
    n, indptr, indices, data = csr_parts(distance)
    below_one = threshold < 1.0
    positions = np.flatnonzero(data <= threshold if below_one else data > threshold)
    stored = (np.searchsorted(indptr, positions, side="right") - 1).astype(np.int64) * n + indices[positions]
    hit = np.zeros(keys.shape, dtype=bool)
    if stored.size:
        found = np.minimum(np.searchsorted(stored, keys), stored.size - 1)
        hit = stored[found] == keys
    return hit if below_one else ~hit


def enforced_pairs(distance: Any, pairs: Any, *, eps: float, relaxed: float | None) -> np.ndarray:
    """The cannot-link pairs ICDBSCAN enforces after the `relaxed` reduction, each once (i < j).

    Returns:
        (k, 2) int64.
    """
    indptr, cols = cannot_link_graph(distance, pairs, eps=eps, relaxed=relaxed)
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    upper = rows < cols
    return np.stack([rows[upper], cols[upper]], axis=1)


def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenation of the CSR rows `rows` without a Python loop."""
    starts, stops = indptr[rows], indptr[rows + 1]
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return indices[:0]
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return indices[offsets + np.arange(total)]


def _static_core(graph: RadiusGraph, cl_indptr: np.ndarray, cl_indices: np.ndarray, min_samples: int) -> np.ndarray:
    """(n,) bool: points whose neighbourhood minus their own cannot-links reaches min_samples.

    Only these can start a cluster: any other start is dissolved at once without side effects.
    """
    n = graph.n
    rows = graph.rows()
    cl_rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(cl_indptr))
    linked = np.isin(rows * n + graph.indices, cl_rows * n + cl_indices)
    return np.bincount(rows[~linked], minlength=n) >= min_samples


def icdbscan(
    distance: Any,
    cannot_link: Any,
    *,
    eps: float,
    min_samples: int = 4,
    relaxed: float | None = None,
) -> np.ndarray:
    """Cannot-link DBSCAN labels on a sparse precomputed distance (module docstring).

    Args:
        distance: (n, n) sparse distance (CSR: scipy matrix or `SparseDistance`); missing = 1.0.
        cannot_link: (m, 2) int pairs of points that must not share a cluster (either orientation).
        eps: neighbourhood radius.
        min_samples: neighbourhood size (self included, cannot-links removed) of a core point, and
            the smallest cluster kept.
        relaxed: cannot-link reduction (see `cannot_link_graph`); None keeps all.

    Returns:
        (n,) int64 labels 0..C-1 in order of creation; -1 for noise. No cluster holds a pair that
        survived the reduction.
    """
    check_distance(distance)
    if min_samples < 1:
        raise AuxReidError(f"min_samples must be >= 1, got {min_samples}")
    graph = radius_graph(distance, eps=eps, always_self=True)
    cl_indptr, cl_indices = cannot_link_graph(distance, cannot_link, eps=eps, relaxed=relaxed)
    return _expand_all(graph, cl_indptr, cl_indices, min_samples)


def _expand_all(graph: RadiusGraph, cl_indptr: np.ndarray, cl_indices: np.ndarray, min_samples: int) -> np.ndarray:
    n = graph.n
    labels = np.full(n, _UNASSIGNED, dtype=np.int64)
    blocked = np.zeros(n, dtype=bool)
    scratch = np.zeros(n, dtype=bool)
    next_label = 0
    for start in np.flatnonzero(_static_core(graph, cl_indptr, cl_indices, min_samples)).tolist():
        if labels[start] != _UNASSIGNED:
            continue
        members = _expand(start, next_label, graph, cl_indptr, cl_indices, min_samples, labels, blocked, scratch)
        if len(members) < min_samples:
            labels[members] = _UNASSIGNED
        else:
            next_label += 1
        blocked[_gather(cl_indptr, cl_indices, np.asarray(members, dtype=np.int64))] = False
    labels[labels == _UNASSIGNED] = NOISE
    return labels


def _expand(
    start: int,
    label: int,
    graph: RadiusGraph,
    cl_indptr: np.ndarray,
    cl_indices: np.ndarray,
    min_samples: int,
    labels: np.ndarray,
    blocked: np.ndarray,
    scratch: np.ndarray,
) -> list[int]:
    """Grow one cluster from `start` breadth-first; updates the work arrays, returns its members.

    `labels`, `blocked` (the cluster's cannot-link marks) and `scratch` (all False on entry and
    exit) are this module's private work arrays, not caller inputs.
    """
    indptr, neighbours = graph.indptr, graph.indices
    labels[start] = label
    blocked[cl_indices[cl_indptr[start] : cl_indptr[start + 1]]] = True
    members = [start]
    head = 0
    while head < len(members):
        current = members[head]
        head += 1
        candidates = neighbours[indptr[current] : indptr[current + 1]]
        candidates = candidates[~blocked[candidates]]
        own = cl_indices[cl_indptr[current] : cl_indptr[current + 1]]
        if own.size:
            scratch[own] = True
            candidates = candidates[~scratch[candidates]]
            scratch[own] = False
        if candidates.size < min_samples:
            continue
        fresh = candidates[labels[candidates] == _UNASSIGNED]
        if fresh.size:
            members.extend(_admit(fresh, label, cl_indptr, cl_indices, labels, blocked, scratch))
    return members


def _admit(
    fresh: np.ndarray,
    label: int,
    cl_indptr: np.ndarray,
    cl_indices: np.ndarray,
    labels: np.ndarray,
    blocked: np.ndarray,
    scratch: np.ndarray,
) -> list[int]:
    """Admit candidates in order, each unless an earlier one of this batch cannot-links it."""
    links = _gather(cl_indptr, cl_indices, fresh)
    scratch[fresh] = True
    conflict = bool(scratch[links].any()) if links.size else False
    scratch[fresh] = False
    if not conflict:
        labels[fresh] = label
        blocked[links] = True
        return fresh.tolist()
    admitted = []
    for point in fresh.tolist():
        if blocked[point]:
            continue
        labels[point] = label
        blocked[cl_indices[cl_indptr[point] : cl_indptr[point + 1]]] = True
        admitted.append(point)
    return admitted


def cannot_link_violations(labels: np.ndarray, pairs: Any) -> int:
    """Number of distinct cannot-link pairs whose two points share a (non-noise) cluster."""
    labels = np.asarray(labels)
    pairs = check_pairs(pairs, n=labels.size)
    if not pairs.size:
        return 0
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    return int(np.count_nonzero((a == b) & (a != NOISE)))

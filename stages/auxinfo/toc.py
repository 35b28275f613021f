"""TOC, the time-overlapping constraint: same-camera tracklets whose spans overlap.

One person is never tracked twice at once by one camera, so two same-camera tracklets whose time
spans overlap are two different people (Teng et al. 2022, arXiv 2205.03124). Spans are closed
intervals [start, end]: tracklets sharing one frame time overlap. The pairs are found by sorting
each camera's tracklets by start time and sweeping with `searchsorted`, O(n log n + pairs) instead
of the O(n^2) all-pairs test, and are stored sparsely (never as an n x n matrix).
"""

from __future__ import annotations

import numpy as np

from stages.auxinfo.spans import Spans


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten per-owner half-open ranges [lo_o, hi_o) into (owner, member) index pairs.

    Args:
        lo: (n,) first member of each owner's range.
        hi: (n,) one past the last member; ranges with hi <= lo are empty.

    Returns:
        owner (m,) int64 and member (m,) int64, owner by owner, members ascending.
    """
    lo = np.asarray(lo, dtype=np.int64)
    counts = np.maximum(np.asarray(hi, dtype=np.int64) - lo, 0)
    owner = np.repeat(np.arange(lo.size, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    member = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first - lo, counts)
    return owner, member


def _sorted_pairs(a: np.ndarray, b: np.ndarray, *, unordered: bool) -> np.ndarray:
    """Stack pairs as (m, 2) int64, as (min, max) when `unordered`, rows in lexicographic order."""
    if unordered:
        a, b = np.minimum(a, b), np.maximum(a, b)
    pairs = np.stack([a, b], axis=1).astype(np.int64, copy=False).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def overlap_pairs(spans: Spans) -> np.ndarray:
    """Cannot-link pairs of one split: every same-camera pair whose spans overlap.

    Within a camera, tracklets sorted by start overlap a later-starting one exactly when that one
    starts no later than the earlier one ends, so each tracklet's partners are one contiguous run
    of the sorted order found by `searchsorted`.

    Args:
        spans: the n tracklets' cameras and spans.

    Returns:
        (m, 2) int64 pairs (i, j) with i < j, rows sorted.
    """
    camera, start, end = spans.camera, spans.start, spans.end
    firsts, seconds = [], []
    for cam in np.unique(camera):
        members = np.flatnonzero(camera == cam)
        members = members[np.argsort(start[members], kind="stable")]
        starts = start[members]
        hi = np.searchsorted(starts, end[members], side="right")
        owner, partner = expand_ranges(np.arange(1, members.size + 1), hi)
        firsts.append(members[owner])
        seconds.append(members[partner])
    if not firsts:
        return np.zeros((0, 2), dtype=np.int64)
    return _sorted_pairs(np.concatenate(firsts), np.concatenate(seconds), unordered=True)


def overlap_pairs_between(a: Spans, b: Spans) -> np.ndarray:
    """Overlapping same-camera pairs across two splits (query x gallery), for the +1000 test mask.

    An overlapping pair either has the b tracklet starting inside the a span (start_b in
    [start_a, end_a]) or the a tracklet starting strictly inside the b span (start_a in
    (start_b, end_b]); the two cases are disjoint and each is one `searchsorted` range.

    Args:
        a: the first split's (n_a) cameras and spans (query).
        b: the second split's (n_b) cameras and spans (gallery).

    Returns:
        (p, 2) int64 pairs (index into a, index into b), rows sorted.
    """
    camera_a, start_a, end_a = a.camera, a.start, a.end
    camera_b, start_b, end_b = b.camera, b.start, b.end
    rows_a, rows_b = [], []
    for cam in np.intersect1d(camera_a, camera_b):
        in_a = np.flatnonzero(camera_a == cam)
        in_b = np.flatnonzero(camera_b == cam)
        in_a = in_a[np.argsort(start_a[in_a], kind="stable")]
        in_b = in_b[np.argsort(start_b[in_b], kind="stable")]
        starts_a, starts_b = start_a[in_a], start_b[in_b]
        owner, member = expand_ranges(
            np.searchsorted(starts_b, starts_a, side="left"), np.searchsorted(starts_b, end_a[in_a], side="right")
        )
        rows_a.append(in_a[owner])
        rows_b.append(in_b[member])
        owner, member = expand_ranges(
            np.searchsorted(starts_a, starts_b, side="right"), np.searchsorted(starts_a, end_b[in_b], side="right")
        )
        rows_a.append(in_a[member])
        rows_b.append(in_b[owner])
    if not rows_a:
        return np.zeros((0, 2), dtype=np.int64)
    return _sorted_pairs(np.concatenate(rows_a), np.concatenate(rows_b), unordered=False)


def overlap_pairs_naive(spans: Spans) -> np.ndarray:
    """All-pairs O(n^2) reference of `overlap_pairs`, for tests and the benchmark baseline only.

    Returns:
        (m, 2) int64 pairs (i, j) with i < j, rows sorted.
    """
    camera, start, end = spans.camera, spans.start, spans.end
    hit = (camera[:, None] == camera[None, :]) & (start[None, :] <= end[:, None]) & (start[:, None] <= end[None, :])
    return np.argwhere(np.triu(hit, k=1)).astype(np.int64)

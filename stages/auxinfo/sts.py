"""STS transit-time model estimated without identity labels (Teng et al. 2022).

The reference implementation shipped its spatio-temporal model precomputed. Here it is mined from
the data: take tracklet pairs that are confidently the same person by some label-free source
(cross-camera mutual nearest neighbours of appearance features, or members of one cluster of the
previous round; ground-truth ids only as a named oracle), histogram their time gaps per ordered
camera pair, smooth each histogram with a Gaussian (Parzen) kernel and scale it to peak 1. Wrong
confident pairs have unrelated gaps and spread thinly over the histogram; right ones pile up at the
camera pair's transit time, so the peaks survive an imperfect source.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from stages.auxinfo.spans import Spans
from stages.auxinfo.toc import expand_ranges
from stages.auxinfo.transit import FALLBACK_FLAT, FALLBACK_OWN, FALLBACK_POOLED, TransitModel, oriented_gaps

#: Rows of the similarity matrix computed at once by `mutual_knn_pairs` (bounds memory to rows x n).
KNN_BLOCK_ROWS = 1024


def histogram_edges(*, bin_seconds: float, max_gap_seconds: float) -> np.ndarray:
    """Equal-width edges covering gaps in [-max, max] (negative gaps: overlapping camera views).

    Returns:
        (2 * ceil(max / bin) + 1,) float64 edges, 0 among them.
    """
    half = math.ceil(max_gap_seconds / bin_seconds)
    return np.arange(-half, half + 1, dtype=np.float64) * bin_seconds


def _top_k(sims: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each row's k largest finite entries (fewer where a row has fewer)."""
    values, cols = torch.topk(sims, min(k, sims.shape[1]), dim=1)
    keep = torch.isfinite(values)
    rows = torch.arange(sims.shape[0]).unsqueeze(1).expand_as(cols)
    return rows[keep].numpy().astype(np.int64), cols[keep].numpy().astype(np.int64)


def _mutual(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Keep the edges whose reverse edge exists too, once each as (i, j) with i < j."""
    keys = rows * n + cols
    mutual = np.isin(cols * n + rows, keys) & (rows < cols)
    return np.stack([rows[mutual], cols[mutual]], axis=1)


def mutual_knn_pairs(
    features: np.ndarray, camera: np.ndarray, *, k: int, block_rows: int = KNN_BLOCK_ROWS
) -> np.ndarray:
    """Confident same-person pairs from appearance alone: mutual k-nearest neighbours by cosine.

    Neighbours are searched separately among the other cameras (cross-camera pairs feed the
    off-diagonal transit models) and within the own camera (same-camera re-appearance, the
    diagonal), because same-camera similarities are inflated by shared lighting and background and
    would otherwise crowd out every cross-camera neighbour.

    Args:
        features: (n, d) appearance features; L2-normalised here (the input is not modified).
            Rows are grouped by camera so that each search is one dense block product, no masks;
            it runs in torch on the CPU (`topk` is much faster than numpy's argpartition).
        camera: (n,) camera per row.
        k: neighbours per row and per search.
        block_rows: similarity rows computed at once.

    Returns:
        (m, 2) int64 row pairs (i, j), i < j, rows sorted.
    """
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=1)
    camera = np.asarray(camera)
    n = x.shape[0]
    order = np.argsort(camera, kind="stable")
    x = x[torch.as_tensor(order)]
    bounds = np.searchsorted(camera[order], np.unique(camera[order]), side="left").tolist() + [n]
    found: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        other = np.r_[0:lo, hi:n]
        others = torch.cat([x[:lo], x[hi:]])
        for first in range(lo, hi, block_rows):
            last = min(first + block_rows, hi)
            block = x[first:last]
            if others.shape[0]:
                rows, cols = _top_k(block @ others.T, k)
                found[False][0].append(order[rows + first])
                found[False][1].append(order[other[cols]])
            sims = block @ x[lo:hi].T
            sims[torch.arange(last - first), torch.arange(first - lo, last - lo)] = float("-inf")
            rows, cols = _top_k(sims, k)
            found[True][0].append(order[rows + first])
            found[True][1].append(order[cols + lo])
    empty = [np.zeros(0, dtype=np.int64)]
    pairs = [_mutual(np.concatenate(r + empty), np.concatenate(c + empty), n) for r, c in found.values()]
    pairs = np.concatenate(pairs).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def group_pairs(labels: np.ndarray) -> np.ndarray:
    """Every pair of rows sharing a label >= 0 (clusters of a round, or the oracle's person ids).

    Args:
        labels: (n,) int labels; negative means noise / unknown and joins no pair.

    Returns:
        (m, 2) int64 row pairs (i, j), i < j, rows sorted.
    """
    labels = np.asarray(labels)
    valid = np.flatnonzero(labels >= 0)
    valid = valid[np.argsort(labels[valid], kind="stable")]
    sorted_labels = labels[valid]
    group_end = np.searchsorted(sorted_labels, sorted_labels, side="right")
    owner, member = expand_ranges(np.arange(1, valid.size + 1), group_end)
    a, b = valid[owner], valid[member]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.int64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def gap_histograms(
    pairs: np.ndarray,
    spans: Spans,
    *,
    edges: np.ndarray,
    num_cameras: int,
) -> np.ndarray:
    """Count the time gaps of confident pairs per ordered camera pair (see `oriented_gaps`).

    Same-camera pairs whose spans overlap are dropped: TOC proves they are two people, so any
    source that paired them was wrong. Gaps outside the edges are not counted.

    Args:
        pairs: (m, 2) tracklet index pairs.
        spans: the (n) tracklets' cameras and spans in seconds.
        edges: (bins + 1,) equal-width histogram edges.
        num_cameras: C.

    Returns:
        (C, C, bins) int64 counts, [from camera, to camera, gap bin].
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    cam_from, cam_to, gap = oriented_gaps(spans.take(pairs[:, 0]), spans.take(pairs[:, 1]))
    bins = edges.size - 1
    index = np.floor((gap - edges[0]) / (edges[1] - edges[0])).astype(np.int64)
    keep = (index >= 0) & (index < bins) & ~((cam_from == cam_to) & (gap <= 0))
    flat = (cam_from[keep] * num_cameras + cam_to[keep]) * bins + index[keep]
    counts = np.bincount(flat, minlength=num_cameras * num_cameras * bins)
    return counts.reshape(num_cameras, num_cameras, bins).astype(np.int64)


def _peak_scaled(histogram: np.ndarray) -> np.ndarray:
    """Scale the last axis to peak 1 (all-zero rows stay zero)."""
    peak = histogram.max(axis=-1, keepdims=True)
    return np.divide(histogram, peak, out=np.zeros_like(histogram), where=peak > 0)


def estimate_transit(
    counts: np.ndarray, *, edges: np.ndarray, sigma_bins: float, min_pairs: int, source: str
) -> TransitModel:
    """Smooth, scale and complete the per-pair histograms into the transit model.

    p is the Parzen-smoothed histogram scaled to peak 1 per camera pair, so the most common transit
    time of a pair gets p = 1 (factor 1) and unseen gaps get p = 0 (factor 1 + lambda). A camera
    pair with fewer than `min_pairs` confident pairs has no trustworthy shape of its own; it uses
    the pooled model of its kind (all cross-camera pairs, or all same-camera pairs), the best
    label-free prior for how long people take between cameras of this network: it still penalises
    gaps nobody takes, without branding a sparsely observed pair impossible as p = 0 would. When
    even the pooled kind has fewer than `min_pairs`, there is no evidence at all and p = 1 (STS
    leaves those distances unchanged).

    Args:
        counts: (C, C, bins) raw gap counts from `gap_histograms`.
        edges: (bins + 1,) the histogram edges.
        sigma_bins: Gaussian kernel width in bins (0: no smoothing).
        min_pairs: support a camera pair needs to use its own histogram.
        source: recorded in the model ("appearance", "clusters", "oracle").

    Returns:
        The TransitModel (density (C, C, bins) in [0, 1], fallback codes per pair).
    """
    raw = np.asarray(counts, dtype=np.float64)
    smooth = gaussian_filter1d(raw, sigma_bins, axis=-1, mode="constant") if sigma_bins > 0 else raw.copy()
    support = np.asarray(counts).sum(axis=-1).astype(np.int64)
    own = support >= min_pairs
    density = np.zeros_like(smooth)
    fallback = np.full(support.shape, FALLBACK_FLAT, dtype=np.int64)
    density[own] = _peak_scaled(smooth[own])
    fallback[own] = FALLBACK_OWN
    diagonal = np.eye(support.shape[0], dtype=bool)
    for kind in (diagonal, ~diagonal):
        missing = kind & ~own
        if support[kind].sum() >= min_pairs:
            density[missing] = _peak_scaled(smooth[kind].sum(axis=0))
            fallback[missing] = FALLBACK_POOLED
        else:
            density[missing] = 1.0
    return TransitModel(
        edges=np.asarray(edges, dtype=np.float64),
        density=density,
        counts=np.asarray(counts, dtype=np.int64),
        support=support,
        fallback=fallback,
        sigma_bins=float(sigma_bins),
        min_pairs=int(min_pairs),
        source=source,
    )


def transit_from_pairs(
    pairs: np.ndarray,
    spans: Spans,
    *,
    num_cameras: int,
    bin_seconds: float,
    max_gap_seconds: float,
    sigma_bins: float,
    min_pairs: int,
    source: str,
) -> TransitModel:
    """Histogram the confident pairs' gaps and turn them into a TransitModel (one call for stages).

    Args:
        pairs: (m, 2) tracklet index pairs judged the same person by `source`.
        spans: the (n) tracklets' cameras and spans.
        num_cameras, bin_seconds, max_gap_seconds, sigma_bins, min_pairs: the aux config settings.
        source: the label-free source's name (or "oracle").
    """
    edges = histogram_edges(bin_seconds=bin_seconds, max_gap_seconds=max_gap_seconds)
    counts = gap_histograms(pairs, spans, edges=edges, num_cameras=num_cameras)
    return estimate_transit(counts, edges=edges, sigma_bins=sigma_bins, min_pairs=min_pairs, source=source)

"""Test-time query x gallery distances: squared Euclidean plus the auxiliary-information terms.

Teng et al. 2022 (arXiv 2205.03124) use the mined auxiliary information at test time too: a large
penalty for query/gallery tracklets whose spans overlap in the same camera (TOC: one person cannot
be in two places at once), a small penalty for the same camera (SCP), and a factor 1 + lambda * exp(-gamma * p) for implausible transit times (STS).
"""

from __future__ import annotations

import numpy as np

#: Rows of the first operand per block when computing distances (bounds the float64 temporaries).
DISTANCE_BLOCK = 1024


def squared_distances(x: np.ndarray, y: np.ndarray, *, block: int = DISTANCE_BLOCK) -> np.ndarray:
    """Squared Euclidean distances, computed in float64 and returned as float32, clipped at 0.

    Float64 accumulation makes the result independent of BLAS blocking at float32 precision, so the
    same features always give the same distances (evaluation is repeatable).

    Args:
        x: (n, d) features.
        y: (m, d) features.
        block: rows of `x` per block.

    Returns:
        (n, m) float32.
    """
    y64 = np.asarray(y, dtype=np.float64)
    y_norm = np.einsum("ij,ij->i", y64, y64)
    out = np.empty((len(x), len(y64)), dtype=np.float32)
    for lo in range(0, len(x), block):
        xb = np.asarray(x[lo : lo + block], dtype=np.float64)
        d = np.einsum("ij,ij->i", xb, xb)[:, None] + y_norm[None, :] - 2.0 * (xb @ y64.T)
        out[lo : lo + block] = np.maximum(d, 0.0)
    return out


def add_overlap_penalty(dist: np.ndarray, pairs: np.ndarray, *, penalty: float) -> np.ndarray:
    """TOC: add `penalty` where a query and a gallery tracklet overlap in time in the same camera.

    Args:
        dist: (n_query, n_gallery) distances.
        pairs: (p, 2) (query row, gallery column) pairs; duplicates count once.
        penalty: added distance (1000 in the paper: pushes the pair to the end of the ranking).

    Returns:
        A new (n_query, n_gallery) array of dist's dtype.
    """
    out = dist.copy()
    if len(pairs):
        mask = np.zeros(dist.shape, dtype=bool)
        mask[pairs[:, 0], pairs[:, 1]] = True
        out[mask] += dist.dtype.type(penalty)
    return out


def add_camera_penalty(
    dist: np.ndarray, query_cams: np.ndarray, gallery_cams: np.ndarray, *, lam: float
) -> np.ndarray:
    """SCP: add `lam` to every same-camera query/gallery pair (a same-camera match is less informative).

    Args:
        dist: (n_query, n_gallery) distances.
        query_cams: (n_query,) cameras.
        gallery_cams: (n_gallery,) cameras.
        lam: added distance.

    Returns:
        A new (n_query, n_gallery) array of dist's dtype.
    """
    same = query_cams[:, None] == gallery_cams[None, :]
    return (dist + dist.dtype.type(lam) * same).astype(dist.dtype, copy=False)


def scale_by_factor(dist: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """STS: multiply each distance by its transit-time factor (1 plausible, up to 1 + lambda).

    Args:
        dist: (n_query, n_gallery) distances.
        factor: (n_query, n_gallery) factors >= 1, e.g. from `stages.auxinfo.transit.sts_factor`.

    Returns:
        A new (n_query, n_gallery) array of dist's dtype.
    """
    return (dist * factor).astype(dist.dtype, copy=False)

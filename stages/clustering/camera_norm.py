"""Camera-wise standardisation of the features that are clustered.

Each camera adds its own offset to a re-id feature (lighting, background, viewpoint), so same-camera
tracklets of different people can lie closer than one person's tracklets on two cameras, and DBSCAN
then groups by camera. Camera-based Batch Normalization (Zhuang et al., "Rethinking the Distribution Gap
of Person Re-identification with Camera-based Batch Normalization", ECCV 2020) removes that gap inside
the network by normalising each camera's samples with that camera's own statistics. This module applies
the same idea to the clustering input alone: every feature dimension is standardised with its camera's
mean and standard deviation, so the k-reciprocal Jaccard distance sees identities rather than cameras.
The network, the classifier's seeding from the centroids and the evaluation are unchanged.
"""

from __future__ import annotations

import numpy as np

#: Added to each camera's standard deviation, so a constant dimension stays finite.
STD_FLOOR = 1e-6
#: Rows converted to float64 at once: a million 2,048-d features would take 16 GB as one float64 copy.
CHUNK_ROWS = 1 << 16


def camera_standardise(features: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """(x - mean of x's camera) / (std of x's camera + STD_FLOOR), per dimension; float32.

    Args:
        features: (n, d) features.
        camera: (n,) camera index of each row.

    Returns:
        (n, d) float32; the inputs are not modified. A camera with one tracklet maps it to 0.
    """
    _, index, counts = np.unique(np.asarray(camera), return_inverse=True, return_counts=True)
    index = index.reshape(-1)
    n, dims = features.shape
    sums = np.zeros((counts.size, dims))
    squares = np.zeros_like(sums)
    for rows in _row_chunks(n):
        x = np.asarray(features[rows], dtype=np.float64)
        np.add.at(sums, index[rows], x)
        np.add.at(squares, index[rows], x * x)
    mean = sums / counts[:, None]
    std = np.sqrt(np.maximum(squares / counts[:, None] - mean * mean, 0.0))
    out = np.empty((n, dims), dtype=np.float32)
    for rows in _row_chunks(n):
        x = np.asarray(features[rows], dtype=np.float64)
        out[rows] = (x - mean[index[rows]]) / (std[index[rows]] + STD_FLOOR)
    return out


def _row_chunks(n: int) -> list[slice]:
    """Rows in order, CHUNK_ROWS at a time: the float64 work stays a chunk's size (the sums see the rows in the
    same order as one pass over all of them, so the result is the same to the bit)."""
    return [slice(start, min(n, start + CHUNK_ROWS)) for start in range(0, n, CHUNK_ROWS)]

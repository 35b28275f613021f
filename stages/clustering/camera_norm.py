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


def camera_standardise(features: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """(x - mean of x's camera) / (std of x's camera + STD_FLOOR), per dimension; float32.

    Args:
        features: (n, d) features.
        camera: (n,) camera index of each row.

    Returns:
        (n, d) float32; the inputs are not modified. A camera with one tracklet maps it to 0.
    """
    x = np.asarray(features, dtype=np.float64)
    _, index, counts = np.unique(np.asarray(camera), return_inverse=True, return_counts=True)
    index = index.reshape(-1)
    sums = np.zeros((counts.size, x.shape[1]))
    squares = np.zeros_like(sums)
    np.add.at(sums, index, x)
    np.add.at(squares, index, x * x)
    mean = sums / counts[:, None]
    std = np.sqrt(np.maximum(squares / counts[:, None] - mean * mean, 0.0))
    return ((x - mean[index]) / (std[index] + STD_FLOOR)).astype(np.float32)

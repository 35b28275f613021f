"""Straightforward k-reciprocal Jaccard distance with the reference's structure: the benchmark baseline.

Dense N x N float32 arrays (V, V after query expansion, the distance) and a Python loop per row
with set operations, as SpCL/MMT's `compute_jaccard_distance` does (CPU faiss search). It is the
yardstick `benchmarks/cluster.py` times the sparse `stages.clustering.jaccard` against; a test checks it
against the reference vectors too. Not for production use: memory is O(N^2).
"""

from __future__ import annotations

import time

import faiss
import numpy as np
import torch


def dense_jaccard(features: np.ndarray, *, k1: int = 30, k2: int = 6) -> tuple[np.ndarray, dict[str, float]]:
    """(N, N) float32 Jaccard distance and the seconds spent in "knn" and "after_knn".

    Args:
        features: (N, d) float32 features, used as given.
        k1, k2: list sizes (capped at N and k1).
    """
    start = time.perf_counter()
    points = np.ascontiguousarray(features, dtype=np.float32)
    n = len(points)
    k1 = min(k1, n)
    k2 = min(k2, k1)
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    _, rank = index.search(points, k1)
    searched = time.perf_counter()
    tensor = torch.from_numpy(points)
    half = int(np.around(k1 / 2))
    full_sets = [_reciprocal(rank, i, k1) for i in range(n)]
    half_sets = [_reciprocal(rank, i, half) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        members = full_sets[i]
        expanded = members
        for candidate in members:
            extra = half_sets[candidate]
            if len(np.intersect1d(extra, members)) > 2 / 3 * len(extra):
                expanded = np.append(expanded, extra)
        expanded = np.unique(expanded)
        dist = 2 - 2 * torch.mm(tensor[i].unsqueeze(0), tensor[expanded].t())
        v[i, expanded] = torch.softmax(-dist, dim=1).view(-1).numpy()
    if k2 != 1:
        expanded_v = np.zeros_like(v)
        for i in range(n):
            expanded_v[i] = np.mean(v[rank[i, :k2]], axis=0)
        v = expanded_v
    columns = [np.flatnonzero(v[:, k]) for k in range(n)]
    jaccard = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        mins = np.zeros(n, dtype=np.float32)
        for k in np.flatnonzero(v[i]):
            mins[columns[k]] += np.minimum(v[i, k], v[columns[k], k])
        jaccard[i] = 1 - mins / (2 - mins)
    np.maximum(jaccard, 0.0, out=jaccard)
    done = time.perf_counter()
    return jaccard, {"knn": searched - start, "after_knn": done - searched}


def _reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    forward = rank[i, :k + 1]
    backward = rank[forward, :k + 1]
    return forward[np.where(backward == i)[0]]


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Nothing to run here: benchmarks/cluster.py times it."
    ).parse_args()
    print("benchmarks/jaccard_baseline.py is imported by benchmarks/cluster.py, which times it; run that")

"""Cluster statistics and, when identities are known, quality scores of a pseudo-label partition.

The scores are for inspection only (synthetic data, or real train ids a person wants to look at);
clustering never sees identities. They are computed over the non-noise tracklets: a tracklet
labelled -1 belongs to no cluster, so it makes no pair and has no cluster to be pure in. How much
was left out is the separate `noise_ratio`, which has to be read beside them: a partition that
keeps only its easiest 10 % can score perfectly. `nmi_all` is the one score over every tracklet,
each noise tracklet counted as a cluster of its own, so it rises only when more tracklets are put
with their own person: the figure to compare across rounds whose noise ratios differ.
"""

from __future__ import annotations

import numpy as np

from stages.clustering.dbscan import NOISE

QUALITY_KEYS = ("purity", "nmi", "ari", "pairwise_precision", "pairwise_recall", "nmi_all")


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """(C,) int64 members per cluster 0..C-1 (noise not counted)."""
    labels = np.asarray(labels)
    kept = labels[labels != NOISE]
    return np.bincount(kept, minlength=int(kept.max()) + 1 if kept.size else 0).astype(np.int64)


def noise_ratio(labels: np.ndarray) -> float:
    """Fraction of tracklets labelled noise (0 for an empty input)."""
    labels = np.asarray(labels)
    return float(np.mean(labels == NOISE)) if labels.size else 0.0


def _pairs(counts: np.ndarray) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    return float((counts * (counts - 1) / 2).sum())


def quality(labels: np.ndarray, person_ids: np.ndarray) -> dict[str, float]:
    """Purity, NMI, ARI and pairwise precision / recall of the clusters against person ids.

    Over the non-noise tracklets only (module docstring). Pairwise precision: of the tracklet
    pairs sharing a cluster, the fraction showing one person; recall: of the pairs showing one
    person (both clustered), the fraction sharing a cluster. Undefined scores (no clustered
    tracklet, or no pair) are NaN.

    Args:
        labels: (n,) cluster labels, -1 noise.
        person_ids: (n,) ground-truth identities.

    Returns:
        {"purity", "nmi", "ari", "pairwise_precision", "pairwise_recall"}: floats, and "nmi_all"
        over every tracklet with noise as singletons.
    """
    # deferred: sklearn, which stages.views.summaries (`auxreid inspect`, every stage's closing summary) never needs;
    # it imports the size and noise helpers of this module only
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    labels, person_ids = np.asarray(labels), np.asarray(person_ids)
    kept = labels != NOISE
    if not kept.any():
        return {key: float("nan") for key in QUALITY_KEYS}
    singletons = np.where(kept, labels, labels.max(initial=0) + 1 + np.cumsum(~kept))
    nmi_all = float(normalized_mutual_info_score(person_ids, singletons))
    labels, person_ids = labels[kept], person_ids[kept]
    table = contingency_matrix(person_ids, labels, sparse=True).tocsc()
    together = _pairs(table.data)
    same_cluster = _pairs(np.asarray(table.sum(axis=0)).ravel())
    same_person = _pairs(np.asarray(table.sum(axis=1)).ravel())
    return {
        "purity": float(table.max(axis=0).toarray().sum() / labels.size),
        "nmi": float(normalized_mutual_info_score(person_ids, labels)),
        "ari": float(adjusted_rand_score(person_ids, labels)),
        "pairwise_precision": together / same_cluster if same_cluster else float("nan"),
        "pairwise_recall": together / same_person if same_person else float("nan"),
        "nmi_all": nmi_all,
    }


def size_histogram(sizes: np.ndarray) -> list[tuple[str, int]]:
    """Cluster counts per size bucket (1, 2, 3-4, 5-8, ... doubling), for `auxreid inspect`."""
    sizes = np.asarray(sizes)
    if not sizes.size:
        return []
    buckets: list[tuple[str, int]] = []
    low, high = 1, 1
    top = int(sizes.max())
    while low <= top:
        count = int(((sizes >= low) & (sizes <= high)).sum())
        if count:
            buckets.append((str(low) if low == high else f"{low}-{high}", count))
        low, high = high + 1, high * 2
    return buckets

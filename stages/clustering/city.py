"""The Jaccard distance and eps at city scale: only the pairs that can matter kept, with the same clusters.

Every pair of tracklets that shares k-reciprocal weight has a Jaccard distance below 1, about 9,000 a tracklet on
a dense network: 7.5 GB at 50,000 tracklets, far beyond memory at a million. DBSCAN only reads the pairs within
eps (ICDBSCAN's `relaxed` those within eps x |relaxed|), and the adaptive eps only averages the smallest pairs, so
a distance that keeps the pairs below a cap above both gives the same eps and the same labels
(`stages.clustering.sparse_distance.SparseDistance.cap`). The penalties (SCP adds, STS multiplies) only raise a
distance, so a pair left out stays out of reach after them.

- A fixed eps (or round 1's, reused) gives the cap directly.
- The adaptive eps is not known before the distance: the cap is set so that each row keeps about four times the
  pairs the eps averages per row after the penalties (`stages.clustering.jaccard.cap_for`, measured on 2,000
  sampled rows), and when the eps needs more pairs below the cap than were kept, or lands too close to it, the
  distance is computed again with a cap for four times as many (`BeyondCap`); each pass is exact, so the answer
  never depends on the guess.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from stages.clustering.eps import BeyondCap, adaptive_eps
from stages.clustering.jaccard import cap_for, jaccard_from_weights
from stages.clustering.sparse_distance import SparseDistance
from stages.config import ClusterConfig
from stages.errors import AuxReidError
from stages.progress import Progress
from stages.shards import WHOLE, Shard

#: Pairs kept per row, as a multiple of the pairs the eps averages per row, and the floor.
KEEP_FACTOR = 4.0
KEEP_FLOOR = 16.0
#: Passes with a higher cap before giving up (each is a whole Jaccard computation).
MAX_PASSES = 3


def reach(eps: float, cluster: ClusterConfig) -> float:
    """The largest distance the clustering reads at `eps`: eps, or eps x |relaxed| for ICDBSCAN's cannot-links."""
    relaxed = cluster.relaxed if cluster.toc and cluster.relaxed is not None else 0.0
    return eps * max(1.0, abs(relaxed))


def pairs_per_row(cluster: ClusterConfig, n: int) -> float:
    """The pairs per row the adaptive eps averages: eps_pairs_per_point, or the paper's rho x (n - 1) / 2 pairs."""
    if cluster.eps_pairs_per_point is not None:
        return float(cluster.eps_pairs_per_point)
    return cluster.rho * (n - 1) / 2


def capped_distance(
    weights: sp.csr_matrix, cluster: ClusterConfig, *, eps: float | None,
    adjust: Callable[[SparseDistance], SparseDistance] | None, seed: int, progress: Progress, shard: Shard = WHOLE,
) -> tuple[SparseDistance, float]:
    """The (penalised) distance kept below a cap, and the eps: the same eps and labels as the full distance.

    Args:
        weights: the k-reciprocal encoding (`stages.clustering.jaccard.encoded_rows`).
        cluster: the cluster settings (rho or eps_pairs_per_point, relaxed, toc).
        eps: a known radius, or None for the adaptive eps.
        adjust: SCP / STS, applied to each distance computed.
        seed: draws the rows the cap is measured on.
        progress: receives the "Jaccard" task of each pass.
        shard: under torchrun, the rows this rank computes (`stages.shards`); every rank gets the result.
    """
    adjust = adjust or (lambda distance: distance)
    if eps is not None:
        cap = float(np.nextafter(np.float32(min(1.0, reach(eps, cluster))), np.float32(2.0)))
        return adjust(jaccard_from_weights(weights, cap=min(cap, 1.0), penalties=adjust, progress=progress,
                                           shard=shard)), eps
    keep = max(KEEP_FACTOR * pairs_per_row(cluster, weights.shape[0]), KEEP_FLOOR)
    for _ in range(MAX_PASSES):
        cap = cap_for(weights, pairs_per_row=keep, adjust=adjust, seed=seed)
        distance = adjust(jaccard_from_weights(weights, cap=cap, penalties=adjust, progress=progress, shard=shard))
        try:
            found = float(adaptive_eps(distance, rho=cluster.rho, pairs_per_point=cluster.eps_pairs_per_point))
        except BeyondCap as short:
            progress.warn(f"{short}; computing the Jaccard distance again with a higher cap")
            keep *= KEEP_FACTOR
            continue
        if not distance.capped or reach(found, cluster) < distance.cap:
            return distance, found
        progress.warn(f"eps {found:.4g} reaches the Jaccard cap {distance.cap:.4g}; computing the distance again "
                      "with a higher cap")
        keep *= KEEP_FACTOR
    raise AuxReidError(
        f"no Jaccard cap kept the pairs the adaptive eps needs after {MAX_PASSES} passes ({keep / KEEP_FACTOR:.0f} pairs "
        f"a tracklet); set cluster.eps_pairs_per_point lower, or cluster.jaccard_cap_from above the "
        f"{weights.shape[0]:,} tracklets to keep every pair (memory permitting)"
    )

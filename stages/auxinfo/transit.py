"""The auxiliary information of one dataset (aux.h5) as cluster and evaluate use it: SCP, TOC, STS.

STS follows Teng et al. 2022 (arXiv 2205.03124): a distance d becomes d * (1 + lambda * exp(-gamma
* p)), where p in [0, 1] scores how plausible the time gap of two tracklets is for their camera pair
under a transit-time model. The model is stored per ordered camera pair; p is computed
on demand for any set of tracklet pairs, never as an n x n matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.auxinfo.spans import Spans

#: How an ordered camera pair's transit density was obtained (stored in `sts/fallback`).
FALLBACK_OWN, FALLBACK_POOLED, FALLBACK_FLAT = 0, 1, 2


def sts_factor(p: np.ndarray | float, lam: float, gamma: float) -> np.ndarray:
    """The STS distance factor 1 + lam * exp(-gamma * p): 1 for a plausible gap, up to 1 + lam otherwise."""
    return 1.0 + lam * np.exp(-gamma * np.asarray(p, dtype=np.float64))


def oriented_gaps(a: Spans, b: Spans) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orient each tracklet pair in time: (camera left, camera entered, seconds in between).

    The tracklet that starts first is "from" (ties broken by end, then camera), so the result does
    not depend on which tracklet is passed as a and which as b: p is symmetric by construction. The
    gap is start(to) - end(from); it is negative when the spans overlap (overlapping views).

    Args:
        a: (m) camera and span of the first tracklet of each pair.
        b: (m) the same for the second tracklet.

    Returns:
        cam_from (m,) int64, cam_to (m,) int64, gap (m,) float64 seconds.
    """
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} tracklets and b {len(b)}; pairs need the same number")
    camera_a, start_a, end_a = a.camera, a.start, a.end
    camera_b, start_b, end_b = b.camera, b.start, b.end
    a_first = (start_a < start_b) | (
        (start_a == start_b) & ((end_a < end_b) | ((end_a == end_b) & (camera_a <= camera_b)))
    )
    cam_from = np.where(a_first, camera_a, camera_b)
    cam_to = np.where(a_first, camera_b, camera_a)
    gap = np.where(a_first, start_b - end_a, start_a - end_b)
    return cam_from, cam_to, gap


@dataclass(frozen=True)
class TransitModel:
    """Transit-time densities per ordered camera pair (diagonal: same-camera re-appearance).

    Attributes:
        edges: (bins + 1,) equal-width bin edges in seconds, symmetric around 0.
        density: (C, C, bins) smoothed histograms scaled to peak 1, fallbacks filled in; p values.
        counts: (C, C, bins) raw gap counts of the confident pairs the model was estimated from.
        support: (C, C) confident pairs whose gap fell inside the edges.
        fallback: (C, C) FALLBACK_OWN / FALLBACK_POOLED / FALLBACK_FLAT per camera pair.
        sigma_bins: Gaussian smoothing width in bins.
        min_pairs: support below which a pair uses the fallback.
        source: "appearance", "clusters" or "oracle".
    """

    edges: np.ndarray
    density: np.ndarray
    counts: np.ndarray
    support: np.ndarray
    fallback: np.ndarray
    sigma_bins: float
    min_pairs: int
    source: str

    @property
    def num_cameras(self) -> int:
        return int(self.density.shape[0])

    @property
    def bin_seconds(self) -> float:
        return float(self.edges[1] - self.edges[0])

    def lookup(self, cam_from: np.ndarray, cam_to: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """p for oriented pairs; gaps outside the edges get 0 (nobody was seen taking that long).

        Returns:
            (m,) float64 in [0, 1].
        """
        gap = np.asarray(gap, dtype=np.float64)
        index = np.floor((gap - self.edges[0]) / self.bin_seconds).astype(np.int64)
        inside = (index >= 0) & (index < self.density.shape[2])
        p = np.zeros(gap.shape, dtype=np.float64)
        p[inside] = self.density[np.asarray(cam_from)[inside], np.asarray(cam_to)[inside], index[inside]]
        return p

    def peak_seconds(self) -> np.ndarray:
        """Most likely gap of each camera pair, refined between bins by a parabola through the peak bin.

        Returns:
            (C, C) float64 seconds; NaN where the pair has no histogram of its own.
        """
        y = self.density
        peak = y.argmax(axis=2)
        inner = np.clip(peak, 1, y.shape[2] - 2)
        rows, cols = np.indices(peak.shape)
        left, mid, right = (y[rows, cols, inner + d] for d in (-1, 0, 1))
        curvature = left - 2 * mid + right
        shift = np.divide(left - right, 2 * curvature, out=np.zeros_like(mid), where=curvature < 0)
        shift = np.where(peak == inner, np.clip(shift, -0.5, 0.5), 0.0)
        centers = (self.edges[:-1] + self.edges[1:]) / 2
        seconds = centers[peak] + shift * self.bin_seconds
        return np.where(self.fallback == FALLBACK_OWN, seconds, np.nan)

    def probability(self, a: Spans, b: Spans) -> np.ndarray:
        """p_ij for m tracklet pairs (a[k], b[k]) given their cameras and spans; symmetric in a and b.

        Returns:
            (m,) float64 in [0, 1].
        """
        return self.lookup(*oriented_gaps(a, b))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The `sts/` datasets of aux.h5."""
        return {
            "sts/edges": self.edges,
            "sts/density": self.density,
            "sts/counts": self.counts,
            "sts/support": self.support,
            "sts/fallback": self.fallback,
            "sts/sigma_bins": np.float64(self.sigma_bins),
            "sts/min_pairs": np.int64(self.min_pairs),
        }

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], *, source: str) -> "TransitModel":
        return cls(
            edges=np.asarray(data["sts/edges"], dtype=np.float64),
            density=np.asarray(data["sts/density"], dtype=np.float64),
            counts=np.asarray(data["sts/counts"], dtype=np.int64),
            support=np.asarray(data["sts/support"], dtype=np.int64),
            fallback=np.asarray(data["sts/fallback"], dtype=np.int64),
            sigma_bins=float(data["sts/sigma_bins"]),
            min_pairs=int(data["sts/min_pairs"]),
            source=source,
        )

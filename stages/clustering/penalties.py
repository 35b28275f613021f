"""SCP and STS, the auxiliary terms of the clustering distance, in the two forms the stage needs.

d becomes d + lambda_c for a same-camera pair (SCP), then x (1 + lambda exp(-gamma p)) (STS, p the plausibility of
the pair's time gap for its camera pair under the transit model). Called on a `SparseDistance` they apply to
every stored and implicit entry, as on the dense matrix. At city scale the capped Jaccard kernel keeps a pair only
when its penalised value is below the cap, so it evaluates the same terms per pair, compiled
(`stages.clustering.kernels.penalised`, fed by `kernel_terms`): a million tracklets share weight with about nine
thousand others each, and the penalties decide which few of those are worth memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from stages.auxinfo.spans import Spans
from stages.auxinfo.transit import TransitModel, sts_factor
from stages.clustering.sparse_distance import SparseDistance


class KernelTerms(NamedTuple):
    """The penalties as plain arrays for the compiled kernel (numba takes a named tuple of arrays and numbers).

    `rows` holds, per tracklet, its camera (SCP), the camera of its span, and the span's start and end (STS) side
    by side: the kernel reads a pair's partner from one cache line, where four arrays cost four misses (a million
    tracklets' rows are 32 MB, and each is visited about nine thousand times at random).

    With the tracklets in time order (`AuxPenalties.time_order`), `window` holds per tracklet the range of
    tracklets [lo, hi) whose transit density with it can be above 0: every other partner is too far in time, so
    its STS factor is exactly 1 + lambda, and the kernel can drop a pair whose distance is too large even then
    without reading the partner's row at all (most of the thousands of pairs a row shares weight with).
    """

    scp: bool
    scp_lambda: float
    sts: bool
    sts_lambda: float
    sts_gamma: float
    rows: np.ndarray
    density: np.ndarray
    first_edge: float
    bin_seconds: float
    windowed: bool = False
    window: np.ndarray = np.zeros((0, 2), dtype=np.int64)


#: No penalties: what the kernel gets when it only compares raw distances with the cap.
NO_TERMS = KernelTerms(False, 0.0, False, 0.0, 0.0, np.zeros((0, 4)), np.zeros((0, 0, 0)), 0.0, 1.0)


@dataclass(frozen=True)
class AuxPenalties:
    """SCP and / or STS for n tracklets.

    Attributes:
        camera: (n,) 0-based camera of each tracklet.
        scp_lambda: the same-camera penalty lambda_c, or None without SCP.
        spans: camera and time span of each tracklet (STS), or None without STS.
        transit: the transit model p is read from (STS), or None.
        sts_lambda, sts_gamma: the STS factor's lambda and gamma.
    """

    camera: np.ndarray
    scp_lambda: float | None = None
    spans: Spans | None = None
    transit: TransitModel | None = None
    sts_lambda: float = 0.0
    sts_gamma: float = 0.0

    def __call__(self, distance: SparseDistance) -> SparseDistance:
        """The penalised distance (SCP first, then STS)."""
        if self.scp_lambda is not None:
            distance = distance.add_same_camera(self.camera, lam=self.scp_lambda)
        if self.transit is not None and self.spans is not None:
            spans, transit = self.spans, self.transit

            def factor(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
                return sts_factor(transit.probability(spans.take(rows), spans.take(cols)), self.sts_lambda,
                                  self.sts_gamma)

            distance = distance.scale(factor)
        return distance

    def _rows(self, sts: bool) -> np.ndarray:
        """(n, 4) float64: camera, span camera, start, end (cameras are small integers, exact in float64)."""
        rows = np.zeros((len(self.camera), 4))
        rows[:, 0] = self.camera
        if sts:
            rows[:, 1], rows[:, 2], rows[:, 3] = self.spans.camera, self.spans.start, self.spans.end
        return rows

    @property
    def sts(self) -> bool:
        return self.transit is not None and self.spans is not None

    def time_order(self) -> np.ndarray:
        """The tracklets by span start (ties by index; spans without a time last): order[r] is the r-th."""
        return np.argsort(self.spans.start, kind="stable").astype(np.int64)

    def kernel_terms(self, in_time_order: bool = False) -> KernelTerms:
        """The same terms as arrays for `stages.clustering.kernels.penalised`; `in_time_order`: for the tracklets
        renamed in `time_order` (their rows in that order, and the windows of partners near in time)."""
        sts = self.sts
        rows = self._rows(sts)
        window = None
        if in_time_order:
            rows = np.ascontiguousarray(rows[self.time_order()])
            if sts:
                window = self._windows(rows[:, 2], rows[:, 3])
        return KernelTerms(
            scp=self.scp_lambda is not None,
            scp_lambda=float(self.scp_lambda or 0.0),
            sts=sts,
            sts_lambda=float(self.sts_lambda),
            sts_gamma=float(self.sts_gamma),
            rows=rows,
            density=np.ascontiguousarray(self.transit.density if sts else np.zeros((0, 0, 0)), dtype=np.float64),
            first_edge=float(self.transit.edges[0]) if sts else 0.0,
            bin_seconds=self.transit.bin_seconds if sts else 1.0,
            windowed=window is not None,
            window=np.zeros((0, 2), dtype=np.int64) if window is None else window,
        )

    def _windows(self, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
        """(n, 2) [lo, hi) of the partners, in time order, whose density with each tracklet can be above 0; None
        when a span has no finite time (then every pair is evaluated in full).

        The density is 0 for a gap at or past the last edge. Whichever span starts first, a partner j with a gap
        below it starts after start_i - last_edge - (longest span) and before end_i + last_edge; a bin's width
        more on each side absorbs the rounding of the gap's bin.
        """
        if not (np.isfinite(start).all() and np.isfinite(end).all()):
            return None
        reach = float(self.transit.edges[-1]) + self.transit.bin_seconds
        longest = float(np.max(end - start, initial=0.0))
        return np.stack([np.searchsorted(start, start - reach - longest, side="left"),
                         np.searchsorted(start, end + reach, side="right")], axis=1).astype(np.int64)

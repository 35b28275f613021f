"""A symmetric n x n distance stored sparsely: entries off the support are 1.0 (or penalised 1.0).

The Jaccard distance of the clustering stage is 1 for every pair of tracklets that share no
k-reciprocal weight, so only the support is stored (CSR, explicit zeros kept: the self distance is
0). The auxiliary terms are applied on the support: SCP adds lambda_c to same-camera
pairs, STS multiplies by 1 + lambda exp(-gamma p). The dense matrix would apply them to the
implicit 1's too; those values are not stored but recorded as the ordered list of operations, so
`implicit_values` (and the adaptive eps, `stages.clustering.eps`) can still see them exactly.

A term or factor is a `PairFunction`: f(rows, cols) -> (len(rows),) values, vectorised and symmetric
in (i, j). Terms must be >= 0 and factors >= 1 (they are penalties), so implicit entries stay >= 1.
Arrays of per-pair values aligned with the support are deliberately not accepted: they cannot say
what the implicit entries become, which the exact adaptive eps needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from stages.errors import AuxReidError

PairFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Value of every entry off the support before any penalty.
IMPLICIT = np.float32(1.0)
#: Distances with |d| <= ZERO_TOLERANCE are zero: left out of the adaptive eps (`stages.clustering.eps`)
#: and tied with each other in ICDBSCAN's admission order (`stages.clustering.dbscan.radius_graph`).
#: Pairs with identical expanded neighbourhoods have d = 0 in exact arithmetic; float summation gives
#: 0 or a few float32 ulps at 1.0 (ulp 1.19e-7) instead, depending on the order: up to 8.9e-7 (15 ulps)
#: on the reference vectors from the reference-structure float32 accumulation, 1.3e-15 from the
#: float64 accumulation here. The smallest distance above that noise there is 0.050, so 1e-5 keeps a
#: 10x margin over the noise and is far below any distance that matters.
ZERO_TOLERANCE = 1e-5
#: Stored entries visited at once by `SparseDistance.chunks`: small enough that a chunk's
#: temporaries (int64 rows and columns, float64 values: ~6 MB) stay in cache and are reused by the
#: allocator rather than mapped afresh for every chunk (SCP at n = 10,000: 0.18 s instead of 0.56 s).
CHUNK_ENTRIES = 1 << 18


@dataclass(frozen=True)
class Operation:
    """One elementwise step: "add" a term or "scale" by a factor."""

    kind: str
    function: PairFunction


@dataclass(frozen=True, eq=False)
class SparseDistance:
    """Symmetric (n, n) distance in CSR form; entries off the support are implicit.

    Attributes:
        indptr: (n + 1,) int64 row offsets.
        indices: (nnz,) int32 columns, sorted within each row.
        data: (nnz,) float32 distances (explicit zeros kept; the diagonal is stored).
        operations: penalties applied so far, in order; off-support pair (i, j) has the value of
            `IMPLICIT` passed through them (see `implicit_values`).
        cap: entries off the support were at least this before the penalties. `IMPLICIT` (1.0): they were
            exactly 1.0 (every pair sharing k-reciprocal weight is stored). Lower: a city-scale distance that
            stores only the pairs below the cap (`stages.clustering.jaccard.jaccard_from_weights`); an
            off-support value is then only known to be >= cap, enough for DBSCAN at any eps below the cap.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    operations: tuple[Operation, ...] = ()
    cap: float = float(IMPLICIT)

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def rows(self) -> np.ndarray:
        """(nnz,) int64 row of each stored entry."""
        return np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.indptr))

    def cols(self) -> np.ndarray:
        """(nnz,) int64 column of each stored entry."""
        return self.indices.astype(np.int64)

    def values(self) -> np.ndarray:
        """(nnz,) float32 stored distances (a read-only view)."""
        view = self.data.view()
        view.flags.writeable = False
        return view

    def add(self, term: PairFunction) -> SparseDistance:
        """A new distance with d(i, j) + term(i, j) everywhere (support and implicit entries).

        Raises:
            AuxReidError: the term is negative or not finite on the support.
        """
        return self._apply(Operation("add", term))

    def scale(self, factor: PairFunction) -> SparseDistance:
        """A new distance with d(i, j) * factor(i, j) everywhere (support and implicit entries).

        Raises:
            AuxReidError: the factor is below 1 or not finite on the support.
        """
        return self._apply(Operation("scale", factor))

    def add_same_camera(self, cameras: np.ndarray, *, lam: float) -> SparseDistance:
        """SCP: + lam for every pair of the same camera (diagonal included, as the dense matrix).

        Args:
            cameras: (n,) int camera of each point.
            lam: the penalty lambda_c (>= 0).
        """
        if len(cameras) != self.n:
            raise AuxReidError(f"the camera array has {len(cameras)} entries but the distance is {self.n} x {self.n}")
        cams = np.asarray(cameras).copy()
        return self.add(lambda rows, cols: np.where(cams[rows] == cams[cols], float(lam), 0.0))

    @property
    def capped(self) -> bool:
        """Whether pairs between the cap and 1.0 were left out (their values are unknown)."""
        return self.cap < IMPLICIT

    def implicit_values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows),) float32 values of off-support pairs: 1.0 through every recorded operation.

        Raises:
            ValueError: a capped distance, whose off-support values are not known.
        """
        if self.capped:
            raise ValueError(f"a distance capped at {self.cap:.4g} does not know its off-support values")
        values = np.full(len(rows), IMPLICIT, dtype=np.float32)
        for operation in self.operations:
            values = _step(values, operation, rows, cols)
        return values

    def to_dense(self) -> np.ndarray:
        """(n, n) float32 dense matrix, implicit entries included (tests and small n only)."""
        n = self.n
        rows_all, cols_all = np.divmod(np.arange(n * n, dtype=np.int64), n)
        dense = self.implicit_values(rows_all, cols_all).reshape(n, n)
        dense[self.rows(), self.cols()] = self.data
        return dense

    def is_symmetric(self) -> bool:
        """Whether the stored pattern and values equal their transpose exactly."""
        rows, cols = self.rows(), self.cols()
        forward = np.lexsort((cols, rows))
        backward = np.lexsort((rows, cols))
        return bool(
            np.array_equal(rows[forward], cols[backward])
            and np.array_equal(cols[forward], rows[backward])
            and np.array_equal(self.data[forward], self.data[backward])
        )

    def chunks(self, max_entries: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, slice]]:
        """(rows, cols, entry slice) of consecutive whole rows holding about `max_entries` entries each.

        Lets callers visit every stored pair with bounded temporaries (int64 coordinates of all
        pairs would be 16 bytes per entry, several GB at n = 50,000).
        """
        step = max(1, CHUNK_ENTRIES if max_entries is None else max_entries)
        bounds = np.searchsorted(self.indptr, np.arange(0, self.nnz, step), side="right") - 1
        starts = np.unique(np.concatenate([bounds, [0]]))
        stops = np.concatenate([starts[1:], [self.n]])
        for start, stop in zip(starts.tolist(), stops.tolist()):
            e0, e1 = int(self.indptr[start]), int(self.indptr[stop])
            rows = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(self.indptr[start:stop + 1]))
            yield rows, self.indices[e0:e1].astype(np.int64), slice(e0, e1)

    def _apply(self, operation: Operation) -> SparseDistance:
        data = np.empty_like(self.data)
        lowest = 0.0 if operation.kind == "add" else 1.0
        for rows, cols, entries in self.chunks():
            raw = np.asarray(operation.function(rows, cols), dtype=np.float64)
            if raw.shape != rows.shape or not np.isfinite(raw).all():
                raise AuxReidError(f"the {operation.kind} function must return finite values, one per pair")
            if raw.size and raw.min() < lowest:
                raise AuxReidError(
                    f"the {operation.kind} function returned {raw.min():.4g} < {lowest}: "
                    "penalties may only increase distances"
                )
            data[entries] = _combine(self.data[entries], operation.kind, raw)
        return SparseDistance(self.indptr, self.indices, data, self.operations + (operation,), self.cap)


def _step(values: np.ndarray, operation: Operation, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return _combine(values, operation.kind, np.asarray(operation.function(rows, cols), dtype=np.float64))


def _combine(values: np.ndarray, kind: str, raw: np.ndarray) -> np.ndarray:
    """float32(values op raw), computed in float64: the one rounding rule for stored and implicit entries."""
    wide = values.astype(np.float64)
    return (wide + raw if kind == "add" else wide * raw).astype(np.float32)


def from_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> SparseDistance:
    """A `SparseDistance` from CSR arrays (copied to the canonical dtypes)."""
    return SparseDistance(
        np.asarray(indptr, dtype=np.int64).copy(),
        np.asarray(indices, dtype=np.int32).copy(),
        np.asarray(data, dtype=np.float32).copy(),
    )

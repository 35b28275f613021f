"""aux.h5 loaded for the stages that use it: per-split cameras and spans, TOC pairs, the STS model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.artifacts.h5 import read_artifact
from stages.artifacts.readers import warn_if_stale
from stages.artifacts.schemas import AUX
from stages.auxinfo.spans import Spans
from stages.auxinfo.transit import TransitModel
from stages.data.base import SPLITS
from stages.errors import AuxReidError
from stages.progress import Progress


@dataclass(frozen=True)
class AuxInfo:
    """One aux.h5, loaded: per-split cameras and spans, TOC pairs, the STS transit model.

    Asking for TOC or STS when the file cannot provide them raises a one-line AuxReidError naming
    the config option to turn off, so cluster/evaluate fail early and clearly.
    """

    path: Path
    dataset: str
    fingerprint: str
    has_times: bool
    cameras: dict[str, np.ndarray]
    starts: dict[str, np.ndarray] = field(default_factory=dict)
    ends: dict[str, np.ndarray] = field(default_factory=dict)
    train_pairs: np.ndarray | None = None
    query_gallery_pairs: np.ndarray | None = None
    transit: TransitModel | None = None

    @property
    def has_sts(self) -> bool:
        return self.transit is not None

    def require_times(self, option: str) -> None:
        """Raise unless the dataset had timestamps; `option` is the config key that asked (e.g. "cluster.toc")."""
        if not self.has_times:
            raise AuxReidError(
                f"{self.path} of dataset {self.dataset} has no timestamps: TOC and STS are unavailable; "
                f"set {option}=false"
            )

    def require_sts(self, option: str) -> None:
        """Raise unless an STS model is present; `option` is the config key that asked (e.g. "evaluate.sts")."""
        self.require_times(option)
        if self.transit is None:
            raise AuxReidError(
                f"{self.path} has no STS model (it was mined without an STS source); re-run `auxreid mine-aux` "
                f"with --features F.h5 (or --sts-source clusters / oracle), or set {option}=false"
            )

    def camera(self, split: str) -> np.ndarray:
        """(n,) int64 camera per tracklet of `split` (for SCP)."""
        return self.cameras[_check_split(split)]

    def spans(self, split: str, *, option: str = "cluster.sts") -> Spans:
        """Camera and [start, end] seconds on the global clock of `split`'s tracklets.

        Args:
            split: "train", "query" or "gallery".
            option: config key named in the error when the dataset has no times.
        """
        self.require_times(option)
        split = _check_split(split)
        return Spans(self.cameras[split], self.starts[split], self.ends[split])

    @property
    def cannot_link(self) -> np.ndarray:
        """(m, 2) int64 train pairs (i < j) that TOC forbids to share a cluster."""
        self.require_times("cluster.toc")
        return self.train_pairs

    @property
    def query_gallery_overlap(self) -> np.ndarray:
        """(p, 2) int64 (query index, gallery index) pairs with overlapping same-camera spans."""
        self.require_times("evaluate.toc")
        return self.query_gallery_pairs

    def sts_probability(
        self, split_a: str, rows: np.ndarray, split_b: str, cols: np.ndarray, *, option: str = "cluster.sts"
    ) -> np.ndarray:
        """p_ij in [0, 1] for tracklet pairs (split_a[rows[k]], split_b[cols[k]]); symmetric.

        Args:
            split_a, split_b: "train", "query" or "gallery".
            rows, cols: (m,) equal-length index arrays into the two splits.
            option: config key named in the error when STS is unavailable.

        Returns:
            (m,) float64.
        """
        self.require_sts(option)
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if rows.shape != cols.shape:
            raise ValueError(f"rows {rows.shape} and cols {cols.shape} must have the same shape")
        return self.transit.probability(self.spans(split_a, option=option).take(rows),
                                        self.spans(split_b, option=option).take(cols))


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


def load_aux(path: str | Path, *, fingerprint: str | None = None) -> AuxInfo:
    """Read aux.h5, refusing one made from another dataset when `fingerprint` is given.

    Raises:
        AuxReidError: missing file, wrong schema, or fingerprint mismatch (named in the message).
    """
    artifact = read_artifact(path, AUX, fingerprint=fingerprint)
    data = artifact.data
    has_times = bool(artifact.attrs.get("has_times", False))
    present = [s for s in SPLITS if f"{s}/camera" in data]
    source = str(artifact.attrs.get("sts_source", ""))
    return AuxInfo(
        path=Path(path),
        dataset=artifact.provenance.dataset,
        fingerprint=artifact.provenance.fingerprint,
        has_times=has_times,
        cameras={s: np.asarray(data[f"{s}/camera"], dtype=np.int64) for s in present},
        starts={s: np.asarray(data[f"{s}/start"], dtype=np.float64) for s in present if has_times},
        ends={s: np.asarray(data[f"{s}/end"], dtype=np.float64) for s in present if has_times},
        train_pairs=np.asarray(data["toc/train_pairs"], dtype=np.int64).reshape(-1, 2) if has_times else None,
        query_gallery_pairs=(
            np.asarray(data["toc/query_gallery_pairs"], dtype=np.int64).reshape(-1, 2) if has_times else None
        ),
        transit=TransitModel.from_arrays(data, source=source) if "sts/density" in data else None,
    )


def read_aux(path: str | Path, *, fingerprint: str | None = None, progress: Progress | None = None) -> AuxInfo:
    """Read aux.h5 (`load_aux`), warning through `progress` when it is stale."""
    info = load_aux(path, fingerprint=fingerprint)
    if progress is not None:
        warn_if_stale(path, progress)
    return info


def missing_aux_message(needs: list[str], *, path: Path | None = None, run: str | None = None) -> str:
    """The one-line refusal when settings that read aux.h5 (`needs`, e.g. ["cluster.toc"]) have none.

    Args:
        needs: the switched-on settings.
        path: the aux.h5 expected but absent (a run's, or one given on the command line); None: none given.
        run: the run whose aux.h5 `path` is (its mine-aux command is named).
    """
    verb = "needs" if len(needs) == 1 else "need"
    switch_off = "set " + " ".join(f"{key}=false" for key in needs)
    if run is not None:
        return f"{path} does not exist but {' and '.join(needs)} {verb} it; run `auxreid mine-aux {run}` first or {switch_off}"
    if path is not None:
        return (f"aux file {path} does not exist but {' and '.join(needs)} {verb} it; give an existing aux.h5 (written "
                f"by `auxreid mine-aux`) or {switch_off}")
    return f"{' and '.join(needs)} {verb} aux.h5; pass --aux aux.h5 (written by `auxreid mine-aux`) or {switch_off}"

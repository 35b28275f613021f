"""`auxreid export`: a round's pseudo labels (and features) as CSV, npz and a torchreid-style image list.

Other tools cannot read HDF5 artifacts with our schemas, so this writes plain files, one row per
train tracklet (CSV, npz) or one line per frame (image list: `path pseudo_id camera`, the
(img_path, pid, camid) triple torchreid's image datasets hold, so the camera is its 0-based index there;
CSV and npz carry each camera's label beside it). Names, frames and camera labels come from
clusters.h5 itself; files written before it stored them are completed from their dataset, found
through the config they carry. Noise tracklets keep label -1 in CSV and npz and are left out of
the image list unless asked for.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.artifacts.h5 import Artifact, atomic_path
from stages.artifacts.readers import config_from_artifact, read_clusters, read_features
from stages.config import Config
from stages.data import load_dataset
from stages.data.frame_table import TABLE_COLUMNS, FrameTable, frame_table
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress
from stages.rundir import StageIO
from stages.views.labels import camera_labels_of, camera_text

#: What `--format` accepts, and the file each writes into the output folder.
EXPORT_FILES = {"csv": "pseudo_labels.csv", "npz": "pseudo_labels.npz", "list": "train_list.txt"}
#: How frame paths are written: as stored (relative to the dataset root) or joined with a root.
PATH_STYLES = ("relative", "absolute")


@dataclass(frozen=True)
class PseudoLabels:
    """One round's pseudo labels with everything an export writes.

    Attributes:
        labels: (n,) int64 pseudo label per train tracklet, -1 noise.
        camera: (n,) int64 0-based camera.
        tracklet_index: (n,) int64 index into the dataset's train split.
        table: names and relative frames of the n tracklets.
        data_root: the dataset root the frames are relative to, '' when unknown.
        features: (n, d) float32 cluster-mode features, or None when not exported.
        camera_labels: camera index -> label; () when the files predate labels (the index is written instead).
    """

    labels: np.ndarray
    camera: np.ndarray
    tracklet_index: np.ndarray
    table: FrameTable
    data_root: str
    features: np.ndarray | None = None
    camera_labels: tuple[str, ...] = ()

    @property
    def camera_label(self) -> np.ndarray:
        """(n,) str: each tracklet's camera label."""
        return np.array([camera_text(self.camera_labels, int(c)) for c in self.camera.tolist()], dtype=str)


def label_rows(labels: PseudoLabels) -> tuple[list[str], list[list[str]]]:
    """CSV header and one row per tracklet: index, name, camera index and label, pseudo label, frames, then the
    features."""
    header = ["tracklet_index", "tracklet_name", "camera", "camera_label", "pseudo_label", "num_frames"]
    counts = np.diff(labels.table.offsets)
    rows = [[str(int(i)), str(name), str(int(c)), str(label), str(int(p)), str(int(k))]
            for i, name, c, label, p, k in zip(labels.tracklet_index, labels.table.names, labels.camera,
                                               labels.camera_label, labels.labels, counts)]
    if labels.features is not None:
        header += [f"feature_{d}" for d in range(labels.features.shape[1])]
        for row, vector in zip(rows, labels.features):
            row.extend(f"{value:.9g}" for value in vector.tolist())  # 9 digits give float32 back exactly
    return header, rows


def image_list(labels: PseudoLabels, *, root: str | None = None, include_noise: bool = False) -> list[str]:
    """One `path pseudo_id camera` line per frame of every labelled tracklet (noise too with `include_noise`).

    Args:
        labels: the pseudo labels.
        root: joined in front of each relative path; None keeps them relative.
        include_noise: also list the frames of noise tracklets, with pseudo id -1.

    Raises:
        AuxReidError: a path holding whitespace, which a space-separated list cannot carry.
    """
    owner = labels.table.frame_owner
    keep = np.ones(len(owner), dtype=bool) if include_noise else labels.labels[owner] >= 0
    paths = labels.table.paths[keep]
    spaced = next((p for p in paths.tolist() if len(p.split()) != 1), None)
    if spaced is not None:
        raise AuxReidError(f"frame path {spaced!r} holds whitespace, which the space-separated image list cannot carry; "
                           "export with --format csv,npz instead")
    if root is not None:
        paths = [os.path.join(root, p) for p in paths.tolist()]
    ids, cams = labels.labels[owner[keep]].tolist(), labels.camera[owner[keep]].tolist()
    return [f"{path} {pid} {cam}" for path, pid, cam in zip(paths, ids, cams)]


def _table_from_dataset(artifact: Artifact, index: np.ndarray) -> tuple[FrameTable, str, tuple[str, ...]]:
    """Names, frames (and camera labels) of a clusters.h5 written before it stored them, looked up in its dataset."""
    try:
        config = config_from_artifact(artifact)
        dataset = load_dataset(config.data)
    except AuxReidError as exc:
        raise AuxReidError(
            f"{artifact.path} stores no tracklet names or frame paths (written before auxreid stored them), and its "
            f"dataset cannot be loaded to look them up ({str(exc).rstrip('.')}); re-run `auxreid extract` and "
            "`auxreid cluster` for its round"
        ) from None
    if dataset.fingerprint != artifact.provenance.fingerprint or (index.size and index.max() >= len(dataset.train)):
        raise AuxReidError(
            f"{artifact.path} stores no tracklet names or frame paths, and the dataset at {config.data.root} "
            f"(fingerprint {dataset.fingerprint}) is not the one it was made from ({artifact.provenance.fingerprint}); "
            "re-run `auxreid extract` and `auxreid cluster` for its round"
        )
    columns = frame_table([dataset.train[int(i)] for i in index], dataset.root)
    table = FrameTable.from_columns(columns, rows=len(index), source=str(artifact.path), redo="auxreid cluster")
    return table, dataset.root, dataset.camera_labels


def _features_for(
    artifact: Artifact, index: np.ndarray, features_path: str | Path | None, progress: Progress
) -> np.ndarray | None:
    """The train features of the clustered rows: `features_path`, else the features clusters.h5 was made from.

    Returns None (with a warning) when the recorded features file is gone; a given file must fit.
    """
    if features_path is None:
        features_path = artifact.provenance.parent_path("features", artifact.path)
        if features_path is None or not Path(features_path).is_file():
            source = (f"was made from {features_path}, which is gone" if features_path is not None
                      else "records no features file")
            progress.warn(f"{artifact.path} {source}; exporting the labels without features (give --features F.h5 to "
                          "add them)")
            return None
    features = read_features(features_path, fingerprint=artifact.provenance.fingerprint, split="train", mode=None)
    train = features["train"]
    if not np.array_equal(train["tracklet_index"], index):
        raise AuxReidError(f"{features_path}: its train rows are not the {len(index)} tracklets {artifact.path} "
                           "labels, in order; give the features.h5 of the same round")
    return np.asarray(train["features"], dtype=np.float32)


def load_pseudo_labels(
    clusters_path: str | Path,
    *,
    features_path: str | Path | None = None,
    with_features: bool = True,
    round: int | None = None,
    progress: Progress | None = None,
) -> PseudoLabels:
    """Read a clusters.h5 (and features) into PseudoLabels.

    Args:
        clusters_path: the clusters.h5.
        features_path: the train features to export; default the features.h5 the clusters were made from.
        with_features: False exports the labels alone.
        round: the round the clusters must be of, or None for any.
        progress: receives stale-file and missing-features warnings.

    Raises:
        AuxReidError: an unreadable or inconsistent clusters.h5 or features.h5, or names that cannot be found.
    """
    progress = progress or NullProgress()
    artifact = read_clusters(clusters_path, round=round, progress=progress)
    labels = np.asarray(artifact["labels"], dtype=np.int64)
    index = np.asarray(artifact["tracklet_index"], dtype=np.int64) if "tracklet_index" in artifact else np.arange(len(labels))
    if "camera" not in artifact:
        raise AuxReidError(f"{clusters_path} has no camera column; re-create it with `auxreid cluster`")
    camera = np.asarray(artifact["camera"], dtype=np.int64)
    if index.shape != labels.shape or camera.shape != labels.shape:
        raise AuxReidError(f"{clusters_path}: labels, tracklet_index and camera have different lengths; the file is "
                           "damaged, re-create it with `auxreid cluster`")
    camera_labels = camera_labels_of(artifact.data)
    if all(key in artifact for key in TABLE_COLUMNS):
        table = FrameTable.from_columns({key: artifact[key] for key in TABLE_COLUMNS}, rows=len(labels),
                                        source=str(clusters_path), redo="auxreid cluster")
        root = str(artifact.attrs.get("data_root", ""))
    else:
        table, root, dataset_labels = _table_from_dataset(artifact, index)
        camera_labels = camera_labels or dataset_labels
    features = _features_for(artifact, index, features_path, progress) if with_features else None
    return PseudoLabels(labels=labels, camera=camera, tracklet_index=index, table=table, data_root=root,
                        features=features, camera_labels=camera_labels)


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """'csv,npz' or ['csv', 'list'] -> the formats, checked against EXPORT_FILES."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    unknown = [item for item in chosen if item not in EXPORT_FILES]
    if unknown or not chosen:
        raise AuxReidError(f"unknown export format {', '.join(map(repr, unknown)) or 'none'}; choose from "
                           f"{', '.join(EXPORT_FILES)} (comma-separated)")
    return chosen


def _write_csv(path: Path, labels: PseudoLabels) -> None:
    header, rows = label_rows(labels)
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_npz(path: Path, labels: PseudoLabels) -> None:
    arrays = {"pseudo_label": labels.labels, "tracklet_index": labels.tracklet_index, "camera": labels.camera,
              "camera_label": labels.camera_label,
              "camera_labels": np.array(labels.camera_labels, dtype=str),
              "tracklet_name": labels.table.names.astype(str), "frame_offsets": labels.table.offsets,
              "frame_paths": labels.table.paths.astype(str), "data_root": np.array(labels.data_root)}
    if labels.features is not None:
        arrays["features"] = labels.features
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _write_list(path: Path, lines: list[str]) -> None:
    with atomic_path(path, suffix=".txt") as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def export_to_folder(
    clusters_path: str | Path,
    *,
    out_dir: str | Path,
    formats: Sequence[str] = tuple(EXPORT_FILES),
    features_path: str | Path | None = None,
    with_features: bool = True,
    paths: str = "relative",
    root: str | Path | None = None,
    include_noise: bool = False,
    round: int | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Write the chosen EXPORT_FILES of a clusters.h5 into `out_dir`, each atomically.

    Args:
        clusters_path: the round's clusters.h5.
        out_dir: the folder written into (created).
        formats: keys of EXPORT_FILES.
        features_path, with_features, round: see `load_pseudo_labels`.
        paths: 'relative' (to the dataset root) or 'absolute' (joined with `root`, default the
            dataset root recorded at extraction) for the image list.
        root: the dataset root to join with; implies absolute paths.
        include_noise: list noise tracklets' frames in the image list too (pseudo id -1).
        progress: receives warnings.

    Returns:
        The files written, in `formats` order.

    Raises:
        AuxReidError: bad formats or path style, unreadable inputs, no root known for absolute paths,
            or a failed write (previous files intact).
    """
    formats = parse_formats(formats)
    if paths not in PATH_STYLES:
        raise AuxReidError(f"unknown path style '{paths}'; choose one of {', '.join(PATH_STYLES)}")
    labels = load_pseudo_labels(clusters_path, features_path=features_path, with_features=with_features,
                                round=round, progress=progress)
    join = str(root) if root is not None else (labels.data_root if paths == "absolute" else None)
    if join is not None and "list" in formats and not join:
        raise AuxReidError(f"{clusters_path} records no dataset root to make absolute paths from; pass --root DIR")
    if join is not None:
        join = os.path.abspath(join)
    lines = image_list(labels, root=join, include_noise=include_noise) if "list" in formats else []
    out_dir = Path(out_dir)
    written = []
    for kind in formats:
        path = out_dir / EXPORT_FILES[kind]
        if kind == "csv":
            _write_csv(path, labels)
        elif kind == "npz":
            _write_npz(path, labels)
        else:
            _write_list(path, lines)
        written.append(path)
    return written


def run_export(config: Config, io: StageIO, *, progress: Progress | None = None) -> list[Path]:
    """`auxreid export`: a round's pseudo labels (and features) as files other tools read; reads no setting."""
    options = io.options
    return export_to_folder(io.inputs["clusters"], out_dir=io.outputs["export"],
                            formats=options.get("formats", tuple(EXPORT_FILES)), features_path=io.input("features"),
                            with_features=not options.get("no_features"), paths=str(options.get("paths", "relative")),
                            root=options.get("root"), include_noise=bool(options.get("include_noise")),
                            round=io.round, progress=progress)

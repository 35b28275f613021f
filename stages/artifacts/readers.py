"""One reader per artifact schema (features, clusters, aux, eval, model), each validating once.

Every stage reads its inputs through these functions, so a check (a features group's columns, a
clusters file's label range) is written once. Given a progress sink, a reader also warns when the
file is stale: a parent it was made from has changed or gone since (its recorded SHA-256 no longer
matches the file on disk). `config_from_artifact` is the one way to get the config an artifact or
model was made with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import h5py
import numpy as np

from stages.artifacts.h5 import Artifact, Provenance, file_sha256, read_artifact, read_provenance
from stages.artifacts.schemas import CLUSTERS, EVAL, FEATURE_COLUMNS, FEATURES, MODEL, writer_of
from stages.config import Config, config_from_yaml, parse_set
from stages.errors import AuxReidError
from stages.progress import Progress

if TYPE_CHECKING:
    from stages.artifacts.model_file import ModelFile


# --- features -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """A validated features.h5 (or eval.h5 read for its query/gallery features).

    Attributes:
        artifact: the file as read (provenance, attributes, every dataset).
        splits: split -> {column: (n,) or (n, d) array}, every FEATURE_COLUMNS column present,
            equal lengths, finite features.
    """

    artifact: Artifact
    splits: dict[str, dict[str, np.ndarray]]

    @property
    def path(self) -> Path:
        return self.artifact.path

    @property
    def provenance(self) -> Provenance:
        return self.artifact.provenance

    @property
    def mode(self) -> str:
        return str(self.artifact.attrs.get("mode", ""))

    def __getitem__(self, split: str) -> dict[str, np.ndarray]:
        return self.splits[split]


def split_columns(data: Mapping[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    """The `<split>/<column>` datasets of an artifact as {column: array}."""
    prefix = f"{split}/"
    return {key[len(prefix):]: data[key] for key in data if key.startswith(prefix)}


def _extract_hint(split: str) -> str:
    if split == "train":
        return "extract them with `auxreid extract RUN --round R`"
    return ("extract them with `auxreid extract --split query,gallery --mode infer` or evaluate with the model "
            "instead")


def check_split_columns(columns: Mapping[str, np.ndarray], split: str, source: str) -> None:
    """Refuse a split's feature columns that are missing, of unequal length, empty or not finite.

    Args:
        columns: {column: array} of one split (see `split_columns`).
        split: the split's name, for the message.
        source: the file (or model) the columns come from, for the message.

    Raises:
        AuxReidError: naming the file, the split and the column.
    """
    missing = [c for c in FEATURE_COLUMNS if c not in columns]
    if missing:
        raise AuxReidError(f"{source} has no '{split}' features ({split}/{', '.join(missing)} missing); "
                           + _extract_hint(split))
    features = columns["features"]
    if features.ndim != 2 or len(features) == 0:
        raise AuxReidError(f"{source}: {split}/features must be (n_tracklets, d) with n > 0, got {features.shape}")
    for name in FEATURE_COLUMNS[1:]:
        if columns[name].shape != (len(features),):
            raise AuxReidError(
                f"{source}: {split}/{name} has shape {columns[name].shape} but {split}/features has "
                f"{len(features)} rows; the file is inconsistent, re-create it"
            )
    if not np.isfinite(features).all():
        raise AuxReidError(f"{source}: {split}/features holds NaN or infinite values; re-run `auxreid extract` "
                           "(with a sound model)")


def read_features(
    path: str | Path,
    *,
    fingerprint: str | None = None,
    round: int | None = None,
    split: str | Sequence[str] = "train",
    mode: str | None = "cluster",
    accept_eval: bool = False,
    progress: Progress | None = None,
) -> Features:
    """Read a features.h5 and validate the splits asked for.

    Args:
        path: the file.
        fingerprint: expected dataset split fingerprint, or None to skip the check.
        round: expected round, or None to skip the check.
        split: the split(s) needed; each must have every FEATURE_COLUMNS column.
        mode: the extract mode needed ('cluster' or 'infer'), or None for any.
        accept_eval: also accept an eval.h5 (it stores the query/gallery features it evaluated).
        progress: when given, receives a warning if the file is stale.

    Raises:
        AuxReidError: wrong schema, fingerprint, round or mode; missing or malformed columns.
    """
    path = Path(path)
    schema = FEATURES
    if accept_eval:
        found_schema = read_provenance(path)[0].schema
        if found_schema not in ("features", "eval"):
            raise AuxReidError(
                f"{path} is a '{found_schema}' artifact; --features needs a features.h5 or "
                "eval.h5 with query/ and gallery/ groups"
            )
        schema = EVAL if found_schema == "eval" else FEATURES
    artifact = read_artifact(path, schema, fingerprint=fingerprint, round=round)
    check_number_attrs(artifact, FEATURES_ATTRS)
    found = str(artifact.attrs.get("mode", "cluster"))
    if mode is not None and found != mode:
        hint = "`auxreid extract RUN --round R`" if mode == "cluster" else "`auxreid extract --mode infer`"
        raise AuxReidError(f"{path} holds '{found}'-mode features, but {mode}-mode features are needed here "
                           f"(written by {hint})")
    splits = [split] if isinstance(split, str) else list(split)
    columns = {name: split_columns(artifact.data, name) for name in splits}
    for name in splits:
        check_split_columns(columns[name], name, str(path))
    if progress is not None:
        warn_if_stale(path, progress)
    return Features(artifact=artifact, splits=columns)


# --- clusters, aux, eval, model -------------------------------------------------------------------------


#: Numeric root attributes of each schema that readers (and report, inspect) use: name -> (integer?, minimum).
#: Every one present must be a finite number of that kind, at least the minimum.
FEATURES_ATTRS = {"seconds": (False, 0), "bad_frames_skipped": (True, 0), "model_round": (True, 0)}
CLUSTER_ATTRS = {"num_clusters": (True, 0), "eps": (False, 0), "noise_ratio": (False, 0), "seconds": (False, 0),
                 "cannot_link_pairs": (True, 0), "cannot_link_violations": (True, 0), "cannot_link_enforced": (True, 0),
                 "rlsce_k": (True, 1)}
EVAL_ATTRS = {"seconds": (False, 0), "num_valid_queries": (True, 0), "num_skipped_queries": (True, 0)}


def check_number_attrs(source: Artifact | tuple[Path, Mapping[str, Any]], spec: Mapping[str, tuple[bool, float]]) -> None:
    """Refuse a numeric root attribute that is not a finite number of its kind (or below its minimum).

    Args:
        source: an Artifact, or (path, attributes) as `read_provenance` returns them.
        spec: name -> (integer?, minimum), e.g. CLUSTER_ATTRS.

    Raises:
        AuxReidError: naming the file, the attribute and its value.
    """
    path, attrs = (source.path, source.attrs) if isinstance(source, Artifact) else source
    for key, (integer, minimum) in spec.items():
        if key not in attrs:
            continue
        value = attrs[key]
        kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        if (isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds) or not np.isfinite(value)
                or value < minimum):
            need = "an integer" if integer else "a finite number"
            shown = value.item() if isinstance(value, np.generic) else value
            raise AuxReidError(f"{path}: attribute '{key}' is {shown!r}, expected {need} >= {minimum}; the file is "
                               "damaged, re-create it")


def read_clusters(
    path: str | Path,
    *,
    fingerprint: str | None = None,
    round: int | None = None,
    progress: Progress | None = None,
) -> Artifact:
    """Read a clusters.h5 and check that labels, centroids and the RLSCE map agree.

    A clustering without clusters is valid here (`require_clusters` refuses it where training needs
    clusters).

    Raises:
        AuxReidError: wrong schema, fingerprint or round; labels, centroids or neighbour map that do
            not fit one another.
    """
    path = Path(path)
    artifact = read_artifact(path, CLUSTERS, fingerprint=fingerprint, round=round)
    check_number_attrs(artifact, CLUSTER_ATTRS)
    labels, centroids, nearest = artifact["labels"], artifact["centroids"], artifact["nearest_clusters"]
    count = int(artifact.attrs.get("num_clusters", len(centroids)))
    if labels.ndim != 1 or centroids.ndim != 2 or centroids.shape[0] != count:
        raise AuxReidError(f"{path}: labels {labels.shape} / centroids {centroids.shape} do not fit {count} clusters; "
                           "re-run `auxreid cluster`")
    if labels.size and (labels.max() >= count or labels.min() < -1):
        raise AuxReidError(f"{path}: labels must lie in -1..{count - 1}; re-run `auxreid cluster`")
    if not np.isfinite(centroids).all():
        raise AuxReidError(f"{path}: centroids hold NaN or infinite values; re-run `auxreid extract` and `cluster`")
    if nearest.ndim != 2 or nearest.shape[0] != count or (
        nearest.size and not 0 <= nearest.min() <= nearest.max() < count
    ):
        raise AuxReidError(f"{path}: nearest_clusters {nearest.shape} is not a ({count}, K) map of cluster indices; "
                           "re-run `auxreid cluster`")
    if progress is not None:
        warn_if_stale(path, progress)
    return artifact


def read_eval(
    path: str | Path,
    *,
    fingerprint: str | None = None,
    round: int | None = None,
    progress: Progress | None = None,
) -> Artifact:
    """Read an eval.h5: the eval schema's datasets, and query/gallery feature columns that fit."""
    path = Path(path)
    artifact = read_artifact(path, EVAL, fingerprint=fingerprint, round=round)
    check_number_attrs(artifact, EVAL_ATTRS)
    for split in ("query", "gallery"):
        check_split_columns(split_columns(artifact.data, split), split, str(path))
    if progress is not None:
        warn_if_stale(path, progress)
    return artifact


def read_model(path: str | Path, *, mmap: bool = False, progress: Progress | None = None) -> "ModelFile":
    """Read a model.pt with `stages.artifacts.model_file.read_model_file`, warning when it is stale."""
    # deferred: model_file imports torch; `auxreid status` and `auxreid report` import this module without needing it
    from stages.artifacts.model_file import read_model_file

    model = read_model_file(path, mmap=mmap)
    if progress is not None:
        warn_if_stale(path, progress)
    return model


# --- the config an artifact was made with ---------------------------------------------------------------


def stored_config_yaml(source: str | Path | Artifact) -> str:
    """The config YAML an HDF5 artifact or a model.pt carries ('' when it has none)."""
    if isinstance(source, Artifact):
        return source.provenance.config_yaml
    path = Path(source)
    if _is_hdf5(path):
        return read_provenance(path)[0].config_yaml
    # deferred: model_file imports torch, needed for a model.pt only; `auxreid status` and `auxreid report` import
    # this module without needing it
    from stages.artifacts.model_file import read_model_file

    return str(read_model_file(path, mmap=True).entries["config_yaml"])


def config_from_artifact(
    source: str | Path | Artifact,
    *,
    overrides: list[str] | None = None,
    hint: str = "pass --config CONFIG.yaml",
) -> Config:
    """The full config an artifact (HDF5) or model.pt was made with, `--set` overrides on top.

    Args:
        source: a path (HDF5 artifact or model.pt) or an already read Artifact.
        overrides: `--set key=value` assignments.
        hint: what to do when the source carries no config (the error's second half).

    Raises:
        AuxReidError: the source carries no config ("<path> carries no config; <hint>").
    """
    where = source.path if isinstance(source, Artifact) else Path(source)
    text = stored_config_yaml(source)
    if not text:
        raise AuxReidError(f"{where} carries no config; {hint}")
    return config_from_yaml(text, str(where), parse_set(overrides))


# --- stale parents ---------------------------------------------------------------------------------------


class ParentRecord(NamedTuple):
    """A parent an artifact records: its SHA-256 then, and where it was."""

    sha256: str
    path: Path


class StaleParent(NamedTuple):
    """A parent whose file no longer matches the hash its child recorded.

    Attributes:
        name: the parent's role ("features", "aux", "model", ...).
        recorded_sha: the SHA-256 recorded in the child.
        path: where the parent is expected.
        current_sha: the file's SHA-256 now, or None when it no longer exists.
    """

    name: str
    recorded_sha: str
    path: Path
    current_sha: str | None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """file_sha256, remembered per (path, size, mtime) so that a status of many rounds hashes each file once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(path)
    return _SHA_CACHE[key]


def _is_hdf5(path: Path) -> bool:
    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def recorded_parents(path: str | Path) -> dict[str, ParentRecord]:
    """The parents an artifact (HDF5) or model.pt records, role -> (SHA-256, location).

    Raises:
        AuxReidError: the file cannot be read, or records a parent without its SHA-256 or location.
    """
    path = Path(path)
    if _is_hdf5(path):
        provenance, _ = read_provenance(path)
        return {role: ParentRecord(sha, provenance.parent_path(role, path)) for role, sha in provenance.parents.items()}
    # deferred: model_file imports torch, needed for a model.pt only; `auxreid status` and `auxreid report` import
    # this module without needing it
    from stages.artifacts.model_file import read_model_file

    model = read_model_file(path, mmap=True)
    return {role: ParentRecord(sha, model.parent_paths[role]) for role, sha in model.parents.items()}


def stale_parents(path: str | Path) -> list[StaleParent]:
    """The parents of `path` (an HDF5 artifact or a model.pt) whose file changed or disappeared since it was made.

    Returns:
        The stale parents in the order the file lists them (HDF5: by role name); empty when all match.
    """
    stale: list[StaleParent] = []
    for role, record in recorded_parents(path).items():
        if not record.path.is_file():
            stale.append(StaleParent(role, record.sha256, record.path, None))
            continue
        current = _cached_sha256(record.path)
        if current != record.sha256:
            stale.append(StaleParent(role, record.sha256, record.path, current))
    return stale


def describe_stale(stale: Sequence[StaleParent]) -> str:
    """'features round_001/features.h5 changed; aux ../aux.h5 is gone' style text for tables and warnings."""
    return "; ".join(f"{s.name} {s.path} {'changed' if s.current_sha is not None else 'is gone'}" for s in stale)


def warn_if_stale(path: str | Path, progress: Progress) -> None:
    """Warn through `progress` when an input is stale, naming the parents and the stage that rewrites it."""
    stale = stale_parents(path)
    if not stale:
        return
    schema = read_provenance(path)[0].schema if _is_hdf5(Path(path)) else MODEL
    try:
        writer = writer_of(schema)
    except KeyError:
        writer = "the stage that wrote it"
    progress.warn(f"{path} is stale: it was made from inputs that have changed since ({describe_stale(stale)}); "
                  f"re-run `auxreid {writer}` for it to bring it up to date (`auxreid status RUN` lists every stale file)")


def clusters_train_rows(artifact: Artifact, *, train_tracklets: int, dataset: str) -> np.ndarray:
    """The dataset train tracklet of each clusters.h5 row, refused unless every train tracklet is there once.

    `cluster` labels the rows of features.h5's train group, which `extract` writes for the whole train
    split; the split fingerprint alone does not show that the rows are those, so a file cut short, or
    with rows pointing at the wrong tracklets, would train on some tracklets only or fail mid-way.
    Without `tracklet_index` the rows are the tracklets in order.

    Args:
        artifact: a clusters.h5 read by `read_clusters`.
        train_tracklets: the dataset's train tracklets (len(dataset.train)).
        dataset: the dataset's name, for the message.

    Returns:
        (n,) int64 train tracklet index per row.

    Raises:
        AuxReidError: naming the file, what is wrong, and the commands that re-make it.
    """
    labels = artifact["labels"]
    index = (np.asarray(artifact["tracklet_index"], dtype=np.int64) if "tracklet_index" in artifact
             else np.arange(len(labels), dtype=np.int64))
    n = train_tracklets
    problem = None
    if index.shape != labels.shape:
        problem = f"labels has {len(labels)} rows but tracklet_index {index.shape[0] if index.ndim else 0}"
    elif index.size and (index.min() < 0 or index.max() >= n):
        bad = int(index.min()) if index.min() < 0 else int(index.max())
        problem = f"tracklet_index holds {bad}, outside 0..{n - 1}"
    elif index.size != n or np.unique(index).size != n:
        distinct = int(np.unique(index).size)
        problem = f"{index.size} rows naming {distinct} distinct tracklet{'' if distinct == 1 else 's'}"
    if problem is not None:
        raise AuxReidError(
            f"{artifact.path} does not label each of the {n} train tracklets of dataset '{dataset}' exactly once "
            f"({problem}); re-run `auxreid extract` and `auxreid cluster` for this round"
        )
    return index

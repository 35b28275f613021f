"""One reader per artifact schema (features, clusters, aux, eval, model), each validating once.

Every stage reads its inputs through these functions, so a check (a features group's columns, a
clusters file's label range) is written once. Given a progress sink, a reader also warns when the
file is stale: a parent it was made from has changed or gone since (its recorded SHA-256 no longer
matches the file on disk), or it was made with other settings than its run's config.yaml holds now
(the sections that decide what it holds, `settings_of`). `config_from_artifact` is the one way to get
the config an artifact or model was made with; `provenance_of` reads any artifact's provenance, a
model.pt's from its record without torch (`stages.artifacts.sidecar`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import h5py
import numpy as np
import yaml

from stages.artifacts.h5 import Artifact, Provenance, read_artifact, read_provenance
from stages.artifacts.schemas import (
    CLUSTERS,
    EVAL,
    FEATURE_COLUMNS,
    FEATURES,
    IGNORED_SETTINGS,
    MODEL,
    MODEL_FORMAT,
    MODEL_VERSION,
    settings_of,
    writer_of,
)
from stages.artifacts.sidecar import current_sha256, read_record
from stages.config import Config, build_config, config_from_yaml, config_hash, config_to_dict, parse_set, read_yaml
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


#: Rows checked for NaN at once (a mask of every value would be N x d bytes: 2 GB at a million 2,048-d features).
FINITE_CHECK_ROWS = 1 << 16


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
    if not all(np.isfinite(features[start:start + FINITE_CHECK_ROWS]).all()
               for start in range(0, len(features), FINITE_CHECK_ROWS)):
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
    return provenance_of(source).config_yaml


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


# --- provenance of any artifact, model.pt included ---------------------------------------------------------


def _is_hdf5(path: Path) -> bool:
    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def _model_provenance_of_entries(entries: Mapping[str, Any]) -> Provenance:
    """model.pt's entries (or its record's) as a Provenance of schema MODEL."""
    parents = entries["parents"]
    return Provenance(
        schema=MODEL, schema_version=int(entries["version"]), dataset=str(entries["dataset"]),
        fingerprint=str(entries["fingerprint"]), round=int(entries["round"]), config_yaml=str(entries["config_yaml"]),
        config_hash=str(entries["config_hash"]), package_version=str(entries.get("package_version", "")),
        created=str(entries.get("created", "")),
        parents={role: str(record["sha256"]) for role, record in parents.items()},
        parent_paths={role: str(record["path"]) for role, record in parents.items()},
    )


def _provenance_of_record(entries: Mapping[str, Any]) -> Provenance | None:
    """A record's provenance (`stages.artifacts.sidecar`): a model.pt's entries of this auxreid's format and
    version, or an HDF5 artifact's attributes; None for anything else."""
    try:
        if "format" in entries:
            if entries["format"] != MODEL_FORMAT or entries["version"] != MODEL_VERSION:
                return None
            return _model_provenance_of_entries(entries)
        # by role name, as HDF5 lists the attributes
        parents = {str(role): str(sha) for role, sha in sorted(entries["parents"].items())}
        parent_paths = {str(role): str(where) for role, where in entries["parent_paths"].items()}
        if set(parents) != set(parent_paths):
            return None
        return Provenance(
            schema=str(entries["schema"]), schema_version=int(entries["schema_version"]),
            dataset=str(entries["dataset"]), fingerprint=str(entries["fingerprint"]), round=int(entries["round"]),
            config_yaml=str(entries["config_yaml"]), config_hash=str(entries["config_hash"]),
            package_version=str(entries["package_version"]), created=str(entries["created"]), parents=parents,
            parent_paths=parent_paths,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # not a record auxreid wrote: the file itself is read


def recorded_provenance(path: str | Path) -> Provenance | None:
    """An HDF5 artifact's or a model.pt's (schema MODEL) provenance from its record, without opening the file;
    None unless the record still fits the file (size and mtime as written: `stages.artifacts.sidecar`'s contract).

    `status` reads every file this way; the stages read an HDF5 file itself (`read_provenance`), as they read its
    data too.
    """
    record = read_record(path)
    return _provenance_of_record(record.provenance) if record is not None and record.provenance else None


def model_provenance(path: str | Path) -> Provenance:
    """A model.pt's provenance (schema MODEL, version, round, created, config, parents).

    From the file's record while it still fits the file (size and mtime as written): no torch import, no
    load. Otherwise the file is read and validated (`read_model_file`, memory-mapped).

    Raises:
        AuxReidError: the file is no readable auxreid model.
    """
    path = Path(path)
    found = recorded_provenance(path)
    if found is not None and found.schema == MODEL:
        return found
    # deferred: model_file imports torch, needed only for a model.pt without a fitting record; `auxreid status`
    # and `auxreid report` import this module without needing it
    from stages.artifacts.model_file import read_model_file

    return _model_provenance_of_entries(read_model_file(path, mmap=True).entries)


def provenance_of(path: str | Path) -> Provenance:
    """The provenance of an HDF5 artifact (read from the file: `read_provenance`) or of a model.pt (schema MODEL:
    `model_provenance`, from its record while that fits the file, so no torch).

    Raises:
        AuxReidError: the file is neither a readable artifact nor a readable model.
    """
    path = Path(path)
    found = recorded_provenance(path)
    if found is not None and found.schema == MODEL:
        return found
    if _is_hdf5(path):
        return read_provenance(path)[0]
    return model_provenance(path)


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


def recorded_parents(path: str | Path, provenance: Provenance | None = None) -> dict[str, ParentRecord]:
    """The parents an artifact (HDF5) or model.pt records, role -> (SHA-256, location).

    Args:
        path: the artifact.
        provenance: its provenance when already read (`provenance_of`), else it is read here.

    Raises:
        AuxReidError: the file cannot be read, or records a parent without its SHA-256 or location.
    """
    path = Path(path)
    provenance = provenance if provenance is not None else provenance_of(path)
    return {role: ParentRecord(sha, provenance.parent_path(role, path)) for role, sha in provenance.parents.items()}


def stale_parents(path: str | Path, provenance: Provenance | None = None) -> list[StaleParent]:
    """The parents of `path` (an HDF5 artifact or a model.pt) whose file changed or disappeared since it was made.

    A parent's SHA-256 now is its record's while the record fits the file (`current_sha256`: size and mtime
    as written, make's contract), else the file is hashed (once per process).

    Args:
        path: the artifact.
        provenance: its provenance when already read (`provenance_of`), else it is read here.

    Returns:
        The stale parents in the order the file lists them (HDF5: by role name); empty when all match.
    """
    stale: list[StaleParent] = []
    for role, record in recorded_parents(path, provenance).items():
        if not record.path.is_file():
            stale.append(StaleParent(role, record.sha256, record.path, None))
            continue
        current = current_sha256(record.path)
        if current != record.sha256:
            stale.append(StaleParent(role, record.sha256, record.path, current))
    return stale


def describe_stale(stale: Sequence[StaleParent]) -> str:
    """'features round_001/features.h5 changed; aux ../aux.h5 is gone' style text for tables and warnings."""
    return "; ".join(f"{s.name} {s.path} {'changed' if s.current_sha is not None else 'is gone'}" for s in stale)


# --- settings: the config an artifact was made with against the run's config.yaml -------------------------


class SettingChange(NamedTuple):
    """A setting that decides what an artifact holds, made with one value and now another in config.yaml.

    Attributes:
        key: the dotted key ("cluster.min_samples").
        made: the value the artifact was made with.
        now: the value in the run's config.yaml.
    """

    key: str
    made: Any
    now: Any


@dataclass(frozen=True)
class RunSettings:
    """A run's config.yaml, as the settings check needs it.

    Attributes:
        path: the file.
        config_hash: the hash of the resolved config (an artifact recording the same hash has every setting equal).
        values: dotted key -> value of every key, in the config's order.
    """

    path: Path
    config_hash: str
    values: dict[str, Any]


#: The run settings read in this process, by (resolved path, size, mtime_ns); the stored configs parsed, by text.
_RUN_SETTINGS: dict[tuple[str, int, int], RunSettings | None] = {}
_MADE_WITH: dict[str, dict[str, Any] | None] = {}
_ROUND_DIR = re.compile(r"round_\d{3,}")


def flat_settings(config: Config) -> dict[str, Any]:
    """Every setting of a config by dotted key ("cluster.min_samples"), in the config's order."""
    return _flatten(config_to_dict(config))


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_config_yaml(path: Path) -> Any:
    """config.yaml's mapping, parsed by libyaml when present (`status` reads it on every call; the pure Python
    parser takes tens of ms); anything that parser refuses goes to `read_yaml` for its one-line error."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.load(path.read_bytes().decode("utf-8-sig"), Loader=loader) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            pass
    return read_yaml(path)


def run_settings(config_path: str | Path) -> RunSettings | None:
    """The settings of a run's config.yaml, or None when it cannot be read as a config (then nothing is compared:
    every stage refuses such a config.yaml itself, naming what is wrong)."""
    path = Path(config_path)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _RUN_SETTINGS:
        try:
            config = build_config((_read_config_yaml(path), str(path)))
        except AuxReidError:
            _RUN_SETTINGS[key] = None
        else:
            _RUN_SETTINGS[key] = RunSettings(path, config_hash(config), _flatten(config_to_dict(config)))
    return _RUN_SETTINGS[key]


def run_config_of(path: str | Path) -> Path | None:
    """The config.yaml of the run an artifact belongs to: RUN/config.yaml for RUN/round_NNN/* and RUN/aux.h5;
    None for a file outside a run (given with --features, --out, ...) or a run without config.yaml."""
    path = Path(path)
    if _ROUND_DIR.fullmatch(path.parent.name):
        run = path.parent.parent
    elif path.name == "aux.h5":
        run = path.parent
    else:
        return None
    config = run / "config.yaml"
    return config if config.is_file() else None


def _made_with(config_yaml: str) -> dict[str, Any] | None:
    """The dotted keys of a stored config as written (no defaults filled in, so a key an older auxreid did not
    have is absent rather than taken as changed); None when the text is no mapping."""
    if config_yaml not in _MADE_WITH:
        try:
            tree = yaml.load(config_yaml, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            tree = None
        _MADE_WITH[config_yaml] = _flatten(tree) if isinstance(tree, Mapping) else None
    return _MADE_WITH[config_yaml]


def setting_decides(key: str, settings: tuple[str, ...]) -> bool:
    """Whether `key` is one of `settings` (sections or keys) and changes a result (not in IGNORED_SETTINGS)."""
    return key not in IGNORED_SETTINGS and any(key == s or key.startswith(f"{s}.") for s in settings)


def changed_settings(provenance: Provenance, run: RunSettings | None) -> list[SettingChange]:
    """The settings an artifact was made with that differ from the run's config.yaml, in the config's order.

    Only the settings that decide what the artifact holds are compared (`settings_of` its schema: clusters.h5
    the cluster section, model.pt the train section, ...), leaving out those that never change a result
    (`IGNORED_SETTINGS`: devices, batch sizes for extraction, log intervals, train.rounds, ...). A key the
    artifact's config lacks (written by an older auxreid) is not compared. Like parents, only the artifact's
    own settings count: features made with other extract settings make their clusters stale once re-made.

    Args:
        provenance: the artifact's (`provenance_of`).
        run: the run's settings (`run_settings`); None compares nothing.
    """
    if run is None or not provenance.config_yaml or provenance.config_hash == run.config_hash:
        return []
    try:
        settings = settings_of(provenance.schema)
    except KeyError:
        return []
    made = _made_with(provenance.config_yaml)
    if made is None:
        return []
    return [SettingChange(key, made[key], now) for key, now in run.values.items()
            if setting_decides(key, settings) and key in made and made[key] != now]


def setting_text(value: Any) -> str:
    """A value as config.yaml spells it: true/false, null, numbers and words as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if value != "" else '""'


def describe_settings(changes: Sequence[SettingChange], *, shown: int = 3) -> str:
    """'cluster.min_samples 2 here, 4 in config.yaml' for each of the first `shown` changes, then 'and N more'."""
    text = "; ".join(f"{c.key} {setting_text(c.made)} here, {setting_text(c.now)} in config.yaml"
                     for c in changes[:shown])
    return text + (f" and {len(changes) - shown} more" if len(changes) > shown else "")


# --- the warning --------------------------------------------------------------------------------------------


def warn_if_stale(path: str | Path, progress: Progress) -> None:
    """Warn through `progress` when an input is stale, naming the parents that changed and the settings that
    differ from its run's config.yaml (`run_config_of`), and the stage that rewrites it."""
    provenance = provenance_of(path)
    stale = stale_parents(path, provenance)
    config_path = run_config_of(path)
    changes = changed_settings(provenance, run_settings(config_path)) if config_path is not None else []
    if not stale and not changes:
        return
    try:
        writer = writer_of(provenance.schema)
    except KeyError:
        writer = "the stage that wrote it"
    reasons = [f"it was made from inputs that have changed since ({describe_stale(stale)})"] if stale else []
    if changes:
        reasons.append(f"it was made with other settings than {config_path} ({describe_settings(changes)})")
    progress.warn(f"{path} is stale: {' and '.join(reasons)}; re-run `auxreid {writer}` for it to bring it up to "
                  "date (`auxreid status RUN` lists every stale file)")


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

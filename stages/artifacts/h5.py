"""HDF5 artifact I/O shared by every stage: provenance attributes, atomic writes, validated reads.

Every artifact is one HDF5 file whose root attributes carry its provenance: schema
name and version, dataset name and split fingerprint, round, the config that made it (YAML and hash),
package version, creation time and the SHA-256 and location of each parent artifact (the location
relative to the artifact's own folder, so a moved run keeps its links). Writes go to a temporary file
in the same folder, are fsynced and renamed into place, so a killed stage never leaves a half file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from stages import __version__
from stages.errors import AuxReidError


@dataclass(frozen=True)
class Schema:
    """Name, version and required datasets of one artifact kind (documented in the README)."""

    name: str
    version: int
    required: tuple[str, ...]


@dataclass
class Provenance:
    """Where an artifact came from; written as root attributes."""

    schema: str
    schema_version: int
    dataset: str
    fingerprint: str
    round: int
    config_yaml: str = ""
    config_hash: str = ""
    package_version: str = __version__
    created: str = ""
    parents: dict[str, str] = field(default_factory=dict)
    #: role -> parent file: absolute when made by `make_provenance`, relative to the artifact's folder
    #: once read back; files written before locations were recorded have none.
    parent_paths: dict[str, str] = field(default_factory=dict)

    def parent_path(self, role: str, artifact: str | Path) -> Path | None:
        """Where the `role` parent of the file at `artifact` was when it was made, or None if not recorded."""
        where = self.parent_paths.get(role)
        return None if not where else Path(os.path.normpath(Path(artifact).parent / where))


@dataclass
class Artifact:
    """A read artifact: provenance, all datasets as numpy arrays, extra root attributes."""

    path: Path
    provenance: Provenance
    data: dict[str, np.ndarray]
    attrs: dict[str, Any]

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.data[key]
        except KeyError:
            raise AuxReidError(
                f"{self.path} has no dataset '{key}' (it has: {', '.join(sorted(self.data)) or 'none'}); "
                f"re-create it with the stage that writes '{self.provenance.schema}' artifacts"
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self.data


_PROVENANCE_KEYS = (
    "schema",
    "schema_version",
    "dataset",
    "fingerprint",
    "round",
    "config_yaml",
    "config_hash",
    "package_version",
    "created",
)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, recorded in children so a stale parent is detectable."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync and rename it into place.

    On any exception (or a kill before the rename) the temporary file is removed or left under a
    dotted name that no reader picks up, and the previous file at `path` stays intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_artifact(
    path: str | Path,
    provenance: Provenance,
    data: Mapping[str, np.ndarray],
    *,
    attrs: Mapping[str, Any] | None = None,
    compression: str | None = None,
) -> Path:
    """Write `data` (names may contain '/' for groups) with provenance, atomically.

    Returns:
        The final path.
    """
    path = Path(path)
    if not provenance.created:
        provenance.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for key in _PROVENANCE_KEYS:
                handle.attrs[key] = getattr(provenance, key)
            for name, sha in provenance.parents.items():
                handle.attrs[f"parent:{name}"] = sha
            for name, where in provenance.parent_paths.items():
                handle.attrs[f"parent_path:{name}"] = _relative_to(Path(where), path.parent)
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value
            for name, array in data.items():
                array = np.asarray(array)
                if array.dtype.kind == "U":
                    array = array.astype(h5py.string_dtype())
                use = compression if array.ndim and array.size > 1024 and array.dtype.kind in "fiub" else None
                handle.create_dataset(name, data=array, compression=use)
    return path


def _relative_to(target: Path, folder: Path) -> str:
    """An absolute `target` relative to `folder`, '/'-separated; a relative one is already relative to it."""
    if not target.is_absolute():
        return target.as_posix()
    return Path(os.path.relpath(target, folder.resolve())).as_posix()


def _collect(group: h5py.Group, prefix: str, out: dict[str, np.ndarray]) -> None:
    for name, item in group.items():
        key = f"{prefix}{name}"
        if isinstance(item, h5py.Group):
            _collect(item, key + "/", out)
        else:
            value = item[()]
            if item.dtype.kind == "O" or h5py.check_string_dtype(item.dtype) is not None:
                value = item.asstr()[()]
                value = np.asarray(value, dtype=str)
            out[key] = value


def read_provenance(path: str | Path) -> tuple[Provenance, dict[str, Any]]:
    """Read only the root attributes (cheap; no datasets are loaded)."""
    path = Path(path)
    if not path.is_file():
        raise AuxReidError(f"artifact {path} does not exist; run the stage that writes it first")
    try:
        with h5py.File(path, "r") as handle:
            raw = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}
    except OSError as exc:
        raise AuxReidError(f"{path} is not a readable HDF5 file ({exc}); re-create it") from None
    missing = [k for k in ("schema", "schema_version", "dataset", "fingerprint", "round") if k not in raw]
    if missing:
        raise AuxReidError(
            f"{path} lacks the provenance attribute(s) {', '.join(missing)}; "
            "it was not written by auxreid (see the README's artifact schemas)"
        )
    parents = {k.split(":", 1)[1]: str(v) for k, v in raw.items() if k.startswith("parent:")}
    parent_paths = {k.split(":", 1)[1]: str(v) for k, v in raw.items() if k.startswith("parent_path:")}
    provenance = Provenance(
        schema=str(raw["schema"]),
        schema_version=int(raw["schema_version"]),
        dataset=str(raw["dataset"]),
        fingerprint=str(raw["fingerprint"]),
        round=int(raw["round"]),
        config_yaml=str(raw.get("config_yaml", "")),
        config_hash=str(raw.get("config_hash", "")),
        package_version=str(raw.get("package_version", "")),
        created=str(raw.get("created", "")),
        parents=parents,
        parent_paths=parent_paths,
    )
    extra = {k: v for k, v in raw.items()
             if k not in _PROVENANCE_KEYS and not k.startswith(("parent:", "parent_path:"))}
    return provenance, extra


def read_artifact(
    path: str | Path,
    schema: Schema | None = None,
    *,
    fingerprint: str | None = None,
    round: int | None = None,
) -> Artifact:
    """Read an artifact and refuse it when schema, fingerprint or round do not fit.

    Args:
        path: the HDF5 file.
        schema: expected schema (name, version and required datasets), or None for any.
        fingerprint: expected dataset split fingerprint, or None to skip the check.
        round: expected round, or None to skip the check.

    Raises:
        AuxReidError: naming the file, what was found and what was expected.
    """
    path = Path(path)
    provenance, extra = read_provenance(path)
    if schema is not None:
        if provenance.schema != schema.name:
            raise AuxReidError(
                f"{path} is a '{provenance.schema}' artifact but a '{schema.name}' artifact is needed here"
            )
        if provenance.schema_version != schema.version:
            raise AuxReidError(
                f"{path} has {schema.name} schema version {provenance.schema_version}, this auxreid reads "
                f"version {schema.version}; re-create it with this version"
            )
    if fingerprint is not None and provenance.fingerprint != fingerprint:
        raise AuxReidError(
            f"{path} was made from dataset '{provenance.dataset}' with split fingerprint "
            f"{provenance.fingerprint}, but the current dataset's fingerprint is {fingerprint}; "
            "it belongs to another dataset or split, re-create it"
        )
    if round is not None and provenance.round != round:
        raise AuxReidError(f"{path} is from round {provenance.round}, but round {round} is needed here")
    data: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        _collect(handle, "", data)
    if schema is not None:
        missing = [name for name in schema.required if name not in data]
        if missing:
            raise AuxReidError(
                f"{path} lacks the dataset(s) {', '.join(missing)} required by the '{schema.name}' schema "
                "(see the README's artifact schemas)"
            )
    return Artifact(path=path, provenance=provenance, data=data, attrs=extra)


def make_provenance(
    schema: Schema,
    *,
    dataset: str,
    fingerprint: str,
    round: int,
    config: Any = None,
    parents: Mapping[str, str | Path] | None = None,
) -> Provenance:
    """Provenance for a new artifact; `parents` maps a role name to the parent file (hashed and located here)."""
    from stages.config import config_hash, config_to_yaml

    return Provenance(
        schema=schema.name,
        schema_version=schema.version,
        dataset=dataset,
        fingerprint=fingerprint,
        round=round,
        config_yaml=config_to_yaml(config) if config is not None else "",
        config_hash=config_hash(config) if config is not None else "",
        parents={name: file_sha256(p) for name, p in (parents or {}).items()},
        parent_paths={name: str(Path(p).resolve()) for name, p in (parents or {}).items()},
    )

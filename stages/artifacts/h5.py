"""HDF5 artifact I/O shared by every stage: provenance attributes, atomic writes, validated reads.

Every artifact is one HDF5 file whose root attributes carry its provenance: schema
name and version, dataset name and split fingerprint, round, the config that made it (YAML and hash),
package version, creation time and the SHA-256 and location of each parent artifact (the location
relative to the artifact's own folder, so a moved run keeps its links). Writes go to a temporary file
in the same folder, are fsynced and renamed into place, so a killed stage never leaves a half file; each
carries the record of its own SHA-256, size and mtime and of its provenance (`stages.artifacts.sidecar`),
so no later check hashes it again, and `status` opens none, while it stays as written.
"""

from __future__ import annotations

import collections.abc
import errno
import fnmatch
import hashlib
import io
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import h5py
import numpy as np

from stages import __version__
from stages.artifacts.sidecar import current_sha256, sha256_of_file, write_record
from stages.config import config_hash, config_to_yaml, require_file
from stages.errors import AuxReidError


@dataclass(frozen=True)
class Column:
    """What one dataset of a schema must look like, checked from its header before any value is read.

    Its documentation sits beside the check, so the schema tables of docs/artifacts.md are generated
    from what readers enforce (`stages.artifacts.schema_doc`).

    Attributes:
        kinds: allowed numpy dtype kinds ("f" float, "i"/"u" integer, "T" text).
        ndim: number of dimensions.
        finite: every value must be finite (checked once read).
        shape: the shape and dtype writers use, for people ("(N, D) float32").
        meaning: what the values are, for people.
    """

    kinds: str
    ndim: int
    finite: bool = False
    shape: str = ""
    meaning: str = ""

    def describe(self) -> str:
        names = {"f": "float", "i": "integer", "u": "integer", "T": "text"}
        kinds = " or ".join(dict.fromkeys(names[k] for k in self.kinds))
        return f"{kinds} with {self.ndim} dimension{'s' if self.ndim != 1 else ''}"


@dataclass(frozen=True)
class Schema:
    """Name, version, required datasets and dataset layouts of one artifact kind (documented in docs/artifacts.md).

    `columns` maps a dataset name pattern (fnmatch, e.g. "*/features") to its Column; the first
    matching pattern applies and datasets matching none are read as they are. `writer` is the command
    that (re)creates the artifact, named in errors. `settings` are the config sections ("cluster") and
    keys ("data.height") that decide what the artifact holds: one that differs between the config it
    records and the run's config.yaml makes it stale (`stages.artifacts.readers.changed_settings`).
    """

    name: str
    version: int
    required: tuple[str, ...]
    columns: tuple[tuple[str, Column], ...] = ()
    writer: str = ""
    settings: tuple[str, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((column for pattern, column in self.columns if fnmatch.fnmatchcase(name, pattern)), None)


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
    #: role -> parent file, one for each of `parents`: absolute when made by `make_provenance`, relative
    #: to the artifact's folder once read back.
    parent_paths: dict[str, str] = field(default_factory=dict)

    def parent_path(self, role: str, artifact: str | Path) -> Path | None:
        """Where the `role` parent of the file at `artifact` was when it was made, or None if it has no such parent."""
        where = self.parent_paths.get(role)
        return None if where is None else Path(os.path.normpath(Path(artifact).parent / where))


@dataclass
class Artifact:
    """A read artifact: provenance, its datasets as numpy arrays by name, extra root attributes.

    `data` read from a file is a `LazyDatasets`: each dataset is read (and checked) the first time it
    is looked up, so a stage reads only what it uses.
    """

    path: Path
    provenance: Provenance
    data: Mapping[str, np.ndarray]
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


@dataclass(frozen=True)
class RowBlocks:
    """A dataset given to `write_artifact` as consecutive row blocks, for a column too big to hold twice in memory.

    `write_artifact` builds the file in memory; a plain array there is held twice (the array and its copy in
    the file image). A RowBlocks dataset is created at its full shape and filled block by block, so only the
    image and one block are held (a 1M x 2048 float32 column: 8 GB, not 16).

    Attributes:
        shape: the dataset's full shape, rows first.
        dtype: its dtype.
        blocks: called once by the writer; yields arrays of shape (rows, *shape[1:]) that cover shape[0] rows
            exactly, in order.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    blocks: Callable[[], Iterator[np.ndarray]]


def _write_row_blocks(handle: h5py.File, name: str, column: RowBlocks) -> None:
    """Create `name` at the full shape and copy the blocks into consecutive rows; refuse a wrong row count."""
    dataset = handle.create_dataset(name, shape=column.shape, dtype=column.dtype)
    row = 0
    for block in column.blocks():
        if row + len(block) > column.shape[0]:
            raise ValueError(f"the blocks of {name} hold more than its {column.shape[0]} rows")
        dataset[row:row + len(block)] = block
        row += len(block)
    if row != column.shape[0]:
        raise ValueError(f"the blocks of {name} hold {row} rows, its shape {column.shape} needs {column.shape[0]}")


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
    """SHA-256 of a file's bytes, always read and hashed (`current_sha256` takes the file's record when it fits)."""
    return sha256_of_file(path)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync and rename it into place.

    On any exception (or a kill before the rename) the temporary file is removed or left under a
    dotted name that no reader picks up (the next claim on `path` removes it, see
    `stages.artifacts.lock`), and the previous file at `path` stays intact. The file gets the mode
    the umask allows (0666 & ~umask), like any file the user creates, not mkstemp's private 0600.

    Raises:
        AuxReidError: the write failed (disk full, file size limit, read-only, no permission...),
            naming `path` and the system's reason.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        tmp = Path(tmp_name)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def _umask() -> int:
    """The process umask (read by setting it and putting it back: there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _errno_of(exc: OSError) -> int | None:
    """The errno of an OSError; h5py reports it only inside its message ('errno = 28, error message = ...')."""
    if exc.errno is not None:
        return exc.errno
    found = re.search(r"errno = (\d+)", str(exc))
    return int(found.group(1)) if found else None


def os_error_text(exc: OSError) -> str:
    """The system's reason for an OSError in a few words: 'No space left on device', 'Permission denied'."""
    code = _errno_of(exc)
    if code:
        return os.strerror(code)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


#: What to do about a failed write, by errno.
_WRITE_ADVICE = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some space within your disk quota",
    errno.EFBIG: "raise the file size limit (ulimit -f)",
    errno.EROFS: "write to a writable file system",
    errno.EACCES: "make the folder writable for you",
    errno.EPERM: "make the folder writable for you",
    errno.EISDIR: "give the path of a file, not a folder",
}


def write_error(path: str | Path, exc: OSError) -> AuxReidError:
    """The one-line error of a failed write of `path`: the system's reason and what to do."""
    advice = _WRITE_ADVICE.get(_errno_of(exc), "check the disk and the folder")
    return AuxReidError(f"cannot write {path}: {os_error_text(exc)}; {advice} and run again "
                        "(the previous file, if any, is intact)")


def write_artifact(
    path: str | Path,
    provenance: Provenance,
    data: Mapping[str, np.ndarray | RowBlocks],
    *,
    attrs: Mapping[str, Any] | None = None,
    compression: str | None = None,
) -> Path:
    """Write `data` (names may contain '/' for groups; a value may be `RowBlocks`) with provenance, atomically.

    The file is built in memory and written with plain file I/O: a failed write (disk full, file size
    limit) is then the system's error naming the file, where HDF5 itself would fail at close with an
    error that leaves its library state broken.

    Returns:
        The final path.

    Raises:
        ValueError: `provenance` lacks the location of a parent (readers refuse such a file).
        AuxReidError: the write failed (see `atomic_path`).
    """
    path = Path(path)
    unlocated = sorted(set(provenance.parents).symmetric_difference(provenance.parent_paths))
    if unlocated:
        raise ValueError(f"provenance parents need both a SHA-256 and a location: {unlocated}; use make_provenance")
    if not provenance.created:
        provenance.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    image = io.BytesIO()
    with h5py.File(image, "w") as handle:
        for key in _PROVENANCE_KEYS:
            handle.attrs[key] = getattr(provenance, key)
        for name, sha in provenance.parents.items():
            handle.attrs[f"parent:{name}"] = sha
        for name, where in provenance.parent_paths.items():
            handle.attrs[f"parent_path:{name}"] = _relative_to(Path(where), path.parent)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
        for name, array in data.items():
            if isinstance(array, RowBlocks):
                _write_row_blocks(handle, name, array)
                continue
            array = np.asarray(array)
            if array.dtype.kind == "U":
                array = array.astype(h5py.string_dtype())
            use = compression if array.ndim and array.size > 1024 and array.dtype.kind in "fiub" else None
            handle.create_dataset(name, data=array, compression=use)
    record = {**{key: int(value) if key in ("schema_version", "round") else str(value)
                 for key, value in ((key, getattr(provenance, key)) for key in _PROVENANCE_KEYS)},
              "parents": {str(role): str(sha) for role, sha in provenance.parents.items()},
              "parent_paths": {str(role): _relative_to(Path(where), path.parent)
                               for role, where in provenance.parent_paths.items()}}
    buffer = image.getbuffer()
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer)
        # before the rename, so the file and its record appear together
        write_record(tmp, hashlib.sha256(buffer).hexdigest(), provenance=record)
    return path


def _relative_to(target: Path, folder: Path) -> str:
    """An absolute `target` relative to `folder`, '/'-separated; a relative one is already relative to it."""
    if not target.is_absolute():
        return target.as_posix()
    return Path(os.path.relpath(target, folder.resolve())).as_posix()


#: Part of the machine's memory one dataset may take when read; a header declaring more is refused unread.
_MEMORY_SHARE = 0.5


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 40


def _bytes_text(size: int) -> str:
    unit = next((u for u in ("PiB", "TiB", "GiB", "MiB") if size >= 2 ** (10 * ("KMGTP".index(u[0]) + 1))), "KiB")
    return f"{size / 2 ** (10 * ('KMGTP'.index(unit[0]) + 1)):.3g} {unit}"


def _is_text(dtype: np.dtype) -> bool:
    return dtype.kind in "OSU" or h5py.check_string_dtype(dtype) is not None


def _collect(group: h5py.Group, prefix: str, out: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Every dataset's name, shape and dtype, from the headers only (no value is read)."""
    for name, item in group.items():
        key = f"{prefix}{name}"
        if isinstance(item, h5py.Group):
            _collect(item, key + "/", out)
        elif isinstance(item, h5py.Dataset):
            out[key] = (tuple(item.shape or ()), item.dtype)


class LazyDatasets(collections.abc.Mapping):
    """An artifact's datasets, each read on first lookup after its header was checked against the schema.

    The header check (dtype kind, number of dimensions, a size that fits in memory) comes before any
    value is read, so a damaged or hostile file cannot make a reader allocate what it declares; values
    that must be finite are checked once read. Every failure is an AuxReidError naming file and dataset.
    """

    def __init__(self, path: Path, headers: dict[str, tuple[tuple[int, ...], np.dtype]], schema: Schema | None):
        self._path, self._headers, self._schema = path, headers, schema
        self._values: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._headers:
            raise KeyError(key)
        if key not in self._values:
            self._values[key] = self._read(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of a dataset, without reading it."""
        return self._headers[key]

    def _redo(self) -> str:
        writer = self._schema.writer if self._schema is not None else ""
        return f"re-create it with `auxreid {writer}`" if writer else "re-create it"

    def _read(self, key: str) -> np.ndarray:
        shape, dtype = self._headers[key]
        column = self._schema.column(key) if self._schema is not None else None
        text = _is_text(dtype)
        if column is not None:
            kind_ok = ("T" in column.kinds) if text else (dtype.kind in column.kinds)
            if not kind_ok or len(shape) != column.ndim:
                raise AuxReidError(
                    f"{self._path}: dataset '{key}' is {'text' if text else dtype} of shape {shape}, but the "
                    f"'{self._schema.name}' schema needs {column.describe()}; the file is damaged or not written by "
                    f"auxreid, {self._redo()}"
                )
        size = int(np.prod(shape, dtype=object)) * (dtype.itemsize or 1)
        if size > _MEMORY_SHARE * _memory_bytes():
            raise AuxReidError(
                f"{self._path}: dataset '{key}' declares shape {shape} ({_bytes_text(size)}), more than this "
                f"machine can hold; the file is damaged, {self._redo()}"
            )
        try:
            with h5py.File(self._path, "r") as handle:
                item = handle[key]
                value = np.asarray(item.asstr()[()], dtype=str) if text else item[()]
        except (OSError, ValueError, RuntimeError, KeyError, UnicodeDecodeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AuxReidError(f"{self._path}: dataset '{key}' cannot be read ({reason}); the file is damaged, "
                               f"{self._redo()}") from None
        if column is not None and column.finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise AuxReidError(f"{self._path}: {key} holds NaN or infinite values; the file is damaged, {self._redo()}")
        return value


def _attr_text(value: Any, path: Path, key: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise AuxReidError(f"{path}: attribute '{key}' is not UTF-8 text; the file is damaged, re-create it") from None
    return str(value)


def _attr_int(value: Any, path: Path, key: str) -> int:
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    raise AuxReidError(f"{path}: provenance attribute '{key}' is {value!r}, expected an integer; the file is damaged "
                       "or not written by auxreid, re-create it")


def read_provenance(path: str | Path) -> tuple[Provenance, dict[str, Any]]:
    """Read only the root attributes (cheap; no datasets are loaded).

    Each parent must carry both its SHA-256 and its location, as every writer records them: a parent
    without a location could not be checked for staleness.
    """
    path = require_file(path, "artifact", missing="run the stage that writes it first",
                        folder="give the .h5 file inside it")
    try:
        with h5py.File(path, "r") as handle:
            raw = {k: (_attr_text(v, path, k) if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuxReidError(f"{path} is not a readable HDF5 file ({reason}); re-create it") from None
    missing = [k for k in ("schema", "schema_version", "dataset", "fingerprint", "round") if k not in raw]
    if missing:
        raise AuxReidError(
            f"{path} lacks the provenance attribute(s) {', '.join(missing)}; "
            "it was not written by auxreid (see the artifact schemas in docs/artifacts.md)"
        )
    parents = {k.split(":", 1)[1]: str(v) for k, v in raw.items() if k.startswith("parent:")}
    parent_paths = {k.split(":", 1)[1]: str(v) for k, v in raw.items() if k.startswith("parent_path:")}
    unpaired = [f"parent_path:{role}" for role in parents if role not in parent_paths]
    unpaired += [f"parent:{role}" for role in parent_paths if role not in parents]
    if unpaired:
        raise AuxReidError(f"{path} lacks the provenance attribute(s) {', '.join(sorted(unpaired))}; re-create it")
    provenance = Provenance(
        schema=str(raw["schema"]),
        schema_version=_attr_int(raw["schema_version"], path, "schema_version"),
        dataset=str(raw["dataset"]),
        fingerprint=str(raw["fingerprint"]),
        round=_attr_int(raw["round"], path, "round"),
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
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with h5py.File(path, "r") as handle:
            _collect(handle, "", headers)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuxReidError(f"{path}: its dataset list cannot be read ({reason}); the file is damaged, re-create it") from None
    data = LazyDatasets(path, headers, schema)
    if schema is not None:
        missing = [name for name in schema.required if name not in data]
        if missing:
            raise AuxReidError(
                f"{path} lacks the dataset(s) {', '.join(missing)} required by the '{schema.name}' schema "
                "(see the artifact schemas in docs/artifacts.md)"
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
    """Provenance for a new artifact; `parents` maps a role name to the parent file (located here, and hashed
    unless its record still fits it: `current_sha256`, the hash status compares it with later)."""
    return Provenance(
        schema=schema.name,
        schema_version=schema.version,
        dataset=dataset,
        fingerprint=fingerprint,
        round=round,
        config_yaml=config_to_yaml(config) if config is not None else "",
        config_hash=config_hash(config) if config is not None else "",
        parents={name: current_sha256(p) for name, p in (parents or {}).items()},
        parent_paths={name: str(Path(p).resolve()) for name, p in (parents or {}).items()},
    )

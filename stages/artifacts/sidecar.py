"""The record a file carries of its own bytes (SHA-256, size, mtime), taken once, when auxreid writes it.

Why: a child records each parent's SHA-256, and `auxreid status` and every stale-input warning compare it
with the parent as it is now. Hashing every parent on every call costs seconds on a 50-round run of Duke
size (tens of MB of features a round, hundreds of MB a model.pt). The writer holds the bytes it writes, so it
records their SHA-256 with the file's size and mtime_ns; a check trusts the record while the file's size
and mtime_ns still equal the recorded ones, and hashes the file only when they do not.

The contract is make's: size and mtime. A file changed behind auxreid's back that keeps both (same size,
mtime set back with `touch -d` or `os.utime`) is taken as unchanged: its record is believed. Any ordinary
edit or copy changes the mtime, and a file put in place by a rename brings its own record, or none.

Where: the extended attribute `user.auxreid.record` of the file itself (zlib-compressed JSON), not a file
beside it. It is set on the temporary file before `atomic_path` renames it into place, so a file and its
record appear together; it follows the file through hard links and `cp -a` and goes with it; a plain `cp`
drops it (the copy is then hashed). No extra file means a run folder, an export and every listing hold
what they held before. Where the file system keeps no user extended attributes (some network mounts,
Python without `os.setxattr`), nothing is recorded and every check hashes: slower, equally correct.

The record also carries the file's provenance (round, created, dataset, fingerprint, config, parents): an
HDF5 artifact's root attributes, a model.pt's provenance entries, so `status` opens no file while its
record fits, and never a model.pt with torch.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The extended attribute holding the record.
RECORD_ATTR = "user.auxreid.record"
#: Errors that mean "this file system keeps no such record (or not one this big)": recording is skipped.
_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG, errno.ENOSPC, errno.ERANGE, errno.EPERM, errno.EACCES}


@dataclass(frozen=True)
class FileRecord:
    """What a file's record says about its bytes when it was written.

    Attributes:
        sha256: the SHA-256 of the bytes written.
        size: the file's size then.
        mtime_ns: the file's modification time then (nanoseconds).
        provenance: the file's provenance as its writer recorded it (HDF5: the provenance attributes, parents
            and their locations; model.pt: MODEL_RECORD_KEYS' entries), None when none was recorded.
    """

    sha256: str
    size: int
    mtime_ns: int
    provenance: dict[str, Any] | None = None


def sha256_of_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_record(path: str | Path, sha256: str, *, provenance: Mapping[str, Any] | None = None) -> bool:
    """Record `sha256` (the hash of the bytes just written to `path`) with the file's size and mtime_ns.

    Called by a writer on its temporary file after the last byte and before the rename. A file system that
    keeps no record (or none this big, for a model's provenance) is no error: the record is a shortcut, and
    a file without one is hashed when checked.

    Returns:
        Whether the record was written (with the provenance when one was given; one too big with it, or with
        an entry JSON cannot hold, is written without it).
    """
    setxattr = getattr(os, "setxattr", None)
    if setxattr is None:
        return False
    stat = os.stat(path)
    record: dict[str, Any] = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tries = [{**record, "provenance": dict(provenance)}, record] if provenance is not None else [record]
    for value in tries:
        try:
            encoded = zlib.compress(json.dumps(value, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            continue  # a provenance entry JSON cannot hold: the record goes without it
        try:
            setxattr(path, RECORD_ATTR, encoded)
            return True
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
    return False


def read_record(path: str | Path, stat: os.stat_result | None = None) -> FileRecord | None:
    """The record of `path` when it still describes the file: same size and mtime_ns as recorded.

    None when the file has no record (never recorded, copied without it, no extended attributes), a
    record auxreid cannot read, or one the file no longer fits (it was changed since).
    """
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        stat = stat or os.stat(path)
        raw = json.loads(zlib.decompress(getxattr(path, RECORD_ATTR)))
        record = FileRecord(str(raw["sha256"]), int(raw["size"]), int(raw["mtime_ns"]), raw.get("provenance"))
    except (OSError, ValueError, TypeError, KeyError, zlib.error):
        return None
    if (record.size, record.mtime_ns) != (stat.st_size, stat.st_mtime_ns) or len(record.sha256) != 64:
        return None
    if record.provenance is not None and not isinstance(record.provenance, dict):
        return None
    return record


#: (resolved path, size, mtime_ns) -> SHA-256 of the files this process hashed, so a file without a record is
#: hashed once per process however many children name it.
_HASHED: dict[tuple[str, int, int], str] = {}


def current_sha256(path: str | Path) -> str:
    """The SHA-256 of `path` as it is now: its record's when the record still fits the file, else hashed.

    Raises:
        OSError: the file cannot be read.
    """
    stat = os.stat(path)
    record = read_record(path, stat)
    if record is not None:
        return record.sha256
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_of_file(path)
    return _HASHED[key]

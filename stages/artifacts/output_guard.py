"""The one rule every command's outputs obey, checked before any work: an output never lands on the wrong file.

An output path
1. never is one of the command's own inputs (`train-round --out` equal to `--model` would turn the previous
   round's model into this round's);
2. never replaces a file of another kind: an artifact of another schema, a model.pt where a figure goes, or a
   file auxreid did not write;
3. replaces a file of its own kind only where that is the command's job (a run's own files, in RUN mode) or
   `--force` says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import h5py

from stages.errors import AuxReidError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"

#: How each kind is named in messages.
KIND_NAMES = {"features": "features.h5 artifact", "clusters": "clusters.h5 artifact", "aux": "aux.h5 artifact",
              "eval": "eval.h5 artifact", "model": "model.pt", "png": "PNG figure", "json": "JSON file",
              "metrics": "metrics.jsonl log", "markdown": "report.md", "folder": "folder"}


def file_kind(path: Path) -> str | None:
    """The kind of auxreid file at `path` (a key of KIND_NAMES), or None for a file auxreid did not write."""
    if path.is_dir():
        return "folder"
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if head.startswith(_HDF5_SIGNATURE):
        return _hdf5_schema(path)
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(_ZIP_SIGNATURE):
        return _torch_kind(path)
    if path.suffix == ".json":
        return "json" if _json_object(path) else None
    if path.suffix == ".jsonl":
        return "metrics" if _metrics_log(path) else None
    if path.suffix == ".md":
        return "markdown" if _markdown(path) else None
    return None


def _hdf5_schema(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as handle:
            schema = handle.attrs.get("schema")
    except (OSError, ValueError, RuntimeError):
        return None
    schema = schema.decode() if isinstance(schema, bytes) else schema
    return str(schema) if schema in ("features", "clusters", "aux", "eval") else None


def _torch_kind(path: Path) -> str | None:
    # deferred: reading a model.pt imports torch, needed only when the output path already holds a zip file
    from stages.artifacts.model_file import read_model_file

    try:
        read_model_file(path, mmap=True)
    except AuxReidError:
        return None
    return "model"


def _json_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def _metrics_log(path: Path) -> bool:
    """metrics.jsonl: empty, or a first line that is a JSON record with a `kind` (what train-round appends)."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, ValueError):
        return False
    if not first.strip():
        return path.stat().st_size == len(first.encode())
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "kind" in record


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _markdown(path: Path) -> bool:
    """report.md: UTF-8 text opening with a heading."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().startswith("# ")
    except (OSError, ValueError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def guard_output(path: Path, kind: str, *, option: str, inputs: Mapping[str, Path | None], replace: bool) -> None:
    """Refuse, before any work, an output that would land on the wrong file (the module's three rules).

    Args:
        path: the file (or, for kind "folder", the folder) to write.
        kind: what the command writes there (a key of KIND_NAMES).
        option: how the path was given ("--out"), named in messages.
        inputs: option or role -> input file of the same command.
        replace: an existing file of the same kind may be replaced (RUN mode's own files, or --force).

    Raises:
        AuxReidError: one line naming the path, what is there, and what to do.
    """
    path = Path(path)
    for role, source in inputs.items():
        if source is not None and (_same_file(path, Path(source)) or path.resolve() == Path(source).resolve()):
            raise AuxReidError(f"{option} {path} is also this command's {role} input; an output never replaces an "
                               "input: write it elsewhere")
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and kind != "folder":
        raise AuxReidError(f"cannot write {path}: it is a directory; give the path of a file to write")
    found = file_kind(path)
    wanted = KIND_NAMES[kind]
    if found is None:
        raise AuxReidError(f"{option} {path} exists and is not a file auxreid wrote; it is left alone: choose another "
                           f"path for the {wanted}")
    if found != kind:
        raise AuxReidError(f"{option} {path} is {_a(KIND_NAMES[found])}, not {_a(wanted)}; it is left alone: choose "
                           "another path")
    if not replace and kind != "folder":
        raise AuxReidError(f"{option} {path} already exists ({_a(wanted)}); pass --force to replace it, or choose "
                           "another path")

"""model.pt, the file: the checkpoint of a round (student, teacher, training state) with provenance.

The file format alone (entries, weights-only loading, validation), with no network code:
`stages.model.checkpoint.build_network` turns a ModelFile into a ReidModel.

model.pt is a plain dict of tensors, numbers and strings read with `torch.load(..., weights_only=True)`
(never pickled objects), so a file from anyone can be opened safely:

- `format` "auxreid-model", `version` 2, `arch`, `round`, `step` (EMA steps over all rounds),
  `num_classes` (classifier rows), `student`, `teacher` (state dicts);
- provenance like the HDF5 artifacts: `dataset`, `fingerprint` (of the dataset's splits),
  `config_yaml`, `config_hash`, `parents` (role -> {"sha256", "path" relative to the model's folder}
  of the files it was made from, so a changed parent is detectable),
  `package_version`, `created`;
- optional training state that `train-round` adds: `optimizer`, `grad_scaler`, `iteration`,
  `iterations`, `num_clusters`, and anything under other names (e.g. `imported_from`).

`save_model` also records the file's SHA-256 and its provenance entries (MODEL_RECORD_KEYS) in the file's
record (`stages.artifacts.sidecar`), so `auxreid status` and the stale checks read them without torch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stages import __version__
from stages.artifacts.h5 import atomic_path
from stages.artifacts.schemas import MODEL_FORMAT, MODEL_VERSION  # kept there, without torch, for records
from stages.artifacts.sidecar import current_sha256, sha256_of_file, write_record
from stages.artifacts.weights_file import load_weights_only
from stages.config import Config, config_from_yaml, config_hash, config_to_yaml
from stages.errors import AuxReidError

#: Entries every model.pt holds; others may add more (an optimizer state, the import source).
_REQUIRED_KEYS = ("format", "version", "arch", "round", "config_yaml", "num_classes", "student", "teacher", "step")
#: Provenance entries every model.pt holds too, so a stale parent or a foreign dataset is always detectable.
_PROVENANCE_KEYS = ("dataset", "fingerprint", "config_hash", "parents", "package_version", "created")
#: The entries a model.pt's record repeats (`save_model`): what `status` and the stale checks read.
MODEL_RECORD_KEYS = ("format", "version", "arch", "round", "step", "config_yaml", *_PROVENANCE_KEYS)


def _cpu_state(module_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def save_model(
    path: str | Path,
    *,
    student: nn.Module | Mapping[str, torch.Tensor],
    teacher: nn.Module | Mapping[str, torch.Tensor],
    config: Config,
    round: int,
    step: int,
    dataset: str = "",
    fingerprint: str = "",
    parents: Mapping[str, str | Path] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write model.pt atomically (tensors on CPU).

    Args:
        path: the model.pt to write; the previous file stays intact until the rename.
        student, teacher: networks or state dicts.
        config: the fully resolved config that made it (stored as YAML with its hash).
        round: the round this model finishes (0 for the initial model).
        step: EMA steps taken over all rounds so far.
        dataset, fingerprint: the dataset the model was trained on ('' when unknown, e.g. imported).
        parents: role -> parent file; each is hashed (or its record taken, `current_sha256`) so later readers
            can tell a stale parent.
        extra: additional entries (optimizer state, ...); they may not replace the standard keys.

    Returns:
        The final path.
    """
    teacher_state = _cpu_state(teacher)
    payload: dict[str, Any] = dict(extra or {})
    clash = [k for k in payload if k in _REQUIRED_KEYS or k in _PROVENANCE_KEYS]
    if clash:
        raise ValueError(f"extra entries may not replace model.pt keys: {clash}")
    payload.update(
        format=MODEL_FORMAT,
        version=MODEL_VERSION,
        arch=config.model.arch,
        round=int(round),
        config_yaml=config_to_yaml(config),
        config_hash=config_hash(config),
        num_classes=int(teacher_state["classifier.weight"].shape[0]) if "classifier.weight" in teacher_state else 0,
        student=_cpu_state(student),
        teacher=teacher_state,
        step=int(step),
        dataset=str(dataset),
        fingerprint=str(fingerprint),
        parents={name: {"sha256": current_sha256(p),
                        "path": os.path.relpath(Path(p).resolve(), Path(path).resolve().parent)}
                 for name, p in (parents or {}).items()},
        package_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    save_torch(payload, path, record={key: payload[key] for key in MODEL_RECORD_KEYS})
    return Path(path)


class _WriteRecorder:
    """A file for torch.save that keeps the OSError of a failed write (torch reports only 'unexpected pos') and
    hashes the bytes as they pass, so the file's record costs no second read of a model of hundreds of MB."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.error: OSError | None = None
        self.digest = hashlib.sha256()
        self.written = 0

    def write(self, data) -> int:
        try:
            count = self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise
        view = memoryview(data).cast("B")[:count]
        self.digest.update(view)
        self.written += len(view)
        return count

    def flush(self) -> None:
        self.handle.flush()


def save_torch(payload: Mapping[str, Any], path: str | Path, *, record: Mapping[str, Any] | None = None) -> Path:
    """torch.save `payload` to `path` atomically; a failed write is the system's error (disk full, ...), not torch's.

    Args:
        payload: what to save.
        path: the file; the previous one stays intact until the rename.
        record: when given, the file's record (`stages.artifacts.sidecar`) is written with these provenance
            entries, before the rename.

    Raises:
        AuxReidError: the write failed, naming `path` and the system's reason.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            recorder = _WriteRecorder(handle)
            try:
                torch.save(payload, recorder)
            except RuntimeError:
                if recorder.error is None:
                    raise
                raise recorder.error from None
        if record is not None:
            # torch writes its archive front to back (it refuses any other position), so the bytes hashed on the
            # way are the file's; a size that disagrees all the same is hashed from the file
            size = os.stat(tmp).st_size
            sha = recorder.digest.hexdigest() if size == recorder.written else sha256_of_file(tmp)
            write_record(tmp, sha, provenance=record)
    return Path(path)


@dataclass(frozen=True)
class ModelFile:
    """A validated model.pt: its entries plus the config that made it."""

    path: Path
    entries: dict[str, Any]
    config: Config

    @property
    def round(self) -> int:
        return int(self.entries["round"])

    @property
    def step(self) -> int:
        return int(self.entries["step"])

    @property
    def num_classes(self) -> int:
        return int(self.entries["num_classes"])

    @property
    def dataset(self) -> str:
        return str(self.entries["dataset"])

    @property
    def fingerprint(self) -> str:
        return str(self.entries["fingerprint"])

    @property
    def parents(self) -> dict[str, str]:
        """Role -> SHA-256 of each parent."""
        return {role: record["sha256"] for role, record in self.entries["parents"].items()}

    @property
    def parent_paths(self) -> dict[str, Path]:
        """Role -> where each parent was when the model was made (stored relative to the model's folder)."""
        return {role: self.path.parent / record["path"] for role, record in self.entries["parents"].items()}


def read_model_file(path: str | Path, *, mmap: bool = False) -> ModelFile:
    """Load and validate model.pt (weights_only=True); the one way every stage reads a model.

    `mmap` maps the tensors instead of reading them (cheap when only round, step or provenance are needed).

    Raises:
        AuxReidError: missing file, not weights-only, not an auxreid model, unknown version.
    """
    path = Path(path)
    entries = load_weights_only(path, mmap=mmap)
    if not isinstance(entries, Mapping) or entries.get("format") != MODEL_FORMAT:
        raise AuxReidError(
            f"{path} is not an auxreid model file; convert a reference checkpoint with `auxreid import-weights`"
        )
    if entries.get("version") != MODEL_VERSION:
        raise AuxReidError(
            f"{path} is model format version {entries.get('version')}, this auxreid reads version {MODEL_VERSION}; "
            "re-create it with this version"
        )
    missing = [k for k in (*_REQUIRED_KEYS, *_PROVENANCE_KEYS) if k not in entries]
    if missing:
        raise AuxReidError(f"{path} lacks the model.pt entries {', '.join(missing)}; re-create it")
    _check_entries(entries, path)
    return ModelFile(path=path, entries=dict(entries), config=config_from_yaml(entries["config_yaml"], str(path)))


def _check_entries(entries: Mapping[str, Any], path: Path) -> None:
    """Refuse entries of the wrong kind before anyone uses them: counts, text, and the two state dicts."""
    for key in ("round", "step", "num_classes", *(k for k in ("iteration", "iterations") if k in entries)):
        value = entries[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AuxReidError(f"{path}: model.pt entry '{key}' is {value!r}, expected an integer >= 0; "
                               "the file is damaged or not written by auxreid, re-create it")
    for key in ("arch", "config_yaml", "dataset", "fingerprint"):
        if not isinstance(entries[key], str):
            raise AuxReidError(f"{path}: model.pt entry '{key}' is a {type(entries[key]).__name__}, expected text; "
                               "the file is damaged or not written by auxreid, re-create it")
    losses = entries.get("mean_losses", {})
    if not isinstance(losses, Mapping) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses.values()
    ):
        raise AuxReidError(f"{path}: model.pt entry 'mean_losses' is {losses!r:.60}, expected a mapping of loss name -> "
                           "number; the file is damaged, re-create it")
    if not isinstance(entries.get("optimizer", {}), Mapping):
        raise AuxReidError(f"{path}: model.pt entry 'optimizer' is a {type(entries['optimizer']).__name__}, expected "
                           "an optimizer state dict; the file is damaged, re-create it")
    if not isinstance(entries["parents"], Mapping):
        raise AuxReidError(f"{path}: model.pt entry 'parents' is a {type(entries['parents']).__name__}, expected a "
                           "mapping of role -> parent; the file is damaged, re-create it")
    for role, record in entries["parents"].items():
        if not (isinstance(role, str) and isinstance(record, Mapping)
                and all(isinstance(record.get(key), str) for key in ("sha256", "path"))):
            raise AuxReidError(f"{path}: model.pt entry 'parents' maps {role!r} to {record!r:.60}, expected "
                               "{'sha256': ..., 'path': ...}; re-create it")
    for which in ("student", "teacher"):
        state = entries[which]
        if not isinstance(state, Mapping):
            raise AuxReidError(f"{path}: model.pt entry '{which}' is a {type(state).__name__}, expected a state dict "
                               "(parameter name -> tensor); the file is damaged or not written by auxreid, re-create it")
        bad = next((key for key, value in state.items() if not isinstance(key, str) or not torch.is_tensor(value)), None)
        if bad is not None:
            raise AuxReidError(f"{path}: model.pt entry '{which}' maps {bad!r} to a "
                               f"{type(state[bad]).__name__}, expected tensors; the file is damaged, re-create it")

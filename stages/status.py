"""status: every artifact of a run, round by round: exists, round, schema, created, stale parents.

An artifact is stale when a parent it records (by SHA-256) has changed or disappeared since it was
made, e.g. round 1's clusters after `auxreid extract RUN --round 1` was run again; each parent is
looked for where the file records it was. Only direct parents are compared: what was made from a stale
file is not marked itself, but is outdated too once the stale file is re-made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from stages.artifacts.h5 import read_provenance
from stages.artifacts.readers import StaleParent, recorded_parents, stale_parents
from stages.errors import AuxReidError
from stages.rundir import RunDir, writer_of_kind


@dataclass(frozen=True)
class StatusRow:
    """One expected artifact of a run.

    Attributes:
        name: its path relative to the run folder ("round_001/clusters.h5").
        path: its path.
        kind: "config", "aux", "features", "clusters", "model" or "eval".
        group: "run" (config, aux) or the round folder ("round_001").
        exists: whether the file is there.
        round: the round it records (None: not recorded, or the file is missing).
        schema: "<schema> v<version>" ("" when missing).
        created: creation time it records (else the file's modification time), UTC, "" when missing.
        stale: the parents that changed or disappeared since it was made.
        checked: whether it records any parent to compare.
        problem: why the file could not be read or does not fit its place ("" when fine).
        rerun: the command that re-makes it.
    """

    name: str
    path: Path
    kind: str
    group: str
    exists: bool
    round: int | None = None
    schema: str = ""
    created: str = ""
    stale: list[StaleParent] = field(default_factory=list)
    checked: bool = False
    problem: str = ""
    rerun: str = ""


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


def _rerun(run: RunDir, kind: str, round: int | None) -> str:
    if kind == "config" or (kind == "model" and round == 0):
        return f"auxreid init {run.name} --config CONFIG.yaml --force"
    if kind == "aux":
        return f"auxreid mine-aux {run.name}"
    return f"auxreid {writer_of_kind(kind)} {run.name} --round {round}"


def _read_row(run: RunDir, kind: str, path: Path, group: str, folder_round: int | None) -> StatusRow:
    name = Path(os.path.relpath(path, run.path)).as_posix()
    base = {"name": name, "path": path, "kind": kind, "group": group, "rerun": _rerun(run, kind, folder_round)}
    if not path.is_file():
        return StatusRow(exists=False, **base)
    if kind == "config":
        return StatusRow(exists=True, schema="config", created=_mtime(path), **base)
    try:
        if kind == "model":
            # deferred: model_file imports torch, needed only for a run that has a model.pt
            from stages.artifacts.model_file import read_model_file

            entries = read_model_file(path, mmap=True).entries
            round, schema = int(entries["round"]), f"model v{entries['version']}"
            created = str(entries.get("created", "")) or _mtime(path)
        else:
            provenance, _ = read_provenance(path)
            round, schema = provenance.round, f"{provenance.schema} v{provenance.schema_version}"
            created = provenance.created or _mtime(path)
            if provenance.schema != kind:
                return StatusRow(exists=True, round=round, schema=schema, created=created,
                                 problem=f"a '{provenance.schema}' artifact where a '{kind}' one belongs", **base)
        stale = stale_parents(path)
        checked = bool(recorded_parents(path))
    except AuxReidError as exc:
        return StatusRow(exists=True, problem=f"unreadable: {exc}", **base)
    problem = ""
    if folder_round is not None and round != folder_round:
        problem = f"records round {round} but lies in {group}/"
    return StatusRow(exists=True, round=round, schema=schema, created=created, stale=stale, checked=checked,
                     problem=problem, **base)


def run_status(run: RunDir) -> list[StatusRow]:
    """The status of every artifact of `run`: config.yaml and aux.h5, then each round folder's files.

    Raises:
        AuxReidError: the run folder does not exist.
    """
    if not run.path.is_dir():
        raise AuxReidError(
            f"run directory {run.path} does not exist; create it with `auxreid init {run.path.name} "
            "--config configs/synth.yaml`"
        )
    rows = [_read_row(run, "config", run.config_path, "run", None), _read_row(run, "aux", run.aux, "run", None)]
    for round in run.rounds():
        folder = run.round_dir(round).name
        rows += [_read_row(run, kind, path, folder, round) for kind, path in run.round_artifacts(round).items()]
    return rows

"""status: every artifact of a run, round by round: exists, round, schema, created, stale parents and settings.

An artifact is stale when a parent it records (by SHA-256) has changed or disappeared since it was
made, e.g. round 1's clusters after `auxreid extract RUN --round 1` was run again (each parent is
looked for where the file records it was), or when it was made with other settings than the run's
config.yaml holds now, in the sections that decide what it holds (`settings_of`: clusters.h5 the
cluster section, ...), e.g. clusters made with `--set cluster.min_samples=2`. Only direct parents and
the file's own settings are compared: what was made from a stale file is not marked itself, but is
outdated too once the stale file is re-made.

It must answer in under a second on a 50-round run: while a file's record (written with it,
`stages.artifacts.sidecar`) still fits it, its provenance comes from the record and, as a parent, its
SHA-256 too: no file is opened or hashed, and no model.pt is loaded with torch. A file without a fitting
record is read (and, as a parent, hashed) as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from stages.artifacts.h5 import read_provenance
from stages.artifacts.readers import (
    RunSettings,
    SettingChange,
    StaleParent,
    changed_settings,
    model_provenance,
    recorded_provenance,
    run_settings,
    setting_text,
    stale_parents,
)
from stages.errors import AuxReidError
from stages.rundir import RunDir, writer_of_kind
from stages.variants import variants_of


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
        settings: the settings it was made with that differ from the run's config.yaml (`changed_settings`).
        checked: whether it records any parent to compare.
        problem: why the file could not be read or does not fit its place ("" when fine).
        rerun: the command that re-makes it.
        variant: the variant's name for a file under `variants/<name>/` (`stages.variants`); its `settings` are
            then what it was made to differ in, not staleness.
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
    settings: list[SettingChange] = field(default_factory=list)
    checked: bool = False
    problem: str = ""
    rerun: str = ""
    variant: str | None = None


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


def _rerun(run: RunDir, kind: str, round: int | None) -> str:
    if kind == "config" or (kind == "model" and round == 0):
        return f"auxreid init {run.name} --config CONFIG.yaml --force"
    if kind == "aux":
        return f"auxreid mine-aux {run.name}"
    return f"auxreid {writer_of_kind(kind)} {run.name} --round {round}"


def _read_row(run: RunDir, kind: str, path: Path, group: str, folder_round: int | None,
              settings: RunSettings | None) -> StatusRow:
    name = Path(os.path.relpath(path, run.path)).as_posix()
    base = {"name": name, "path": path, "kind": kind, "group": group, "rerun": _rerun(run, kind, folder_round)}
    if not path.is_file():
        return StatusRow(exists=False, **base)
    if kind == "config":
        return StatusRow(exists=True, schema="config", created=_mtime(path), **base)
    try:
        provenance = recorded_provenance(path) or (model_provenance(path) if kind == "model"
                                                   else read_provenance(path)[0])
        round, schema = provenance.round, f"{provenance.schema} v{provenance.schema_version}"
        created = provenance.created or _mtime(path)
        if provenance.schema != kind:
            return StatusRow(exists=True, round=round, schema=schema, created=created,
                             problem=f"a '{provenance.schema}' artifact where a '{kind}' one belongs", **base)
        stale = stale_parents(path, provenance)
    except AuxReidError as exc:
        return StatusRow(exists=True, problem=f"unreadable: {exc}", **base)
    problem = ""
    if folder_round is not None and round != folder_round:
        problem = f"records round {round} but lies in {group}/"
    return StatusRow(exists=True, round=round, schema=schema, created=created, stale=stale,
                     settings=changed_settings(provenance, settings), checked=bool(provenance.parents),
                     problem=problem, **base)


#: The files a variant folder may hold, by kind.
_VARIANT_FILES = {"aux.h5": "aux", "features.h5": "features", "clusters.h5": "clusters", "model.pt": "model",
                  "eval.h5": "eval"}


def _variant_rows(run: RunDir, folder: Path, round: int | None, settings: RunSettings | None) -> list[StatusRow]:
    """One row per artifact in each variant folder under `folder` (a round folder, or the run folder for aux.h5)."""
    rows = []
    for variant in variants_of(folder):
        group = f"{folder.name if round is not None else 'run'} variant {variant.name}"
        for filename, kind in _VARIANT_FILES.items():
            path = variant / filename
            if path.is_file():
                row = _read_row(run, kind, path, group, round, settings)
                sets = " ".join(f"--set {c.key}={setting_text(c.made)}" for c in row.settings)
                rerun = f"{row.rerun} {sets}".strip() if sets else f"the call that made variant {variant.name}"
                rows.append(replace(row, variant=variant.name, rerun=rerun))
    return rows


def run_status(run: RunDir) -> list[StatusRow]:
    """The status of every artifact of `run`: config.yaml and aux.h5, then each round folder's files, each with
    its variants after it.

    Settings are compared with config.yaml as `run_settings` reads it; a config.yaml that cannot be read
    compares none (every stage refuses it, naming what is wrong).

    Raises:
        AuxReidError: the run folder does not exist.
    """
    if not run.path.is_dir():
        raise AuxReidError(
            f"run directory {run.path} does not exist; create it with `auxreid init {run.path.name} "
            "--config configs/synth.yaml`"
        )
    settings = run_settings(run.config_path)
    rows = [_read_row(run, "config", run.config_path, "run", None, settings),
            _read_row(run, "aux", run.aux, "run", None, settings)]
    rows += _variant_rows(run, run.path, None, settings)
    for round in run.rounds():
        folder = run.round_dir(round).name
        rows += [_read_row(run, kind, path, folder, round, settings)
                 for kind, path in run.round_artifacts(round).items()]
        rows += _variant_rows(run, run.round_dir(round), round, settings)
    return rows

"""`auxreid init --sync`: bring an existing run's config.yaml in line with its CONFIG file and --set values, never
dropping what was edited by hand.

`make round` calls it on every run, so a changed CONFIG, SET, DATA or SEED reaches the run. `init` records what it
was asked (the CONFIG file's bytes and the --set values) and the config.yaml it wrote, in RUN/init.json. Then:

- the same request as recorded: nothing to do; config.yaml stays as it is, hand edits included (they are the
  run's definition now);
- another request that resolves to the same config: only the record is updated;
- another config, and config.yaml is as init wrote it: the run is re-initialised with it, and the changed
  settings are listed (what was made with the old ones is then stale, and make re-makes it);
- another config, and config.yaml was edited since: refused, naming both the hand edits and what the request
  changes, since re-initialising would silently drop the edits.

Nothing here imports torch: a call with nothing to do takes well under a second.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stages.artifacts.h5 import atomic_path
from stages.artifacts.readers import flat_settings, setting_text
from stages.config import Config, config_from_yaml, config_to_yaml, resolve_config_path
from stages.data import with_absolute_paths
from stages.errors import AuxReidError
from stages.rundir import RunDir

#: How many changed settings a message spells out before "and N more".
_SHOWN = 4


def request_digest(config_file: str | Path, overrides: Sequence[str] | None) -> str:
    """SHA-256 of what init is asked: the CONFIG file's bytes and the --set values in order."""
    digest = hashlib.sha256(Path(resolve_config_path(config_file)).read_bytes())
    for override in overrides or []:
        digest.update(b"\0" + override.encode())
    return digest.hexdigest()


def write_init_record(run: RunDir, request: str, config_yaml: str) -> Path:
    """RUN/init.json: the request init was given and the config.yaml text it wrote."""
    with atomic_path(run.init_record) as tmp:
        tmp.write_text(json.dumps({"request": request, "config_yaml": config_yaml}) + "\n")
    return run.init_record


def _read_record(run: RunDir) -> dict | None:
    try:
        record = json.loads(run.init_record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("request"), str) \
            or not isinstance(record.get("config_yaml"), str):
        return None
    return record


@dataclass(frozen=True)
class Sync:
    """What `init --sync` does to a run.

    Attributes:
        action: "create" (no config.yaml yet), "current" (nothing to do), "record" (another request, the same
            config: the record is updated), or "update" (re-initialise with the new config).
        config: the config to create or update with (frozen: data paths absolute).
        changes: (key, config.yaml's value, the new value) for an update.
    """

    action: str
    config: Config
    changes: list[tuple[str, object, object]] = field(default_factory=list)


def _changes(old: Config, new: Config) -> list[tuple[str, object, object]]:
    before, after = flat_settings(old), flat_settings(new)
    return [(key, before.get(key), value) for key, value in after.items() if before.get(key) != value]


def describe_changes(changes: list[tuple[str, object, object]], *, before: str, after: str) -> str:
    """'cluster.eps 0.5 in config.yaml, 0.6 from configs/x.yaml' for the first few, then 'and N more'."""
    text = "; ".join(f"{key} {setting_text(old)} {before}, {setting_text(new)} {after}"
                     for key, old, new in changes[:_SHOWN])
    return text + (f" and {len(changes) - _SHOWN} more" if len(changes) > _SHOWN else "")


def plan_sync(run: RunDir, config: Config, *, config_file: str | Path, request: str) -> Sync:
    """What `init --sync` must do for `run`, given the config CONFIG and --set resolve to.

    Raises:
        AuxReidError: config.yaml was edited since init (or has no init record) and the request resolves to another
            config, naming the edits and the request's changes; or config.yaml cannot be read.
    """
    frozen = with_absolute_paths(config)
    if not run.config_path.is_file():
        return Sync("create", frozen)
    text = run.config_path.read_text(encoding="utf-8")
    current = config_from_yaml(text, str(run.config_path))
    record = _read_record(run)
    if record is not None and record["request"] == request:
        return Sync("current", current)
    if config_to_yaml(current) == config_to_yaml(frozen):
        return Sync("record", current)
    changes = _changes(current, frozen)
    asked = f"from {config_file}"
    if record is not None and record["config_yaml"] == text:
        return Sync("update", frozen, changes)
    if record is None:
        found = (f"{run.config_path} has no record of what `auxreid init` wrote ({run.init_record} is missing: an "
                 "older auxreid or a run made by hand), so edits by hand cannot be told apart")
    else:
        written = config_from_yaml(record["config_yaml"], f"{run.init_record} config")
        found = (f"{run.config_path} was edited since `auxreid init` wrote it ("
                 + describe_changes(_changes(written, current), before="as init wrote it", after="now") + ")")
    raise AuxReidError(
        f"{found}; and {config_file} with this call's --set gives other settings "
        f"({describe_changes(changes, before='in config.yaml', after=asked)}); re-initialising would drop the "
        f"edits: carry them into {config_file} (or SET=...), or start the run over with `auxreid init {run.name} "
        f"--config {config_file} --force`"
    )

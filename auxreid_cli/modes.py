"""The two ways a stage command is called: RUN (--round R), or explicit files; one home for both blocks.

Run mode takes every path from `stages.rundir.stage_io` and refuses missing inputs with
the message naming the command that makes them. Explicit mode takes the config from RUN, --config,
or the config stored in one of the given files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stages.config import Config, load_config

if TYPE_CHECKING:
    from stages.rundir import RunDir, StageIO


def run_mode(
    run: str, stage: str, round: int | None, overrides: list[str] | None, *, skip: tuple[str, ...] = ()
) -> tuple[RunDir, Config, StageIO]:
    """The run, its config (with --set on top) and the stage's wiring at `round`, inputs checked.

    Args:
        run: run name or path.
        stage: the stage's command name.
        round: the round (None where the stage has a default, e.g. mine-aux).
        overrides: --set assignments.
        skip: input roles the command was given explicitly (not required to exist in the run).

    Raises:
        AuxReidError: bad round, no config.yaml, a missing input (naming the command that makes it), or an
            input made from another dataset or round than the run's (naming the file).
    """
    from stages.rundir import RunDir, check_inputs, check_round, load_run_config, stage_io

    if round is not None:
        check_round(stage, round)
    run_dir = RunDir.resolve(run)
    config = load_run_config(run_dir, overrides)
    io = stage_io(run_dir, stage, round, config)
    io.require(skip=skip)
    check_inputs(run_dir, io, config, skip=skip)
    return run_dir, config, io


def explicit_config(
    overrides: list[str] | None,
    *,
    run: str | None = None,
    config: Path | None = None,
    sources: Sequence[Path | None] = (),
    defaults: bool = False,
) -> Config:
    """The config of an explicit-mode command: RUN's, else --config, else the one stored in a source file.

    Args:
        overrides: --set assignments, applied on top in every case.
        run: a run whose config.yaml is used.
        config: a YAML config file.
        sources: artifacts or model.pt files, tried in order for a stored config.
        defaults: with nothing else, use the paper defaults instead of failing.

    Raises:
        AuxReidError: no source carries a config and `defaults` is off ("<file> carries no config; pass
            --config CONFIG.yaml").
    """
    from stages.artifacts.readers import config_from_artifact, stored_config_yaml
    from stages.rundir import RunDir, load_run_config

    if run is not None:
        return load_run_config(RunDir.resolve(run), overrides)
    if config is not None:
        return load_config(config, overrides)
    given = [Path(source) for source in sources if source is not None]
    for source in given:
        if stored_config_yaml(source):
            return config_from_artifact(source, overrides=overrides)
    if defaults or not given:
        return load_config(None, overrides)
    return config_from_artifact(given[0], overrides=overrides)

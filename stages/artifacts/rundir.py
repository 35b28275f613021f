"""Layout of a run directory (`artifacts/<run>/`) and its frozen config."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stages.artifacts.h5 import atomic_path
from stages.config import Config, build_config, config_to_yaml, parse_set, read_yaml
from stages.errors import AuxReidError

ARTIFACTS_ENV = "AUXREID_ARTIFACTS"


def artifacts_root() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV, "artifacts"))


@dataclass(frozen=True)
class RunDir:
    """Paths of one run; round R's files live in `round_00R/`."""

    path: Path

    @classmethod
    def resolve(cls, run: str | Path) -> "RunDir":
        """A bare name lives under the artifacts root; anything with a path separator is taken as is."""
        run = str(run)
        if os.sep in run or run.startswith("."):
            return cls(Path(run))
        return cls(artifacts_root() / run)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def aux(self) -> Path:
        return self.path / "aux.h5"

    def round_dir(self, round: int) -> Path:
        return self.path / f"round_{round:03d}"

    def features(self, round: int) -> Path:
        return self.round_dir(round) / "features.h5"

    def clusters(self, round: int) -> Path:
        return self.round_dir(round) / "clusters.h5"

    def model(self, round: int) -> Path:
        return self.round_dir(round) / "model.pt"

    def eval(self, round: int) -> Path:
        return self.round_dir(round) / "eval.h5"

    def eval_json(self, round: int) -> Path:
        return self.round_dir(round) / "eval.json"

    def require(self) -> None:
        if not self.config_path.is_file():
            raise AuxReidError(
                f"run directory {self.path} has no config.yaml; create it with `auxreid init {self.path.name} "
                "--config configs/synth.yaml`"
            )


def ensure_new_run(run: RunDir, *, force: bool = False) -> None:
    """Refuse to overwrite an existing run unless asked to."""
    if run.config_path.exists() and not force:
        raise AuxReidError(f"{run.config_path} already exists; pick another run name or pass --force")


def write_run_config(run: RunDir, config: Config) -> Path:
    """Freeze the fully resolved config into `RUN/config.yaml` (atomically)."""
    run.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.config_path) as tmp:
        tmp.write_text(config_to_yaml(config))
    return run.config_path


def load_run_config(run: RunDir, overrides: list[str] | None = None) -> Config:
    """The run's frozen config with this command's `--set` overrides on top."""
    run.require()
    return build_config((read_yaml(run.config_path), str(run.config_path)), (parse_set(overrides), "--set"))

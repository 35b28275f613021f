"""`auxreid init`: a run directory with round 0's model and the frozen, fully resolved config."""

from __future__ import annotations

from pathlib import Path

from stages.artifacts.lock import writes
from stages.artifacts.model_file import save_model
from stages.config import Config
from stages.data import DatasetSplit, load_dataset, with_absolute_paths
from stages.model.pretrained import initial_model
from stages.run_sync import write_init_record
from stages.rundir import RunDir, ensure_new_run, write_dataset_record, write_run_config


def write_initial_model(config: Config, path: str | Path, dataset: DatasetSplit | None = None) -> Path:
    """Round 0's model.pt (student = teacher = initial weights), sized to the train tracklets.

    `dataset` is the config's, parsed here when not given.
    """
    dataset = dataset if dataset is not None else load_dataset(config.data)
    model = initial_model(config, num_classes=len(dataset.train))
    return save_model(path, student=model, teacher=model, config=config, round=0, step=0,
                      dataset=dataset.name, fingerprint=dataset.fingerprint)


@writes(lambda run, **_: (run.config_path, run.model(0), run.dataset_record, run.init_record))
def run_init(run: RunDir, config: Config, *, force: bool = False, request: str | None = None) -> list[Path]:
    """Create the run: round 0's model and the dataset record first, then config.yaml, so a failure leaves no
    half-made run.

    The dataset is parsed once here: RUN/dataset.json keeps its name and split fingerprint for the run's
    later commands to check their inputs against. The frozen config holds data.root (the dataset's home filled in when empty) and data.manifest as
    absolute paths, so the run's later commands work from any directory.

    Args:
        request: `request_digest` of the CONFIG file and --set values, recorded in RUN/init.json with the config.yaml
            written, so `init --sync` can tell a changed request from an edit by hand (None: no record).

    Returns:
        The paths written, config.yaml first.

    Raises:
        AuxReidError: the run exists (without `force`), the dataset or the initial weights are missing.
    """
    ensure_new_run(run, force=force)
    config = with_absolute_paths(config)
    dataset = load_dataset(config.data)
    model = write_initial_model(config, run.model(0), dataset)
    record = write_dataset_record(run, dataset.name, dataset.fingerprint)
    run.init_record.unlink(missing_ok=True)  # a record of an earlier init would describe another config.yaml
    written = [write_run_config(run, config), model, record]
    if request is not None:
        written.append(write_init_record(run, request, run.config_path.read_text(encoding="utf-8")))
    return written


@writes(lambda run, **_: (run.model(0),))
def restore_initial_model(run: RunDir, config: Config) -> Path:
    """Round 0's model.pt again for a run whose config.yaml stands (make's rule for a deleted round_000/model.pt)."""
    return write_initial_model(config, run.model(0))

"""Dataset loaders (MARS, DukeMTMC-VideoReID, synthetic, manifest) behind one entry point, and their home.

A dataset with no `data.root` lives in its conventional folder under the data home: `./data` in the
working directory, or the folder named by AUXREID_DATA. Every command (and the Makefile) reads datasets
this way, so `data/DukeMTMC-VideoReID`, `data/MARS` and `data/synth` need no option at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from stages.config import Config, DataConfig
from stages.data.base import SPLITS, DatasetSplit, Tracklet
from stages.data.dense import dense_train
from stages.errors import AuxReidError

DATASETS = ("synth", "duke", "mars", "manifest")

#: The environment variable naming the folder that holds the dataset folders (default ./data).
DATA_ENV = "AUXREID_DATA"

#: Each dataset's folder under the data home, and its layout in a few words (for the error when it is absent).
DATASET_HOMES = {
    "duke": ("DukeMTMC-VideoReID", "train/, query/ and gallery/, each <pid>/<tracklet>/<frames>.jpg"),
    "mars": ("MARS", "bbox_train/, bbox_test/ and info/ (the MARS release)"),
    "synth": ("synth", "synth.json and the split folders (`auxreid synth` writes them there)"),
}

__all__ = ["DATASETS", "DATASET_HOMES", "SPLITS", "DatasetSplit", "Tracklet", "data_home",
           "check_manifest", "dataset_root", "load_dataset", "manifest_override", "with_absolute_paths"]


def data_home() -> Path:
    """The folder holding the dataset folders: $AUXREID_DATA, else ./data."""
    return Path(os.environ.get(DATA_ENV) or "data")


def dataset_root(data: DataConfig) -> str:
    """`data.root`, or the dataset's folder under the data home when it is empty (manifest: the file).

    Raises:
        AuxReidError: the dataset's default folder does not exist; the message says where it looked, what
            the folder should hold, and how to point elsewhere.
    """
    if data.dataset == "manifest":
        return data.manifest or data.root
    if data.root or data.dataset not in DATASET_HOMES:
        return data.root
    folder, layout = DATASET_HOMES[data.dataset]
    root = data_home() / folder
    if not root.is_dir():
        home = f"{DATA_ENV}={os.environ[DATA_ENV]}" if os.environ.get(DATA_ENV) else f"./data, as {DATA_ENV} is unset"
        raise AuxReidError(
            f"no {data.dataset} dataset at {root} (the default: {folder}/ under {home}); it should hold {layout}; "
            f"put it there, or point elsewhere with {DATA_ENV}=DIR (the folder holding {folder}/) or --root DIR "
            "(in a config: data.root)"
        )
    return str(root)


def manifest_override(manifest: str | Path | None, *, run: str | None = None) -> list[str]:
    """`--manifest FILE` as the `--set data.manifest=FILE` assignment ([] when not given).

    Args:
        manifest: --manifest, None when not given.
        run: RUN, for a command where RUN's config.yaml names the dataset and its manifest instead.

    Raises:
        AuxReidError: --manifest beside RUN.
    """
    if manifest is None:
        return []
    if run is not None:
        raise AuxReidError("give either RUN (its config.yaml says the dataset and its manifest) or --dataset manifest "
                           "--manifest FILE, not both; use --set data.manifest=FILE to override the run's")
    return [f"data.manifest={json.dumps(str(manifest))}"]


def check_manifest(data: DataConfig, manifest: str | Path | None, *, config: str | Path | None = None) -> None:
    """Refuse --manifest beside a dataset other than manifest, and the manifest dataset with no file to read
    (neither data.manifest nor data.root), in the words of `auxreid datasets show`.

    Args:
        data: the resolved data settings (--manifest, --dataset, --root and --set applied).
        manifest: --manifest, None when not given.
        config: the config file that chose the dataset, for a command without --dataset (`init`); None when
            --dataset chose it.
    """
    if manifest is not None and data.dataset != "manifest":
        if config is None:
            raise AuxReidError(f"--manifest goes with --dataset manifest, not --dataset {data.dataset}; give "
                               "--dataset manifest, or drop --manifest")
        raise AuxReidError(f"--manifest goes with a manifest dataset, but {config} has data.dataset {data.dataset}; "
                           "give a config with data.dataset manifest (e.g. --config configs/manifest.yaml), or drop "
                           "--manifest")
    if data.dataset == "manifest" and not (data.manifest or data.root):
        if config is None:
            raise AuxReidError("--dataset manifest needs --manifest FILE (.csv or .jsonl)")
        raise AuxReidError(f"data.dataset manifest ({config}) needs --manifest FILE (.csv or .jsonl; with make round: "
                           "DATA=FILE)")


def with_absolute_paths(config: Config) -> Config:
    """The config with data.root (its default home filled in) and data.manifest absolute, for freezing into a run.

    A run's later commands may start in another directory; a relative path would then name another folder.
    """
    data = config.data
    root = dataset_root(data) if data.dataset != "manifest" else data.root
    absolute = {key: os.path.abspath(value) if value else value
                for key, value in (("root", root), ("manifest", data.manifest))}
    return dataclasses.replace(config, data=dataclasses.replace(data, **absolute))


def load_dataset(data: DataConfig) -> DatasetSplit:
    """Parse the dataset named in the config from its on-disk layout.

    Raises:
        AuxReidError: unknown dataset name, or a missing / malformed file (named in the message).
    """
    root = dataset_root(data)
    # deferred per dataset: loading one dataset imports no other loader; mars.py imports scipy, and this package is
    # imported at CLI start-up (cmd_synth -> stages.data.synth.world), which must not load it
    if data.dataset == "duke":
        from stages.data.duke import load_duke

        return load_duke(root, dense_step=data.dense_step)
    if data.dataset == "synth":
        from stages.data.duke import load_synth

        return load_synth(root, dense_step=data.dense_step)
    if data.dataset == "mars":
        from stages.data.mars import load_mars

        return dense_train(load_mars(root), data.dense_step)
    if data.dataset == "manifest":
        from stages.data.manifest import load_manifest

        return dense_train(load_manifest(root), data.dense_step)
    raise AuxReidError(f"unknown dataset '{data.dataset}'; choose one of {', '.join(DATASETS)}")

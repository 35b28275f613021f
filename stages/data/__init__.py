"""Dataset loaders (MARS, DukeMTMC-VideoReID, synthetic, manifest) behind one entry point."""

from __future__ import annotations

from stages.config import DataConfig
from stages.data.base import SPLITS, DatasetSplit, Tracklet
from stages.errors import AuxReidError

DATASETS = ("synth", "duke", "mars", "manifest")

__all__ = ["DATASETS", "SPLITS", "DatasetSplit", "Tracklet", "load_dataset"]


def load_dataset(data: DataConfig) -> DatasetSplit:
    """Parse the dataset named in the config from its on-disk layout.

    Raises:
        AuxReidError: unknown dataset name, or a missing / malformed file (named in the message).
    """
    if data.dataset == "duke":
        from stages.data.duke import load_duke

        return load_duke(data.root, dense_step=data.dense_step)
    if data.dataset == "synth":
        from stages.data.duke import load_synth

        return load_synth(data.root, dense_step=data.dense_step)
    if data.dataset == "mars":
        from stages.data.mars import load_mars

        return load_mars(data.root)
    if data.dataset == "manifest":
        from stages.data.manifest import load_manifest

        return load_manifest(data.manifest or data.root)
    raise AuxReidError(f"unknown dataset '{data.dataset}'; choose one of {', '.join(DATASETS)}")

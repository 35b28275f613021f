"""`auxreid extract`: tracklet features from a model.pt's teacher, in cluster mode or infer mode, to features.h5.

The computation (which frames, how they are pooled) is `stages.model.embed.extract_features`; this
module reads the model and the dataset, and writes one group per split with its provenance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.lock import writes
from stages.artifacts.readers import read_model
from stages.artifacts.schemas import FEATURES
from stages.config import Config
from stages.data import load_dataset
from stages.data.base import DatasetSplit
from stages.data.frame_table import frame_table
from stages.errors import AuxReidError
from stages.model.checkpoint import build_network
from stages.model.embed import extract_features
from stages.progress import Progress
from stages.rundir import StageIO
from stages.runtime import distributed_from_env, rank_device, resolve_device
from stages.shards import Shard, shard_from_env


@writes(lambda out_path, **_: (out_path,))
def extract_to_file(
    config: Config,
    *,
    split: str | Sequence[str],
    mode: str,
    model_path: str | Path,
    out_path: str | Path,
    round: int | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    dataset: DatasetSplit | None = None,
    shard: Shard | None = None,
) -> Path:
    """Extract one or more splits with a model.pt's teacher and write features.h5.

    Under torchrun each rank extracts a contiguous slice of each split's tracklets, the slices are gathered, and
    rank 0 writes the file (atomically, so a failing rank leaves none).

    Args:
        config: the run's config (dataset, sizes, extract settings).
        split: one split name or several (one group each in the file).
        mode: 'cluster' or 'infer'.
        model_path: the model.pt whose teacher is used.
        out_path: features.h5 to write (atomically).
        round: the round extracted for; default the model's round + 1 in cluster mode (round R's
            extract uses round R-1's model) and the model's round in infer mode (evaluation).
        device: overrides config.extract.device ('auto', 'cpu', 'cuda[:N]').
        progress: progress sink.
        dataset: an already loaded dataset (default: load_dataset(config.data)).
        shard: this process's slice (None: from torchrun's RANK / WORLD_SIZE, the whole without).

    Returns:
        out_path.
    """
    began = time.perf_counter()
    shard = shard_from_env() if shard is None else shard
    splits = [split] if isinstance(split, str) else list(split)
    model_file = read_model(model_path, progress=progress)
    if round is None:
        round = model_file.round + 1 if mode == "cluster" else model_file.round
    dataset = dataset if dataset is not None else load_dataset(config.data)
    compute = rank_device(resolve_device(device or config.extract.device), distributed_from_env())
    network = build_network(model_file, "teacher")
    data: dict[str, np.ndarray] = {}
    skipped = 0
    for name in splits:
        rows = shard.bounds(len(dataset.split(name))) if shard.world > 1 else None
        columns = extract_features(
            config, dataset, name, network, mode=mode, round=round, device=compute, progress=progress, rows=rows
        )
        if shard.world > 1:
            columns = {key: shard.gather_strings(value) if key == "bad_frames" else shard.gather(value)
                       for key, value in columns.items()}
        if not np.isfinite(columns["features"]).all():
            raise AuxReidError(
                f"the teacher of {model_path} gives NaN or infinite {name} features; {out_path} was not written "
                "(the model diverged or is damaged: re-train it, or extract with an earlier round's model)"
            )
        skipped += len(columns["bad_frames"])
        columns.update(frame_table(dataset.split(name), dataset.root))
        data.update({f"{name}/{key}": value for key, value in columns.items()})
    if not shard.is_main:
        return Path(out_path)
    data["camera_labels"] = np.array(dataset.camera_labels, dtype=str)
    provenance = make_provenance(
        FEATURES, dataset=dataset.name, fingerprint=dataset.fingerprint, round=round, config=config,
        parents={"model": model_path},
    )
    attrs = {"mode": mode, "bad_frames_skipped": skipped, "model_round": model_file.round,
             "arch": model_file.entries["arch"], "device": compute.type, "data_root": dataset.root,
             "seconds": time.perf_counter() - began}
    return write_artifact(out_path, provenance, data, attrs=attrs)


def run_extract(config: Config, io: StageIO, *, progress: Progress | None = None) -> list[Path]:
    """`auxreid extract`: the model's teacher over the chosen splits (a run's round: train, cluster mode)."""
    splits = [name for value in io.options.get("split") or ["train"] for name in str(value).split(",") if name]
    return [extract_to_file(config, split=splits, mode=str(io.options.get("mode") or "cluster"),
                            model_path=io.inputs["model"], out_path=io.outputs["features"], round=io.round,
                            device=io.options.get("device"), progress=progress)]

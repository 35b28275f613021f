"""`auxreid import-weights`: a released reference checkpoint written as an auxreid model.pt."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stages.artifacts.lock import writes
from stages.artifacts.model_file import save_model
from stages.artifacts.weights_file import load_weights_only
from stages.config import ModelConfig
from stages.errors import AuxReidError
from stages.model.reference import convert_reference_checkpoint

#: The config's own rule for model.last_stride, so --last-stride accepts exactly what a config does.
_LAST_STRIDE = next(f for f in dataclasses.fields(ModelConfig) if f.name == "last_stride").metadata["check"]


@writes(lambda out_path, **_: (out_path,))
def run_import_weights(path: str | Path, *, out_path: str | Path, arch: str = "resnet50", last_stride: int = 2) -> Path:
    """Read a reference checkpoint (weights_only=True) and write it as an auxreid model.pt.

    Raises:
        AuxReidError: a `last_stride` no model can be built with (worded for --last-stride, which the user typed,
            not for the config key it becomes), or a checkpoint that is unreadable or does not fit the network.
    """
    if not _LAST_STRIDE(last_stride):
        raise AuxReidError(f"--last-stride {last_stride} is out of range; it must be {_LAST_STRIDE.requirement} "
                           "(the layer4 stride the checkpoint was trained with)")
    path = Path(path)
    checkpoint = load_weights_only(path)
    entries, config = convert_reference_checkpoint(checkpoint, arch=arch, last_stride=last_stride, source=str(path))
    return save_model(
        out_path,
        student=entries["student"],
        teacher=entries["teacher"],
        config=config,
        round=entries["round"],
        step=0,
        extra={"imported_from": entries["imported_from"]},
    )

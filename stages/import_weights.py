"""`auxreid import-weights`: a released reference checkpoint written as an auxreid model.pt."""

from __future__ import annotations

from pathlib import Path

from stages.artifacts.lock import writes
from stages.artifacts.model_file import save_model
from stages.artifacts.weights_file import load_weights_only
from stages.model.reference import convert_reference_checkpoint


@writes(lambda out_path, **_: (out_path,))
def run_import_weights(path: str | Path, *, out_path: str | Path, arch: str = "resnet50", last_stride: int = 2) -> Path:
    """Read a reference checkpoint (weights_only=True) and write it as an auxreid model.pt."""
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

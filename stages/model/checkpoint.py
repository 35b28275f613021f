"""A ReidModel from a model.pt: the network side of the file format in `stages.artifacts.model_file`."""

from __future__ import annotations

from pathlib import Path

import torch

from stages.artifacts.model_file import ModelFile, read_model_file
from stages.errors import AuxReidError
from stages.model.network import ReidModel, build_model
from stages.model.weights import check_state_fits


def build_network(model_file: ModelFile, which: str = "teacher") -> ReidModel:
    """The network with the `which` ('teacher' or 'student') weights of a model.pt, in eval mode, on CPU."""
    if which not in ("teacher", "student"):
        raise ValueError(f"which must be 'teacher' or 'student', got {which!r}")
    model = build_model(model_file.config.model, num_classes=model_file.num_classes, arch=model_file.entries["arch"])
    state = model_file.entries[which]
    check_state_fits(model, state, f"{model_file.path} ({which})")
    damaged = next((key for key, value in state.items()
                    if torch.is_floating_point(value) and not bool(torch.isfinite(value).all())), None)
    if damaged is not None:
        raise AuxReidError(f"{model_file.path}: the {which} weights hold NaN or infinite values ({damaged}); the model "
                           "is damaged (a diverged training?): re-train it or start from an earlier round's model")
    model.load_state_dict(state)
    return model.eval()


def load_model(path: str | Path, *, which: str = "teacher", device: torch.device | str = "cpu") -> ReidModel:
    """The `which` network of a model.pt, in eval mode, on `device`."""
    return build_network(read_model_file(path), which).to(device)

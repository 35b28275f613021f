"""Checking a state dict against a ReidModel before loading it, listing every key or shape that does not fit."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from stages.errors import AuxReidError
from stages.model.network import ReidModel

#: BatchNorm counters that files saved by old torch versions lack.
_COUNTER = "num_batches_tracked"


def check_state_fits(
    model: ReidModel, state: Mapping[str, torch.Tensor], source: str, *, optional: tuple[str, ...] = ()
) -> None:
    """Refuse a state dict whose keys or shapes do not fit `model`, listing the offenders.

    BatchNorm `num_batches_tracked` counters may be absent (files saved by old torch versions, such
    as torchvision's ImageNet weights); loading keeps the model's own counters then.
    """
    if not isinstance(state, Mapping):
        raise AuxReidError(
            f"{source} is a {type(state).__name__}, expected a state dict (parameter names -> tensors); re-create the file"
        )
    not_tensors = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise AuxReidError(f"{source} holds entries that are not tensors: {_listing(not_tensors)}; re-create the file")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in optional and not k.endswith(_COUNTER)]
    unknown = [k for k in state if k not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unknown:
            parts.append(f"unknown keys {_listing(unknown)}")
        raise AuxReidError(
            f"{source} does not fit a {model.arch} ReidModel: {'; '.join(parts)}; check model.arch or the file"
        )
    wrong = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise AuxReidError(f"{source} has tensors of the wrong shape for a {model.arch} ReidModel: {_listing(wrong)}")


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")



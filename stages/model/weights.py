"""Reading weight files safely (weights_only=True) and checking a state dict against a ReidModel."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.errors import AuxReidError
from stages.model.network import ReidModel

#: BatchNorm counters that files saved by old torch versions lack.
_COUNTER = "num_batches_tracked"


def load_weights_only(path: Path, *, mmap: bool = False) -> Any:
    """torch.load with weights_only=True (numpy scalars allowed, as reference checkpoints hold them).

    `mmap` maps the tensors instead of reading them, for callers that only look at the scalars.
    """
    if not Path(path).is_file():
        raise AuxReidError(f"model file {path} does not exist; check the path")
    scalar = np._core.multiarray.scalar
    safe = [np.dtype, scalar, (scalar, "numpy.core.multiarray.scalar")]
    safe += [type(np.dtype(kind)) for kind in (np.float64, np.float32, np.int64, np.int32)]
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise AuxReidError(f"{path} is not a readable torch file (UnpicklingError); re-create it") from None
        raise AuxReidError(
            f"{path} cannot be loaded with weights_only=True (it pickles the object {found.group(1)}); only "
            "tensors, numbers, strings and dicts are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise AuxReidError(f"{path} is not a readable torch file ({type(exc).__name__}); re-create it") from None


def check_state_fits(
    model: ReidModel, state: Mapping[str, torch.Tensor], source: str, *, optional: tuple[str, ...] = ()
) -> None:
    """Refuse a state dict whose keys or shapes do not fit `model`, listing the offenders.

    BatchNorm `num_batches_tracked` counters may be absent (files saved by old torch versions, such
    as torchvision's ImageNet weights); loading keeps the model's own counters then.
    """
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
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")



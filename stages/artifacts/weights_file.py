"""Reading torch weight files safely: `torch.load(..., weights_only=True)`, never pickled objects.

The one door through which every model.pt, reference checkpoint and ImageNet state dict is read, so a
file from anyone can be opened: anything that is not tensors, numbers, strings, lists and dicts (numpy
scalars included, as reference checkpoints hold them) is refused in one line naming what it pickles.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.config import require_file
from stages.errors import AuxReidError

#: numpy scalar types a checkpoint may hold (`epoch`, `best_mAP`, ... as numpy scalars).
_NUMPY_SCALAR_TYPES = (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64,
)
#: The module path numpy 1 (numpy.core) and numpy 2 (numpy._core) pickle scalars under.
_SCALAR_NAMES = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")


def numpy_safe_globals() -> list[Any]:
    """What weights_only loading must allow for numpy scalars, and nothing else of numpy.

    A numpy scalar pickles as `multiarray.scalar(dtype, bytes)`. numpy 2 keeps that function in
    `numpy._core`, numpy 1 in `numpy.core`; a file names whichever version wrote it, so both names map to
    the function of the numpy installed here (found by feature detection, not version numbers).
    """
    core = getattr(np, "_core", None)
    if getattr(core, "multiarray", None) is None:
        core = np.core
    scalar = core.multiarray.scalar
    dtypes = [type(np.dtype(kind)) for kind in _NUMPY_SCALAR_TYPES]
    return [np.dtype, *dict.fromkeys(dtypes), *((scalar, name) for name in _SCALAR_NAMES)]


def _refusal(path: Path, exc: BaseException) -> AuxReidError:
    """One line for a file torch cannot load with weights_only=True, naming a forbidden global if any."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))  # the weights_only unpickler names what it refused
    if found is not None:
        return AuxReidError(
            f"{path} cannot be loaded with weights_only=True (it pickles the object {found.group(1)}); only "
            "tensors, numbers, strings, lists and dicts are accepted, so re-save the weights as a plain state dict"
        )
    return AuxReidError(
        f"{path} is not a readable torch file ({type(exc).__name__}): it is damaged, truncated or in another "
        "format; re-create or re-download it"
    )


def load_weights_only(path: Path, *, mmap: bool = False) -> Any:
    """torch.load with weights_only=True (numpy scalars allowed, as reference checkpoints hold them).

    `mmap` maps the tensors instead of reading them, for callers that only look at the scalars. Any
    failure inside torch.load (garbage, a truncated archive, a zip without torch's records) is the
    file's fault, so every one becomes a one-line error naming the file.
    """
    path = require_file(path, "model file", missing="check the path", folder="give the weight file inside it")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(numpy_safe_globals()):
            # torch warns about pickle protocols before failing on non-torch pickles; the error says it all.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 -- see the docstring
        raise _refusal(path, exc) from None

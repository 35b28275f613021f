"""Where and how computation runs: the device, the autocast dtype, seeding, and the torchrun rank/world."""

from __future__ import annotations

import torch

from stages.errors import AuxReidError

#: Autocast dtypes of the `amp` settings (CUDA only; 'off' runs in float32).
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cpu', 'cuda', 'cuda:N' as given (checked)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise AuxReidError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AuxReidError(f"device '{spec}' was asked for but CUDA is not available here; use --device cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise AuxReidError(f"device '{spec}' does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise AuxReidError(f"device '{spec}' is not supported; use auto, cpu, cuda or cuda:N")
    return device


def amp_dtype(setting: str) -> torch.dtype | None:
    """The autocast dtype of an `amp` setting ('bf16', 'fp16'), or None for 'off'."""
    return AMP_DTYPES.get(setting)

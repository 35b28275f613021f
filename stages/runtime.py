"""Where and how computation runs: the device, the autocast dtype, seeding, and the torchrun rank/world."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from stages.errors import AuxReidError

#: Autocast dtypes of the `amp` settings ('off' runs in float32). They act on every device: the CPU runs the
#: same autocast, GradScaler and channels_last code as CUDA (slower there, but the branch is exercised).
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


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast on `device` in `dtype`, or no autocast for None (float32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """fp16's loss scaler on `device` (bf16 and float32 need none): small fp16 gradients would flush to zero."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def memory_format(channels_last: bool) -> torch.memory_format:
    """NHWC when asked (faster convolutions on tensor cores; the same numbers within float rounding)."""
    return torch.channels_last if channels_last else torch.contiguous_format


# --- CUDA only: every line that needs a GPU is in the functions below ------------------------------------------


def cuda_index(device: torch.device) -> int | None:
    """The CUDA device number `device` names (the current one for a bare 'cuda'), None for the CPU."""
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


def pin_memory(device: torch.device) -> bool:
    """Page-locked loader buffers, for asynchronous host-to-GPU copies (there is nothing to pin for on the CPU)."""
    return device.type == "cuda"


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a wall-clock time covers it; nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun launch; rank 0 of world 1 without torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (absent: a single process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise AuxReidError("WORLD_SIZE / RANK / LOCAL_RANK must be integers (they are set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise AuxReidError(f"RANK={rank} does not fit WORLD_SIZE={world}; launch multi-process training with torchrun")
    return Distributed(rank=rank, world=world, local_rank=local_rank)


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group (NCCL on CUDA, gloo on the CPU) when there is more than one process.

    On CUDA every rank takes the GPU of its local rank, so `cuda` means "my GPU" under torchrun.
    """
    launch = distributed_from_env()
    if launch.world == 1:
        return launch
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return launch


def rank_device(device: torch.device, launch: Distributed) -> torch.device:
    """The device this rank computes on: its own GPU (by local rank) under a multi-GPU launch."""
    if device.type == "cuda" and launch.world > 1:
        return torch.device("cuda", launch.local_rank)
    return device

"""Where and how computation runs: the device, the autocast dtype, seeding, and the torchrun rank/world."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return launch


def rank_device(device: torch.device, launch: Distributed) -> torch.device:
    """The device this rank computes on: its own GPU (by local rank) under a multi-GPU launch."""
    if device.type == "cuda" and launch.world > 1:
        return torch.device("cuda", launch.local_rank)
    return device

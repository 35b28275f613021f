"""The networks and optimiser of one round: student and EMA teacher as ClipModels, their classifiers seeded
from the round's centroids, a fresh Adam, the fp16 scaler, and the DDP wrapper under torchrun."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from stages.artifacts.model_file import ModelFile
from stages.config import TrainConfig
from stages.errors import AuxReidError
from stages.model.checkpoint import build_network
from stages.runtime import amp_dtype, cuda_index, grad_scaler, memory_format
from stages.training.optim import make_optimizer
from stages.training.step import ClipModel


@dataclass
class MeanTeacher:
    """What a step updates, and how it computes.

    Attributes:
        student, teacher: the ClipModels (the teacher takes no gradient).
        optimizer: the round's Adam over the student.
        scaler: fp16's GradScaler, else None.
        forward: the student's DistributedDataParallel wrapper under torchrun, else None.
        amp_dtype: the autocast dtype, None for float32.
        channels_last: NHWC inputs.
    """

    student: ClipModel
    teacher: ClipModel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    forward: nn.Module | None
    amp_dtype: torch.dtype | None
    channels_last: bool


def seed_classifier(model: nn.Module, centroids: torch.Tensor, source: Path) -> None:
    """Rows 0..C-1 of the classifier <- the L2-normalised centroids (cluster-mode features)."""
    weight = model.classifier.weight
    if centroids.shape[1] != weight.shape[1] or centroids.shape[0] > weight.shape[0]:
        raise AuxReidError(
            f"{source}: {centroids.shape[0]} centroids of dimension {centroids.shape[1]} do not fit the model's "
            f"classifier ({weight.shape[0]} rows of dimension {weight.shape[1]}); the clusters come from another model"
        )
    with torch.no_grad():
        weight[: centroids.shape[0]].copy_(F.normalize(centroids.float(), dim=1))


def build_mean_teacher(model_file: ModelFile, centroids: torch.Tensor, *, source: Path, train: TrainConfig,
                       num_clusters: int, round: int, device: torch.device, world: int) -> MeanTeacher:
    """Student and teacher from the previous round's model.pt, classifiers seeded, on `device`, ready to train."""
    memory = memory_format(train.channels_last)
    networks = []
    for which in ("student", "teacher"):
        network = build_network(model_file, which)
        seed_classifier(network, centroids, source)
        networks.append(ClipModel(network.to(device, memory_format=memory), bn_chunk=train.bn_chunk,
                                  num_clusters=num_clusters).train())
    student, teacher = networks
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    dtype = amp_dtype(train.amp)
    forward = None
    if world > 1:
        with warnings.catch_warnings():  # broadcast_buffers=False is the documented way to keep rank-local buffers
            warnings.simplefilter("ignore", FutureWarning)
            gpu = cuda_index(device)
            forward = nn.parallel.DistributedDataParallel(student, device_ids=None if gpu is None else [gpu],
                                                          broadcast_buffers=False)
    return MeanTeacher(student=student, teacher=teacher, optimizer=make_optimizer(student, train, round=round),
                       scaler=grad_scaler(device, dtype), forward=forward, amp_dtype=dtype,
                       channels_last=train.channels_last)

"""One mean-teacher training step, with BatchNorm groups that do not depend on the device count.

The reference trained a batch of 64 tracklets on 4 GPUs with DataParallel, so every BatchNorm layer
saw groups of 16 tracklets; on one GPU the same code normalises over 64 and, as users of peer
frameworks report, mAP collapses. Here a batch is forwarded as chunks of `bn_chunk` tracklets on any
device count (per rank under DDP), and the running statistics are updated as if the chunks had run
side by side: each chunk starts from the same running statistics and the results are averaged (and
averaged across ranks after the step). One process with two chunks and two ranks with one chunk each
therefore produce the same weights and the same running statistics.

Under DDP every rank gathers the whole batch's outputs (differentiably) and computes the loss on the
full batch, so batch-hard triplet mining sees all identities of the batch whatever the rank count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from stages.model.ema import ema_alpha, ema_update
from stages.model.network import ReidModel
from stages.runtime import autocast
from stages.training.losses import LossWeights, total_loss

#: The four loss terms, in the order they are logged.
TERMS = ("id", "triplet", "soft_id", "soft_triplet")


#: What every stopped round's message ends with: nothing of it was written, and what to try.
STOPPED_ADVICE = "{out} was not written (earlier files are intact); lower train.lr or check the clusters and the model"


class StopRound(ArithmeticError):
    """The losses say the round went wrong, so it must stop before its model.pt is written.

    Raised inside the loop and turned into the stage's one-line error by `message`, so every reason to
    stop a round (`NonFiniteLoss`, `stages.training.loop.ExplodingLoss`) leaves the same way.
    """

    def message(self, *, round: int, iteration: int, out: object) -> str:
        raise NotImplementedError


class NonFiniteLoss(StopRound):
    """A loss term became NaN or infinite; carries the term's name and value."""

    def __init__(self, term: str, value: float) -> None:
        super().__init__(f"loss term '{term}' is {value}")
        self.term, self.value = term, value

    def message(self, *, round: int, iteration: int, out: object) -> str:
        return (f"round {round} iteration {iteration}: loss term '{self.term}' is {self.value}; training stopped and "
                + STOPPED_ADVICE.format(out=out))


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class ClipModel(nn.Module):
    """A ReidModel applied to clips, as the authors' network: the neck runs on every frame.

    Per frame: backbone -> pooled x, bn_x = neck(x). Per clip: f = time-average of x (the triplet
    losses' feature) and logits = classifier(time-average of bn_x). In training mode the neck's batch
    statistics are therefore over frames, like every other BatchNorm layer and like the per-frame test
    features it later normalises; averaging before the neck would give it clip-mean statistics and a
    sharper logit scale.

    Args:
        model: the network; its classifier rows 0..num_clusters-1 are this round's pseudo identities.
        bn_chunk: tracklets per BatchNorm group.
        num_clusters: logits are cut to the first num_clusters rows.
    """

    def __init__(self, model: ReidModel, *, bn_chunk: int, num_clusters: int) -> None:
        super().__init__()
        self.model, self.bn_chunk, self.num_clusters = model, bn_chunk, num_clusters

    def _one(self, images: torch.Tensor, tracklets: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.model.forward_features(images)
        bn_frames = self.model.neck(frames)
        features = frames.view(tracklets, -1, frames.shape[1]).mean(dim=1)
        bn_features = bn_frames.view(tracklets, -1, bn_frames.shape[1]).mean(dim=1)
        logits = self.model.classifier(bn_features)
        return features, logits[:, : self.num_clusters]

    def forward(self, images: torch.Tensor, *, tracklets: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(tracklets x seq_len, 3, H, W) frames, clip by clip -> f (tracklets, d), logits (tracklets, C)."""
        seq_len = images.shape[0] // tracklets
        starts = list(range(0, tracklets, self.bn_chunk))
        if len(starts) == 1 or not self.training:
            return self._one(images, tracklets)
        layers = _bn_layers(self.model)
        before = [(m.running_mean.detach().clone(), m.running_var.detach().clone(), m.num_batches_tracked.clone())
                  for m in layers]
        sums = [(torch.zeros_like(mean), torch.zeros_like(var)) for mean, var, _ in before]
        outputs = []
        for start in starts:
            stop = min(start + self.bn_chunk, tracklets)
            # Fresh buffers per chunk: a chunk's backward still holds the tensors the previous chunk updated.
            for m, (mean, var, count) in zip(layers, before):
                m.running_mean, m.running_var, m.num_batches_tracked = mean.clone(), var.clone(), count.clone()
            outputs.append(self._one(images[start * seq_len : stop * seq_len], stop - start))
            with torch.no_grad():
                for m, (mean_sum, var_sum) in zip(layers, sums):
                    mean_sum.add_(m.running_mean)
                    var_sum.add_(m.running_var)
        for m, (mean_sum, var_sum) in zip(layers, sums):
            m.running_mean, m.running_var = mean_sum / len(starts), var_sum / len(starts)
        return torch.cat([f for f, _ in outputs]), torch.cat([logits for _, logits in outputs])


@dataclass(frozen=True)
class LossSettings:
    """The loss choices and weights of a round (from `train.*`)."""

    id_loss: str
    triplet: str
    epsilon: float
    watl_margin: float
    watl_lambda: float
    weights: LossWeights
    #: RLSCE's configured K (clusters.h5 `rlsce_k`), the divisor of epsilon; None divides by the map's width.
    rlsce_k: int | None = None


@torch.no_grad()
def average_bn_buffers(model: nn.Module, world: int) -> None:
    """Average BatchNorm running statistics across DDP ranks (the cross-rank half of the chunk rule)."""
    if world <= 1:
        return
    tensors = [t for m in _bn_layers(model) for t in (m.running_mean, m.running_var)]
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


class _AllGather(torch.autograd.Function):
    """all_gather whose backward hands each rank the summed gradient of its own slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, world: int) -> torch.Tensor:  # type: ignore[override]
        ctx.world, ctx.rank = world, dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(ctx.world)[ctx.rank], None


def _gather(tensor: torch.Tensor, world: int, *, differentiable: bool) -> torch.Tensor:
    if world <= 1:
        return tensor
    if differentiable:
        return _AllGather.apply(tensor, world)
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def train_step(
    student: ClipModel,
    teacher: ClipModel,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    nearest: torch.Tensor | None,
    losses: LossSettings,
    step: int,
    ema_max: float,
    world: int = 1,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    forward: nn.Module | None = None,
) -> dict[str, float]:
    """Forward student and teacher, the weighted loss on the whole batch, Adam, then the EMA teacher.

    Args:
        student: the student ClipModel.
        teacher: the EMA ClipModel; forwarded in training mode without gradients.
        optimizer: the round's Adam over the student's parameters.
        images: this rank's frames, (tracklets x seq_len, 3, H, W), normalised, on the device.
        labels: pseudo labels of the whole batch (all ranks), (batch,), on the device.
        nearest: (C, K) nearest-cluster map for RLSCE, on the device.
        losses: loss choices and weights.
        step: global EMA step before this update.
        ema_max: cap of the EMA weight.
        world: DDP world size (1 without torchrun).
        amp_dtype: autocast dtype (any device), None for float32.
        scaler: grad scaler for fp16.
        forward: what runs the student's forward, when not the student itself (its
            DistributedDataParallel wrapper under torchrun, which all-reduces the gradients).

    Returns:
        The loss terms and the total as floats.

    Raises:
        NonFiniteLoss: a term is NaN or infinite; nothing was updated.
    """
    tracklets = labels.shape[0] // world
    with autocast(images.device, amp_dtype):
        features, logits = (forward or student)(images, tracklets=tracklets)
        with torch.no_grad():
            features_t, logits_t = teacher(images, tracklets=tracklets)
    features, logits = _gather(features.float(), world, differentiable=True), _gather(logits.float(), world, differentiable=True)
    features_t = _gather(features_t.float(), world, differentiable=False)
    logits_t = _gather(logits_t.float(), world, differentiable=False)
    terms = total_loss(
        logits, features, logits_t, features_t, labels, id_loss=losses.id_loss, triplet=losses.triplet,
        nearest=nearest, rlsce_k=losses.rlsce_k, epsilon=losses.epsilon, watl_margin=losses.watl_margin, watl_lambda=losses.watl_lambda,
        weights=losses.weights,
    )
    values = {name: float(terms[name].detach()) for name in (*TERMS, "total")}
    for name in (*TERMS, "total"):
        if not torch.isfinite(torch.tensor(values[name])):
            raise NonFiniteLoss(name, values[name])
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(terms["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        terms["total"].backward()
        optimizer.step()
    average_bn_buffers(student, world)
    average_bn_buffers(teacher, world)
    ema_update(teacher, student, alpha=ema_alpha(step, ema_max=ema_max))
    return values

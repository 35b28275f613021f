"""The iteration loop of a round: augmentation, the step, progress, metrics lines and resumable checkpoints.

Everything random in an iteration is a function of (seed, round, iteration): the batch and its clip
frames are precomputed by the sampler, and the augmentation generator is seeded per iteration. So a
round resumed from a checkpoint at iteration k continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from stages.data.clips import ClipBatch
from stages.data.transforms import AugmentParams, apply_params, draw_params
from stages.progress import Progress
from stages.runtime import synchronize
from stages.training.mean_teacher import MeanTeacher
from stages.training.plan import RoundPlan
from stages.training.step import STOPPED_ADVICE, TERMS, LossSettings, StopRound, train_step

#: Mixed in with (seed, round, iteration) to seed the augmentation of one iteration.
_AUGMENT_SALT = 0x5EED_A06
#: The first iterations of a round whose mean total loss is the yardstick of `watch_total`.
BASELINE_ITERATIONS = 5
#: A round stops when its total loss is over this many times that mean.
EXPLOSION_FACTOR = 100.0


@dataclass(frozen=True)
class Augmentation:
    """The training augmentation (`train.flip`, `train.pad_crop` + `train.pad`, `train.random_erasing`,
    `train.augment_per`)."""

    flip: bool
    pad: int
    random_erasing: bool
    channels_last: bool
    per: str


@dataclass
class LoopState:
    """Where a round stands: the next iteration, the global EMA step, and running sums for the round record."""

    iteration: int
    step: int
    loss_sums: dict[str, float] = field(default_factory=lambda: {name: 0.0 for name in (*TERMS, "total")})
    precision_sum: float = 0.0
    precision_count: int = 0
    frames: int = 0
    seconds: float = 0.0
    #: Of `seconds`, the time spent waiting for the loader's next batch (the data path's share of a round).
    wait_seconds: float = 0.0
    #: Sum and count of the total loss over the round's first BASELINE_ITERATIONS iterations (`watch_total`).
    baseline_sum: float = 0.0
    baseline_count: int = 0


class ExplodingLoss(StopRound):
    """The total loss grew over EXPLOSION_FACTOR times its mean over the round's first iterations."""

    def __init__(self, total: float, mean: float, count: int) -> None:
        super().__init__(f"total loss {total} is over {EXPLOSION_FACTOR:g}x its first {count} iterations' mean {mean}")
        self.total, self.mean, self.count = total, mean, count

    def message(self, *, round: int, iteration: int, out: object) -> str:
        return (f"train-round stopped at iteration {iteration} of round {round}: total loss {self.total:.4g} is over "
                f"{EXPLOSION_FACTOR:g}x its first {self.count} iterations' mean {self.mean:.4g}; "
                + STOPPED_ADVICE.format(out=out))


def watch_total(state: LoopState, iteration: int, total: float) -> None:
    """Stop a round whose total loss is over EXPLOSION_FACTOR (100) times its mean over the first BASELINE_ITERATIONS
    (5) iterations of the round; those first iterations only build the mean.

    Only NaN and infinity stopped a round before, so a diverging one (too high a train.lr) ran to its end and
    wrote a model whose weights were useless. Normal training lowers the loss from its first iterations, and a
    hard batch lifts it a few times at most, so a hundredfold rise is divergence. The mean is part of the
    state, so a resumed round keeps the yardstick of the uninterrupted one; every rank sees the same total
    (the loss is computed on the whole gathered batch), so all ranks stop together.

    Args:
        state: the round so far; its baseline sums are updated here.
        iteration: the 0-based iteration whose step gave `total`.
        total: that step's total loss.

    Raises:
        ExplodingLoss: the rule above.
    """
    if iteration < BASELINE_ITERATIONS:
        state.baseline_sum += total
        state.baseline_count += 1
        return
    if state.baseline_count:
        mean = state.baseline_sum / state.baseline_count
        if total > EXPLOSION_FACTOR * mean:
            raise ExplodingLoss(total, mean, state.baseline_count)


def augment_generator(*, seed: int, round: int, iteration: int) -> torch.Generator:
    """The CPU generator of one iteration's augmentation (same parameters on every device)."""
    seed_words = np.random.SeedSequence([_AUGMENT_SALT, seed, round, iteration]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(seed_words[0]) << 32 | int(seed_words[1]))


def _rank_params(augmentation: Augmentation, batch_size: int, shape: torch.Size, *, seed: int, round: int,
                 iteration: int, rank: int, world: int) -> AugmentParams:
    """This rank's share of the whole batch's augmentation draw, so parameters do not depend on the rank count.

    Args:
        batch_size: clips in the whole batch (all ranks).
        shape: this rank's clips, (B, T, 3, H, W).
    """
    generator = augment_generator(seed=seed, round=round, iteration=iteration)
    per_clip = shape[1] if augmentation.per == "frame" else 1
    params = draw_params(batch_size * per_clip, shape[-2], shape[-1], flip=augmentation.flip, pad=augmentation.pad,
                         random_erasing=augmentation.random_erasing, generator=generator)
    if world == 1:
        return params
    share = batch_size // world * per_clip
    part = slice(rank * share, (rank + 1) * share)
    return AugmentParams(**{f.name: getattr(params, f.name)[part] for f in dataclasses.fields(params)})


def positive_precision(pseudo: np.ndarray, true_ids: np.ndarray | None) -> float | None:
    """Share of the batch's positive pairs (same pseudo label) that are truly one person; inspection only.

    Args:
        pseudo: (batch,) pseudo labels of the batch.
        true_ids: (batch,) person ids, or None when the dataset's train ids are unknown.

    Returns:
        The precision, or None when ids are unknown or the batch has no positive pair of distinct tracklets.
    """
    if true_ids is None:
        return None
    same = pseudo[:, None] == pseudo[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    positives = same & upper
    if not positives.any():
        return None
    return float((true_ids[:, None] == true_ids[None, :])[positives].mean())


@dataclass(frozen=True)
class StepSettings:
    """How every step of the round computes, besides the networks.

    Attributes:
        losses: the loss choices and weights; nearest: (C, K') RLSCE map on the device, or None.
        augmentation: the training augmentation.
        seed: the run's seed (with the round and iteration it seeds the augmentation).
        ema_max: cap of the EMA weight.
        device: where to compute; rank, world: this process's place under torchrun.
    """

    losses: LossSettings
    nearest: torch.Tensor | None
    augmentation: Augmentation
    seed: int
    ema_max: float
    device: torch.device
    rank: int = 0
    world: int = 1


def run_loop(
    loader: Iterable[ClipBatch],
    net: MeanTeacher,
    plan: RoundPlan,
    state: LoopState,
    settings: StepSettings,
    *,
    progress: Progress,
    on_iteration: Callable[[LoopState, dict], None],
) -> LoopState:
    """Train from `state.iteration` to `plan.iterations`; `on_iteration` logs and checkpoints after each step.

    Args:
        loader: this rank's ClipBatch items from `state.iteration` on.
        net: the networks, optimiser and precision of the round.
        plan: the round's labels and batches (all ranks' instances).
        on_iteration: called with the state and the iteration's record (losses, lr, frames/s, precision).

    Returns:
        The final state. Raises `stages.training.step.StopRound`: a non-finite loss (from the step) or one that
        exploded (`watch_total`).
    """
    s, device, aug = settings, settings.device, settings.augmentation
    started = time.perf_counter()  # an iteration's time includes waiting for its batch
    for item in loader:
        waited = time.perf_counter() - started
        iteration = item.index
        rows = plan.batches[iteration]
        params = _rank_params(aug, rows.size, item.clips.shape, seed=s.seed, round=plan.round, iteration=iteration,
                              rank=s.rank, world=s.world)
        images = apply_params(item.clips, params, pad=aug.pad, device=device, channels_last=aug.channels_last)
        batch_labels = torch.from_numpy(plan.labels[rows]).to(device)
        values = train_step(net.student, net.teacher, net.optimizer, images, batch_labels, nearest=s.nearest,
                            losses=s.losses, step=state.step, ema_max=s.ema_max, world=s.world,
                            amp_dtype=net.amp_dtype, scaler=net.scaler, forward=net.forward)
        watch_total(state, iteration, values["total"])
        synchronize(device)
        finished = time.perf_counter()
        seconds, started = finished - started, finished
        frames = int(item.clips.shape[0] * item.clips.shape[1]) * s.world
        true_ids = plan.true_ids[rows] if plan.true_ids is not None else None
        precision = positive_precision(plan.labels[rows], true_ids)
        state.iteration, state.step = iteration + 1, state.step + 1
        for name, value in values.items():
            state.loss_sums[name] += value
        if precision is not None:
            state.precision_sum += precision
            state.precision_count += 1
        state.frames += frames
        state.seconds += seconds
        state.wait_seconds += waited
        record = {"iteration": iteration + 1, "step": state.step, "losses": values,
                  "lr": net.optimizer.param_groups[0]["lr"], "frames_per_s": frames / max(seconds, 1e-9)}
        if precision is not None:
            record["pseudo_label_precision"] = precision
        on_iteration(state, record)
        progress.advance("train")
        progress.rate("train", "  ".join(f"{k} {values[k]:.3f}" for k in TERMS)
                      + f"  lr {record['lr']:.2e}  {record['frames_per_s']:.0f} frames/s")
    return state

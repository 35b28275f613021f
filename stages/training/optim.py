"""Optimiser, learning rate and iteration count of one round (Teng et al. 2022, dynamic iterations)."""

from __future__ import annotations

import torch
from torch import nn

from stages.config import TrainConfig


def round_iterations(train: TrainConfig, *, num_clusters: int) -> int:
    """Dynamic training iterations: round(iters_multiplier x clusters), or fixed_iters when the multiplier is <= 0.

    The paper ties the length of a round to the number of pseudo identities so that early rounds,
    with few reliable clusters, do not over-fit their noisy labels. At least one iteration runs.
    """
    if train.iters_multiplier <= 0:
        return train.fixed_iters
    return max(1, int(round(train.iters_multiplier * num_clusters)))


def round_lr(train: TrainConfig, *, round: int) -> float:
    """Step decay: lr x gamma^floor((round - 1) / lr_step_round); constant within the paper's runs."""
    return train.lr * train.lr_gamma ** ((round - 1) // train.lr_step_round)


def make_optimizer(model: nn.Module, train: TrainConfig, *, round: int) -> torch.optim.Adam:
    """A fresh Adam for the round over the trainable parameters (the frozen neck bias is left out)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=round_lr(train, round=round), weight_decay=train.weight_decay)

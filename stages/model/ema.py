"""The mean teacher: an exponential moving average of the student's weights (Tarvainen & Valpola 2017).

alpha = min(1 - 1 / (step + 1), ema_max) with the step counted over all rounds, so the teacher
follows the student closely at the start and averages over ~1 / (1 - ema_max) steps later on.
Only parameters are averaged; BatchNorm running statistics of the teacher come from its own
forward passes in training mode, as in the reference (MMT-style) implementation.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_alpha(step: int, *, ema_max: float) -> float:
    """The averaging weight of the teacher at global step `step` (0-based)."""
    return min(1.0 - 1.0 / (step + 1), ema_max)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, *, alpha: float) -> None:
    """teacher <- alpha * teacher + (1 - alpha) * student, parameter by parameter, in place."""
    teacher_params = [p for p in teacher.parameters()]
    student_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(teacher_params, alpha)
    torch._foreach_add_(teacher_params, student_params, alpha=1.0 - alpha)

"""stages/runtime.py: the accelerator switches on any device, and CUDA-only code kept in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from stages.runtime import amp_dtype, autocast, cuda_index, grad_scaler, memory_format, pin_memory, synchronize

STAGES = Path(__file__).resolve().parents[1] / "stages"


@pytest.mark.parametrize(("setting", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16), ("off", None)])
def test_amp_settings_autocast_on_the_cpu_and_fp16_gets_a_scaler(setting, dtype):
    cpu = torch.device("cpu")
    assert amp_dtype(setting) is dtype
    layer = torch.nn.Linear(4, 2)
    with autocast(cpu, amp_dtype(setting)):
        out = layer(torch.ones(1, 4))
    assert out.dtype == (dtype or torch.float32)
    scaler = grad_scaler(cpu, dtype)
    assert (scaler is not None) == (setting == "fp16")
    if scaler is not None:
        assert scaler.is_enabled() and scaler.scale(torch.tensor(1.0)) > 1  # a real scaler, on the CPU


def test_cpu_needs_no_pinning_no_synchronising_and_has_no_cuda_index():
    cpu = torch.device("cpu")
    assert pin_memory(cpu) is False and cuda_index(cpu) is None and synchronize(cpu) is None
    assert memory_format(True) is torch.channels_last and memory_format(False) is torch.contiguous_format


def test_code_that_only_runs_on_cuda_lives_in_runtime_alone():
    """`torch.cuda.*` calls and `.type == "cuda"` tests appear in stages/runtime.py only; every other module asks it."""
    cuda_only = re.compile(r'torch\.cuda\.|\.type\s*[!=]=\s*"cuda"|"cuda"\s*[!=]=')
    found = [f"{path.relative_to(STAGES)}:{number}: {line.strip()}"
             for path in sorted(STAGES.rglob("*.py")) if path.name != "runtime.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if cuda_only.search(line)]
    assert found == []

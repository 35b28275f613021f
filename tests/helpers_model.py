"""A small ResNet-18 model config and random image batches for the stages/model tests."""

import torch

from stages.config import build_config


def model_config(**model):
    """A seed-1 config for a randomly initialised resnet18, with the given model settings on top."""
    return build_config(({"seed": 1, "model": {"arch": "resnet18", "pretrained": "none", **model}}, "test"))


def random_images(seed=0, n=2):
    """`n` seeded random 3 x 32 x 16 images."""
    return torch.randn(n, 3, 32, 16, generator=torch.Generator().manual_seed(seed))

"""The tiny run config the CLI-level tests share: small enough that a whole round takes seconds on a CPU."""

from __future__ import annotations


def tiny_config(*, fixed_iters: int, every: int) -> str:
    """ResNet-18 at 32 x 16, whole tracklets, short clips; `fixed_iters` a round, evaluation every `every` rounds."""
    return f"""\
seed: 0
data: {{dataset: synth, dense_step: 0, height: 32, width: 16, num_workers: 0}}
model: {{arch: resnet18, last_stride: 1, pretrained: none}}
extract: {{cluster_seq_len: 4, cluster_batch: 64, infer_chunk: 64, device: cpu, amp: "off", channels_last: false}}
cluster: {{k1: 10, k2: 3, normalize: true, rho: 0.05, min_samples: 3, toc: true, relaxed: -1.0, sts: true, rlsce_k: 4}}
train: {{rounds: 2, batch_size: 16, instances: 4, train_seq_len: 2, iters_multiplier: 0, fixed_iters: {fixed_iters}, pad: 2,
        checkpoint_every: 0, device: cpu, amp: "off", channels_last: false}}
evaluate: {{every: {every}}}
"""

"""Tests for stages/training/step.py: BatchNorm chunks, the mean-teacher step, 1 vs 2 DDP ranks (gloo)."""

from __future__ import annotations

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from stages.config import build_config
from stages.model.ema import ema_alpha, ema_update
from stages.model.pretrained import initial_model
from stages.training.losses import LossWeights
from stages.training.optim import make_optimizer
from stages.training.step import ClipModel, LossSettings, NonFiniteLoss, train_step

BATCH, SEQ, CLUSTERS = 8, 2, 4
SETTINGS = LossSettings(id_loss="rlsce", triplet="watl", epsilon=0.1, watl_margin=0.5, watl_lambda=-0.01,
                        weights=LossWeights())


def _config():
    return build_config(({"seed": 3, "model": {"arch": "resnet18", "pretrained": "none"}}, "test"))


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(BATCH * SEQ, 3, 32, 16, generator=gen)
    labels = torch.arange(BATCH) // 2 % CLUSTERS
    nearest = torch.stack([(torch.arange(CLUSTERS) + 1) % CLUSTERS, (torch.arange(CLUSTERS) + 2) % CLUSTERS], 1)
    return images, labels, nearest


def _models(bn_chunk: int):
    network = initial_model(_config(), num_classes=10)
    student = ClipModel(network, bn_chunk=bn_chunk, num_clusters=CLUSTERS).train()
    teacher = ClipModel(copy.deepcopy(network), bn_chunk=bn_chunk, num_clusters=CLUSTERS).train()
    return student, teacher


def _bn(model: nn.Module) -> list[torch.Tensor]:
    return [t for m in model.modules() if isinstance(m, nn.BatchNorm2d) for t in (m.running_mean, m.running_var)]


def test_clip_model_chunks_normalise_each_group_alone_and_average_running_stats():
    images, _, _ = _inputs()
    chunked, _ = _models(bn_chunk=4)
    whole = copy.deepcopy(chunked)
    whole.bn_chunk = BATCH
    features, logits = chunked(images, tracklets=BATCH)
    assert features.shape == (BATCH, 512) and logits.shape == (BATCH, CLUSTERS)
    halves = [copy.deepcopy(whole) for _ in range(2)]
    parts = [h(images[i * 8 : (i + 1) * 8], tracklets=4) for i, h in enumerate(halves)]
    torch.testing.assert_close(features, torch.cat([p[0] for p in parts]))
    torch.testing.assert_close(logits, torch.cat([p[1] for p in parts]))
    for mine, a, b in zip(_bn(chunked), _bn(halves[0]), _bn(halves[1])):
        torch.testing.assert_close(mine, (a + b) / 2)
    whole_features, _ = whole(images, tracklets=BATCH)
    assert not torch.allclose(whole_features, features)  # one group of 8 normalises differently


def test_ema_alpha_ramps_then_caps():
    assert ema_alpha(0, ema_max=0.999) == 0.0
    assert ema_alpha(1, ema_max=0.999) == 0.5
    assert ema_alpha(10**6, ema_max=0.999) == 0.999
    teacher, student = nn.Linear(2, 1), nn.Linear(2, 1)
    before = teacher.weight.detach().clone()
    ema_update(teacher, student, alpha=0.25)
    torch.testing.assert_close(teacher.weight, 0.25 * before + 0.75 * student.weight)


def test_train_step_updates_student_and_teacher_and_stops_on_nan():
    images, labels, nearest = _inputs()
    student, teacher = _models(bn_chunk=4)
    optimizer = make_optimizer(student, _config().train, round=1)
    start = copy.deepcopy(student.state_dict())
    teacher_start = copy.deepcopy(teacher.state_dict())
    values = train_step(student, teacher, optimizer, images, labels, nearest=nearest, losses=SETTINGS, step=5,
                        ema_max=0.999)
    assert set(values) == {"id", "triplet", "soft_id", "soft_triplet", "total"}
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    moved = student.state_dict()["model.conv1.weight"] - start["model.conv1.weight"]
    assert moved.abs().max() > 0
    alpha = ema_alpha(5, ema_max=0.999)
    expected = alpha * teacher_start["model.conv1.weight"] + (1 - alpha) * student.state_dict()["model.conv1.weight"]
    torch.testing.assert_close(teacher.state_dict()["model.conv1.weight"], expected)
    before = copy.deepcopy(student.state_dict())
    with pytest.raises(NonFiniteLoss) as error:
        train_step(student, teacher, optimizer, images * float("nan"), labels, nearest=nearest, losses=SETTINGS,
                   step=6, ema_max=0.999)
    assert error.value.term == "id"
    for key, value in student.state_dict().items():
        if key.endswith("weight") or key.endswith("bias"):
            assert torch.equal(value, before[key]), key


def _one_step(rank: int, world: int, port: int, out: str) -> None:
    """Run one step as `rank` of `world` (world 1: a single process) and save the resulting states."""
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    images, labels, nearest = _inputs()
    student, teacher = _models(bn_chunk=4)
    optimizer = make_optimizer(student, _config().train, round=1)
    forward = None
    if world > 1:
        forward = nn.parallel.DistributedDataParallel(student, broadcast_buffers=False)
    per_rank = BATCH * SEQ // world
    mine = images[rank * per_rank : (rank + 1) * per_rank]
    values = train_step(student, teacher, optimizer, mine, labels, nearest=nearest, losses=SETTINGS, step=3,
                        ema_max=0.999, world=world, forward=forward)
    torch.save({"student": student.state_dict(), "teacher": teacher.state_dict(), "loss": values["total"]},
               f"{out}/rank{rank}_of{world}.pt")
    if world > 1:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_process_and_two_gloo_ranks_give_the_same_weights_and_batchnorm_statistics(tmp_path):
    _one_step(0, 1, 0, str(tmp_path))
    mp.spawn(_one_step, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = torch.load(tmp_path / "rank0_of1.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"rank{r}_of2.pt", weights_only=True) for r in range(2)]
    assert abs(single["loss"] - ranks[0]["loss"]) < 1e-5 and ranks[0]["loss"] == ranks[1]["loss"]
    for which in ("student", "teacher"):
        for key, value in single[which].items():
            for rank in ranks:
                torch.testing.assert_close(rank[which][key], value, atol=2e-6, rtol=1e-4, msg=f"{which} {key}")

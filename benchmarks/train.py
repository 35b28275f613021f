"""Training throughput of `train-round` against the bare model's step on random tensors of the same shape.

Ours = `stages.train_round.train_to_file` on the synthetic network: frames decoded by DataLoader
workers, batched uint8 augmentation, student + teacher forwards in BatchNorm chunks, the four losses,
Adam and the EMA update, metrics lines. Baseline = the floor any trainer pays: the student's forward,
a cross-entropy backward and an Adam step on a random tensor already in memory (no data, no teacher).
Both run in this process, same model, batch and thread count; the ratio says how close the whole
round comes to the bare model. The round runs once per augmentation unit (`train.augment_per`: every
frame its own draw, the authors', or one draw per clip), and the augmentation alone (draw + apply on a
batch already decoded) is timed too, so the table shows what per-frame draws cost. Timing skips the
first `--warmup` iterations of each.

    .venv/bin/python benchmarks/train.py                                  # CPU: ResNet-18, 64x32, 32 x 4 frames
    .venv/bin/python benchmarks/train.py --arch resnet50 --size 256x128 --batch 64 --device cuda --amp bf16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.model_file import save_model
from stages.artifacts.schemas import CLUSTERS
from stages.config import build_config
from stages.data import load_dataset
from stages.data.transforms import AUGMENT_UNITS, apply_params, draw_params
from stages.model.ema import ema_update
from stages.model.pretrained import initial_model
from stages.runtime import amp_dtype, resolve_device, synchronize
from stages.synth import run_synth
from stages.train_round import train_to_file
from stages.training.optim import make_optimizer


def _config(args: argparse.Namespace, root: str, per: str = "frame"):
    height, width = (int(v) for v in args.size.split("x"))
    return build_config(({
        "seed": 0,
        "data": {"dataset": "synth", "root": root, "dense_step": 0, "height": height, "width": width,
                 "num_workers": args.workers},
        "model": {"arch": args.arch, "pretrained": "none", "last_stride": 1},
        "cluster": {"rlsce_k": 20},
        "train": {"batch_size": args.batch, "instances": 4, "train_seq_len": args.seq, "bn_chunk": 16,
                  "iters_multiplier": 0, "fixed_iters": args.iters + args.warmup, "checkpoint_every": 0,
                  "device": args.device, "amp": args.amp, "channels_last": args.device != "cpu" or args.amp != "off",
                  "augment_per": per},
    }, "benchmark"))


def _inputs(config, folder: Path):
    """Round 1's clusters.h5 (the true ids as pseudo labels: only speed is measured) and round 0's model."""
    dataset = load_dataset(config.data)
    ids = np.array([t.person_id for t in dataset.train])
    _, labels = np.unique(ids, return_inverse=True)
    count = int(labels.max()) + 1
    model = initial_model(config, num_classes=len(labels))
    dim = model.feature_dim
    rng = np.random.default_rng(0)
    k = min(20, count - 1)
    data = {"labels": labels, "centroids": rng.normal(size=(count, dim)).astype(np.float32),
            "nearest_clusters": np.stack([(np.arange(count) + s) % count for s in range(1, k + 1)], 1),
            "tracklet_index": np.arange(len(labels))}
    provenance = make_provenance(CLUSTERS, dataset=dataset.name, fingerprint=dataset.fingerprint, round=1,
                                 config=config)
    clusters = write_artifact(folder / "round_001" / "clusters.h5", provenance, data, attrs={"num_clusters": count})
    previous = save_model(folder / "round_000" / "model.pt", student=model, teacher=model, config=config, round=0,
                          step=0, dataset=dataset.name, fingerprint=dataset.fingerprint)
    return dataset, clusters, previous, count


def _ours(config, folder: Path, dataset, clusters: Path, previous: Path, warmup: int) -> float:
    metrics = folder / "metrics.jsonl"
    train_to_file(config, clusters_path=clusters, model_path=previous, out_path=folder / "round_001" / "model.pt",
                    round=1, metrics_path=metrics, dataset=dataset)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [line for line in lines if line["kind"] == "iteration"][warmup:]
    per_step = config.train.batch_size * config.train.train_seq_len
    return len(steps) * per_step / sum(per_step / line["frames_per_s"] for line in steps)


def _augmentation(config, device: torch.device, iters: int, warmup: int) -> float:
    """Frames/s of the augmentation alone: draw the round's parameters and apply them to a decoded batch."""
    train, data = config.train, config.data
    clips = torch.randint(0, 256, (train.batch_size, train.train_seq_len, 3, data.height, data.width),
                          dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    units = train.batch_size * (train.train_seq_len if train.augment_per == "frame" else 1)
    elapsed = 0.0
    for i in range(iters + warmup):
        start = time.perf_counter()
        params = draw_params(units, data.height, data.width, flip=train.flip, pad=train.pad,
                             random_erasing=train.random_erasing, generator=torch.Generator().manual_seed(i))
        apply_params(clips, params, pad=train.pad, device=device)
        synchronize(device)
        if i >= warmup:
            elapsed += time.perf_counter() - start
    return iters * clips.shape[0] * clips.shape[1] / elapsed


def _bare(config, count: int, device: torch.device, iters: int, warmup: int, *, teacher: bool = False) -> float:
    """Student forward + cross-entropy backward + Adam on a random batch already on the device.

    With `teacher`, also the mean teacher's forward (no gradient) and its EMA update: the compute the
    method itself adds, so the ratio against it is what data, augmentation and the losses cost.
    """
    model = initial_model(config, num_classes=count).to(device).train()
    mean_teacher = copy.deepcopy(model) if teacher else None
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config.train, round=1)
    batch, seq = config.train.batch_size, config.train.train_seq_len
    images = torch.randn(batch * seq, 3, config.data.height, config.data.width, device=device)
    if config.train.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, count, (batch,), device=device)
    dtype = amp_dtype(config.train.amp)
    elapsed = 0.0
    for i in range(iters + warmup):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            frames = model.forward_features(images)
            _, logits = model.forward_head(frames.view(batch, seq, -1).mean(1))
            if mean_teacher is not None:
                with torch.no_grad():
                    mean_teacher.forward_head(mean_teacher.forward_features(images).view(batch, seq, -1).mean(1))
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if mean_teacher is not None:
            ema_update(mean_teacher, model, alpha=0.999)
        synchronize(device)
        if i >= warmup:
            elapsed += time.perf_counter() - start
    return iters * batch * seq / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", default="64x32", help="HEIGHTxWIDTH")
    parser.add_argument("--batch", type=int, default=32, help="tracklets per batch")
    parser.add_argument("--seq", type=int, default=4, help="frames per tracklet")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off")
    parser.add_argument("--data", default="", help="synthetic dataset root (default: generate one in a temp folder)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if not root:
            height, width = (int(v) for v in args.size.split("x"))
            root = str(run_synth(Path(tmp) / "synth", layout="duke", seed=0, height=height, width=width))
        config = _config(args, root)
        dataset, clusters, previous, count = _inputs(config, Path(tmp) / "run")
        bare_before = _bare(config, count, device, args.iters, args.warmup)
        teacher_before = _bare(config, count, device, args.iters, args.warmup, teacher=True)
        ours, augment = {}, {}
        for per in AUGMENT_UNITS:
            config_per = _config(args, root, per)
            ours[per] = _ours(config_per, Path(tmp) / f"run_{per}", dataset, clusters, previous, args.warmup)
            augment[per] = _augmentation(config_per, device, args.iters, args.warmup)
        teacher_after = _bare(config, count, device, args.iters, args.warmup, teacher=True)
        bare_after = _bare(config, count, device, args.iters, args.warmup)
    bare, floor = (bare_before + bare_after) / 2, (teacher_before + teacher_after) / 2
    load = os.getloadavg()[0]
    print(f"train throughput: {args.arch} {args.size}, batch {args.batch} x {args.seq} frames, device {device}, "
          f"amp {args.amp}, {args.workers} workers, {torch.get_num_threads()} threads, load {load:.2f}")
    print("| what | frames/s | / bare model step | / bare mean-teacher step |")
    print("|---|---|---|---|")
    print(f"| bare model step: forward + CE backward + Adam on a random tensor | {bare:,.0f} "
          f"({bare_before:,.0f} before, {bare_after:,.0f} after) | 1.00 | |")
    print(f"| bare mean-teacher step: the same + teacher forward + EMA | {floor:,.0f} "
          f"({teacher_before:,.0f} before, {teacher_after:,.0f} after) | {floor / bare:.2f} | 1.00 |")
    for per in AUGMENT_UNITS:
        print(f"| train-round, augmentation per {per}: decoding, augmentation, BN chunks, student + teacher, "
              f"4 losses, EMA, logs | {ours[per]:,.0f} | {ours[per] / bare:.2f} | {ours[per] / floor:.2f} |")
    for per in AUGMENT_UNITS:
        print(f"| augmentation alone, per {per}: draw + apply on a decoded batch | {augment[per]:,.0f} "
              f"| {augment[per] / bare:.1f} | |")


if __name__ == "__main__":
    main()

"""Extraction throughput (frames/s) on the synthetic dataset: ours vs a naive per-frame loop.

Ours = `stages.model.embed.extract_features` in infer mode: DataLoader worker processes, chunks of frames
per forward, uint8 transfer and on-device normalisation (plus AMP, channels_last and pinned memory on
CUDA). Baseline = what a straightforward script does: for every frame, decode, normalise, forward one
image, no batching and no workers. Both run in this process on the same frames and the same random-init
model; the table gives frames/s and the ratio.

    .venv/bin/python benchmarks/extract.py                 # CPU (and CUDA when present)
    .venv/bin/python benchmarks/extract.py --frames 600 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from stages.config import build_config
from stages.data import load_dataset
from stages.data.base import DatasetSplit
from stages.data.frames import normalize_frames, read_frame
from stages.model.embed import extract_features
from stages.model.pretrained import initial_model


def _subset(dataset: DatasetSplit, frames: int) -> DatasetSplit:
    """The first gallery tracklets holding about `frames` frames, as a gallery-only split."""
    chosen, total = [], 0
    for tracklet in dataset.gallery:
        if total >= frames:
            break
        chosen.append(tracklet)
        total += len(tracklet.frames)
    return dataclasses.replace(dataset, gallery=tuple(chosen))


def _config(arch: str, height: int, width: int, *, chunk: int, workers: int, amp: str):
    return build_config(({
        "data": {"dataset": "synth", "height": height, "width": width, "num_workers": workers},
        "model": {"arch": arch, "pretrained": "none"},
        "extract": {"infer_chunk": chunk, "amp": amp, "channels_last": True},
    }, "benchmark"))


def _ours(config, dataset: DatasetSplit, model, device: torch.device) -> float:
    frames = sum(len(t.frames) for t in dataset.gallery)
    start = time.perf_counter()
    extract_features(config, dataset, "gallery", model, mode="infer", round=0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)


@torch.inference_mode()
def _naive(config, dataset: DatasetSplit, model, device: torch.device, limit: int) -> float:
    network = model.eval().to(device)
    count, start = 0, time.perf_counter()
    for tracklet in dataset.gallery:
        vectors = []
        for path in tracklet.frames:
            image = torch.from_numpy(read_frame(path, height=config.data.height, width=config.data.width))
            x = normalize_frames(image.permute(2, 0, 1)[None], device=device)
            vectors.append(F.normalize(network.forward_head(network.forward_features(x))[0], dim=1))
            count += 1
        torch.stack(vectors).mean(0).cpu()
        if count >= limit:
            break
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1200, help="frames for ResNet-18 at 64x32 (ResNet-50: a tenth)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=None, help="existing synthetic dataset (default: generate one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            from stages.synth import run_synth

            root = run_synth(Path(tmp) / "synth", layout="duke", seed=0, ids=10, test_ids=30, distractors=10)
        dataset = load_dataset(build_config(({"data": {"dataset": "synth", "root": str(root)}}, "benchmark")).data)
        cases = [("resnet18", 64, 32, 64, args.frames, "cpu")]
        cases.append(("resnet50", 256, 128, 16, max(args.frames // 10, 32), "cpu"))
        if torch.cuda.is_available():
            cases.append(("resnet18", 64, 32, 64, args.frames * 4, "cuda"))
            cases.append(("resnet50", 256, 128, 64, args.frames, "cuda"))
        print(f"torch threads {torch.get_num_threads()}, workers {args.workers}, synthetic dataset {root}")
        print(f"{'model':<10} {'input':>8} {'device':>6} {'amp':>5} {'frames':>7} {'ours f/s':>10} {'naive f/s':>10} {'ratio':>7}")
        for arch, height, width, chunk, frames, device_name in cases:
            device = torch.device(device_name)
            amps = ["off", "bf16"] if device.type == "cuda" else ["off"]
            subset = _subset(dataset, frames)
            n = sum(len(t.frames) for t in subset.gallery)
            for amp in amps:
                config = _config(arch, height, width, chunk=chunk, workers=args.workers, amp=amp)
                model = initial_model(config, num_classes=1)
                _ours(config, _subset(dataset, chunk), model, device)
                ours = _ours(config, subset, model, device)
                naive = _naive(config, subset, model, device, limit=max(n // 4, 16))
                print(f"{arch:<10} {height}x{width:<4} {device.type:>6} {amp:>5} {n:>7} {ours:>10.1f} {naive:>10.1f} "
                      f"{ours / naive:>6.1f}x")


if __name__ == "__main__":
    main()

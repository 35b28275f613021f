"""A tiny network of one's own cameras as a user brings it: person crops in folders and a manifest CSV describing them.

Three cameras named "gate", "lobby" and "street"; nine people, each walking gate -> lobby -> street (25 s apart, 40 s
between people) and seen by each camera in a tracklet of 4 crops, 0.5 s apart, at epoch times from 2026-03-01
14:00:00 UTC. People 0-5 are train (person_id left empty, as a user's train rows are), 6-8 are queried at the gate
and found in the lobby and on the street. Each person wears two colours of their own, so even a random network's
features group their tracklets.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CAMERAS = ("gate", "lobby", "street")
#: 2026-03-01 14:00:00 UTC.
START = 1772373600
PALETTE = ((200, 30, 30), (30, 160, 40), (40, 60, 200), (220, 200, 40), (160, 40, 180), (30, 190, 190),
           (240, 130, 20), (90, 90, 90), (250, 250, 250))
TRAIN_PEOPLE = 6
FRAMES = 4
COLUMNS = ("path", "tracklet", "camera", "split", "person_id", "timestamp")


def manifest_rows() -> list[tuple[str, ...]]:
    """The manifest's rows (without the header), in the order written."""
    rows = []
    for person in range(len(PALETTE)):
        for k, camera in enumerate(CAMERAS):
            split = "train" if person < TRAIN_PEOPLE else ("query" if k == 0 else "gallery")
            tracklet = f"p{person}-{camera}"
            start = START + 40 * person + 25 * k
            for f in range(FRAMES):
                rows.append((f"crops/{camera}/{tracklet}/{f:04d}.jpg", tracklet, camera, split,
                             "" if split == "train" else str(person), f"{start + 0.5 * f:.1f}"))
    return rows


def write_cameras(folder: Path) -> Path:
    """Write the crops (64 x 32 JPEGs) and `manifest.csv` into `folder`; returns the manifest."""
    rng = np.random.default_rng(0)
    rows = manifest_rows()
    for path, tracklet, *_ in rows:
        person = int(tracklet[1:].split("-")[0])
        pixels = np.empty((64, 32, 3), np.float64)
        pixels[:32] = PALETTE[person]
        pixels[32:] = PALETTE[(person + 3) % len(PALETTE)]
        image = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / path)
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return manifest


#: Settings that make a run of configs/manifest.yaml take seconds on a CPU: ResNet-18 from random weights at 32 x 16,
#: one iteration a round, small clustering neighbourhoods for 18 train tracklets.
TINY_SETS = ("model.arch=resnet18", "model.pretrained=none", "model.last_stride=1", "data.height=32", "data.width=16",
             "data.num_workers=0", "extract.cluster_seq_len=4", "extract.cluster_batch=64", "extract.device=cpu",
             "extract.channels_last=false", "train.device=cpu", "train.channels_last=false", "train.rounds=1",
             "train.iters_multiplier=0", "train.fixed_iters=1", "train.batch_size=8", "train.instances=2",
             "train.train_seq_len=2", "train.checkpoint_every=0", "cluster.k1=5", "cluster.k2=2", "cluster.rho=0.05",
             "cluster.min_samples=2", "cluster.rlsce_k=2", "evaluate.every=1")


def tiny_set_args() -> list[str]:
    """TINY_SETS as command-line options: --set k=v ..."""
    return [arg for assignment in TINY_SETS for arg in ("--set", assignment)]

"""Tracklet embeddings from a ReidModel (the compute of `auxreid extract`; no files written here).


- cluster mode (features for clustering): per tracklet one run of `cluster_seq_len` consecutive
  frames; the start is drawn from numpy's Generator seeded by (config.seed, round), one uniform per
  tracklet in tracklet order, so the run of tracklet i depends only on the seed, the round and i.
  A tracklet of T < L frames cycles its frames: indices 0, 1, ..., T-1, 0, 1, ... (L of them).
  The feature is the time-average of the raw pooled f (not normalised).
- infer mode (evaluation): every frame; each frame's bn_f is L2-normalised, then the frame vectors
  are averaged (not re-normalised). Frames are processed in chunks of `infer_chunk`.

Frames are decoded once per chunk by DataLoader workers; a frame repeated in a cluster-mode run is
decoded and forwarded once. Batch composition does not change results (the model is in eval mode).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from stages.artifacts.model_file import read_model_file
from stages.config import Config
from stages.data.base import SPLITS, DatasetSplit, Tracklet
from stages.data.frames import frame_loader, normalize_frames
from stages.errors import AuxReidError
from stages.model.checkpoint import build_network
from stages.model.network import ReidModel
from stages.progress import NullProgress, Progress
from stages.runtime import amp_dtype, autocast, pin_memory

MODES = ("cluster", "infer")
#: Mixed in with (seed, round) so cluster-mode sampling draws a stream no other stage draws.
_SAMPLING_SALT = 0x5EED_C1F5


def cluster_sample(num_frames: np.ndarray, *, seq_len: int, seed: int, round: int) -> np.ndarray:
    """The frame run of every tracklet for cluster mode.

    Args:
        num_frames: (n_tracklets,) frame counts, all >= 1.
        seq_len: L, frames per run.
        seed, round: the run's seed and the round it is extracted for.

    Returns:
        (n_tracklets, L) int64 indices into each tracklet's frames: start + 0..L-1 with a uniform
        start in [0, T-L] when T >= L, else 0..T-1 cycled.
    """
    num_frames = np.asarray(num_frames, dtype=np.int64)
    uniform = np.random.default_rng([_SAMPLING_SALT, seed, round]).random(len(num_frames))
    starts = np.floor(uniform * (np.maximum(num_frames - seq_len, 0) + 1)).astype(np.int64)
    offsets = np.arange(seq_len, dtype=np.int64)
    return (starts[:, None] + offsets[None, :]) % num_frames[:, None]


@dataclass(frozen=True)
class Chunk:
    """Frames decoded and forwarded together, and the (tracklet, frame) slots they fill.

    Attributes:
        paths: the distinct frames of the chunk.
        slot_tracklet: (n_slots,) tracklet position of each slot.
        slot_frame: (n_slots,) index into `paths` of each slot.
    """

    paths: tuple[str, ...]
    slot_tracklet: np.ndarray
    slot_frame: np.ndarray


def plan_chunks(
    tracklets: Sequence[Tracklet], slot_tracklet: np.ndarray, slot_index: np.ndarray, *, bounds: np.ndarray
) -> list[Chunk]:
    """Cut the slot list at `bounds` and give each chunk its distinct frames.

    Args:
        tracklets: the split's tracklets.
        slot_tracklet, slot_index: (n_slots,) tracklet position and frame index of each slot.
        bounds: chunk boundaries into the slot list, (n_chunks + 1,) from 0 to n_slots.
    """
    chunks = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        pairs = np.stack([slot_tracklet[lo:hi], slot_index[lo:hi]], axis=1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        paths = tuple(tracklets[t].frames[i] for t, i in unique)
        chunks.append(Chunk(paths, slot_tracklet[lo:hi].copy(), inverse.reshape(-1).astype(np.int64)))
    return chunks


def _slots(tracklets: Sequence[Tracklet], *, mode: str, config: Config, round: int) -> tuple[np.ndarray, ...]:
    """Slots (tracklet, frame index), chunk bounds and the cluster-mode sample (or None)."""
    counts = np.array([len(t.frames) for t in tracklets], dtype=np.int64)
    n = len(tracklets)
    if mode == "cluster":
        seq_len = config.extract.cluster_seq_len
        sampled = cluster_sample(counts, seq_len=seq_len, seed=config.seed, round=round)
        slot_tracklet = np.repeat(np.arange(n, dtype=np.int64), seq_len)
        step = _chunk_slots(mode, config)
        bounds = np.unique(np.r_[np.arange(0, n * seq_len, step), n * seq_len])
        return slot_tracklet, sampled.reshape(-1), bounds, sampled
    slot_tracklet = np.repeat(np.arange(n, dtype=np.int64), counts)
    slot_index = np.arange(len(slot_tracklet), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    bounds = np.unique(np.r_[np.arange(0, len(slot_tracklet), _chunk_slots(mode, config)), len(slot_tracklet)])
    return slot_tracklet, slot_index, bounds, None


def _chunk_slots(mode: str, config: Config) -> int:
    """Slots (frames) per decoded chunk: cluster_batch whole tracklets in cluster mode, infer_chunk frames in infer."""
    if mode == "cluster":
        return config.extract.cluster_batch * config.extract.cluster_seq_len
    return config.extract.infer_chunk


def _slice_slots(slot_tracklet: np.ndarray, slot_index: np.ndarray, sampled: np.ndarray | None, first: int,
                 last: int, *, step: int) -> tuple[np.ndarray, ...]:
    """The slots of tracklets [first, last) only (renumbered from 0), cut into chunks of `step` slots as a whole
    extraction cuts its slots: the same frames, sampled for the whole split."""
    keep = (slot_tracklet >= first) & (slot_tracklet < last)
    count = int(keep.sum())
    bounds = np.unique(np.r_[np.arange(0, count, step), count])
    return slot_tracklet[keep] - first, slot_index[keep], bounds, None if sampled is None else sampled[first:last]


def _validate(dataset: DatasetSplit, split: str, mode: str) -> tuple[Tracklet, ...]:
    if split not in SPLITS:
        raise AuxReidError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    if mode not in MODES:
        raise AuxReidError(f"unknown extract mode '{mode}'; choose one of {', '.join(MODES)}")
    tracklets = dataset.split(split)
    if not tracklets:
        raise AuxReidError(f"dataset '{dataset.name}' has no {split} tracklets to extract")
    empty = [t.name or str(i) for i, t in enumerate(tracklets) if not t.frames]
    if empty:
        raise AuxReidError(f"dataset '{dataset.name}': {split} tracklet(s) {', '.join(empty[:5])} have no frames")
    return tracklets


def _prepare_model(model: ReidModel | str | Path, *, device: torch.device, channels_last: bool) -> ReidModel:
    """The teacher of a model.pt, or a private copy of a given network, in eval mode on `device`."""
    network = build_network(read_model_file(model), "teacher") if isinstance(model, (str, Path)) else copy.deepcopy(model)
    network = network.eval().to(device)
    return network.to(memory_format=torch.channels_last) if channels_last else network


def extract_features(
    config: Config,
    dataset: DatasetSplit,
    split: str,
    model: ReidModel | str | Path,
    *,
    mode: str,
    round: int,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    rows: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Features of every tracklet of one split (or of the tracklets [start, stop) in `rows`).

    Args:
        config: uses `seed`, `data` (size, workers) and `extract` (lengths, AMP, skip_bad_frames).
        dataset: the loaded dataset.
        split: train, query or gallery.
        model: a ReidModel (not modified; a copy is moved) or a model.pt path (its teacher is used).
        mode: 'cluster' or 'infer' (module docstring).
        round: the round extracted for (seeds cluster-mode sampling).
        device: where to compute; `extract.amp` and `extract.channels_last` apply on every device.
        progress: receives task f"extract {split}" advanced by frames (slots) processed.
        rows: only these tracklets (a torchrun rank's share): their frames are the ones a whole extraction
            samples and averages, so the slices put together are the whole split's columns.

    Returns:
        features (N, D) float32, tracklet_index/camera/person_id/num_frames (N,) int64,
        frames_used (N,) int64 (frames averaged), bad_frames (B,) str (skipped files), and in
        cluster mode sampled_frames (N, cluster_seq_len) int64.

    Raises:
        AuxReidError: an unreadable frame (unless extract.skip_bad_frames) or a tracklet left
            without readable frames.
    """
    progress = progress or NullProgress()
    tracklets = _validate(dataset, split, mode)
    device = torch.device(device)
    channels_last = config.extract.channels_last
    network = _prepare_model(model, device=device, channels_last=channels_last)
    slot_tracklet, slot_index, bounds, sampled = _slots(tracklets, mode=mode, config=config, round=round)
    first, last = (0, len(tracklets)) if rows is None else rows
    if (first, last) != (0, len(tracklets)):
        slot_tracklet, slot_index, bounds, sampled = _slice_slots(
            slot_tracklet, slot_index, sampled, first, last, step=_chunk_slots(mode, config))
        tracklets = tracklets[first:last]
    chunks = plan_chunks(tracklets, slot_tracklet, slot_index, bounds=bounds)
    sums = torch.zeros(len(tracklets), network.feature_dim, dtype=torch.float64, device=device)
    used = torch.zeros(len(tracklets), dtype=torch.int64, device=device)
    bad: dict[str, str] = {}
    amp = autocast(device, amp_dtype(config.extract.amp))
    loader = frame_loader(
        [c.paths for c in chunks],
        height=config.data.height,
        width=config.data.width,
        num_workers=config.data.num_workers,
        pin_memory=pin_memory(device),
    )
    task = f"extract {split}"
    progress.start(task, total=len(slot_tracklet))
    for decoded in loader:
        chunk = chunks[decoded.index]
        for position, reason in decoded.errors:
            path = chunk.paths[position]
            if not config.extract.skip_bad_frames:
                owner = tracklets[chunk.slot_tracklet[chunk.slot_frame == position][0]].name
                raise AuxReidError(
                    f"cannot read frame {path} ({split} tracklet {owner}): {reason}; fix or remove the file, "
                    "or skip such frames with --skip-bad-frames (extract.skip_bad_frames)"
                )
            if path not in bad:
                bad[path] = reason
                progress.warn(f"skipping unreadable frame {path}: {reason}")
        vectors = _frame_vectors(network, decoded.images, decoded.ok, mode=mode, device=device,
                                 channels_last=channels_last, amp=amp)
        keep = decoded.ok.numpy()[chunk.slot_frame]
        owners = torch.from_numpy(chunk.slot_tracklet[keep]).to(device)
        sums.index_add_(0, owners, vectors[torch.from_numpy(chunk.slot_frame[keep]).to(device)])
        used.index_add_(0, owners, torch.ones_like(owners))
        progress.advance(task, len(chunk.slot_tracklet))
    used_np = used.cpu().numpy()
    _check_all_used(tracklets, used_np, split)
    progress.done(task, f"{len(tracklets)} tracklets")
    columns = dataset.arrays(split)
    out = {
        "features": (sums / used[:, None]).float().cpu().numpy(),
        "tracklet_index": np.arange(first, first + len(tracklets), dtype=np.int64),
        "camera": columns["camera"][first:last],
        "person_id": columns["person_id"][first:last],
        "num_frames": columns["num_frames"][first:last],
        "frames_used": used_np.astype(np.int64),
        "bad_frames": np.array(sorted(bad), dtype=str),
    }
    if sampled is not None:
        out["sampled_frames"] = sampled
    return out


@torch.inference_mode()
def _frame_vectors(
    network: ReidModel,
    images: torch.Tensor,
    ok: torch.Tensor,
    *,
    mode: str,
    device: torch.device,
    channels_last: bool,
    amp: contextlib.AbstractContextManager,
) -> torch.Tensor:
    """Per-frame vectors of a decoded chunk: raw f (cluster) or L2-normalised bn_f (infer).

    Returns:
        (n_frames, D) float64 on `device`; rows of failed frames are zero.
    """
    out = torch.zeros(len(images), network.feature_dim, dtype=torch.float64, device=device)
    if not bool(ok.any()):
        return out
    x = normalize_frames(images if bool(ok.all()) else images[ok], device=device, channels_last=channels_last)
    with amp:
        features = network.forward_features(x)
        vectors = features if mode == "cluster" else network.forward_head(features)[0]
    vectors = vectors.float()
    if mode == "infer":
        vectors = F.normalize(vectors, dim=1)
    out[ok.to(device)] = vectors.double()
    return out


def _check_all_used(tracklets: Sequence[Tracklet], used: np.ndarray, split: str) -> None:
    empty = np.flatnonzero(used == 0)
    if empty.size:
        names = ", ".join(tracklets[i].name or str(i) for i in empty[:5])
        raise AuxReidError(
            f"{split} tracklet(s) {names} have no readable frames left after skipping bad frames; "
            "repair their images or remove the tracklets from the dataset"
        )



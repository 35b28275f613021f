"""The training DataLoader of train-round: one item = the decoded clips of one P x K batch.

Each instance of a batch is a run of `train_seq_len` consecutive frames of its tracklet.
The runs are drawn from numpy's Generator seeded by (seed, round, batch index), so batch b's frames
depend on nothing else: not on the number of workers, nor on where a resumed run starts. Workers
decode each distinct frame of a batch once (PIL, bicubic resize, `stages.data.frames`) and ship
uint8 tensors; augmentation and normalisation happen on the compute device
(`stages.data.transforms`). An unreadable frame is reported back in the item and raised as an
AuxReidError naming the file by the loader in the main process, so the message is one line rather
than a worker traceback.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from stages.data.base import Tracklet
from stages.data.frames import DECODE_ERRORS, _decode, _reason
from stages.data.sampler import clip_starts, shard
from stages.errors import AuxReidError

#: Mixed in with (seed, round, batch) so the clip runs draw a stream no other stage draws.
_CLIP_SALT = 0x5EED_C119


def batch_clip_frames(
    num_frames: np.ndarray, batches: np.ndarray, *, seq_len: int, seed: int, round: int
) -> np.ndarray:
    """The frame run of every instance of every batch.

    Args:
        num_frames: (n,) frame count of each labelled tracklet, all >= 1.
        batches: (iterations, batch_size) row indices into the labelled tracklets.
        seq_len: L, frames per instance.
        seed, round: the run's seed and the round trained.

    Returns:
        (iterations, batch_size, L) int64 frame indices; batch b's runs are drawn from
        Generator([salt, seed, round, b]) only (`stages.data.sampler.clip_starts`).
    """
    num_frames = np.asarray(num_frames, dtype=np.int64)
    out = np.empty((*batches.shape, seq_len), dtype=np.int64)
    for b, rows in enumerate(batches):
        out[b] = clip_starts(num_frames[rows], seq_len, np.random.default_rng([_CLIP_SALT, seed, round, b]))
    return out


@dataclass(frozen=True)
class ClipBatch:
    """One loader item: the decoded clips of one batch.

    Attributes:
        index: the batch index b within the round.
        clips: (batch_size, L, 3, height, width) uint8; frames that failed to decode are zeros.
        rows: (batch_size,) int64 row indices into the labelled tracklets.
        errors: (row, path, reason) of each frame that failed to decode.
    """

    index: int
    clips: torch.Tensor
    rows: torch.Tensor
    errors: tuple[tuple[int, str, str], ...] = ()

    def pin_memory(self) -> "ClipBatch":
        """Called by DataLoader(pin_memory=True) so the copy to the GPU can be asynchronous."""
        return ClipBatch(self.index, self.clips.pin_memory(), self.rows.pin_memory(), self.errors)


class ClipDataset(Dataset):
    """Item b decodes the L-frame clips of the batch_size instances of batch b.

    Args:
        tracklets: the labelled tracklets; `batches` index into them.
        batches: (iterations, batch_size) from `stages.data.sampler.pk_batches` (or a rank's shard).
        frames: (iterations, batch_size, L) frame indices from `batch_clip_frames`.
        height, width: decoded frame size.
    """

    def __init__(
        self, tracklets: Sequence[Tracklet], batches: np.ndarray, frames: np.ndarray, *, height: int, width: int
    ) -> None:
        if frames.shape[:2] != batches.shape:
            raise ValueError(f"frames {frames.shape} do not match batches {batches.shape}")
        self.tracklets = tuple(tracklets)
        self.batches = np.asarray(batches, dtype=np.int64)
        self.frames = np.asarray(frames, dtype=np.int64)
        self.height, self.width = height, width

    def __len__(self) -> int:
        return len(self.batches)

    def batch_paths(self, index: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The distinct frames of batch `index`.

        Returns:
            paths (U,), their owner rows (U,) int64, and the (batch_size, L) index into paths of
            every clip frame.
        """
        rows, frames = self.batches[index], self.frames[index]
        pairs = np.stack([np.repeat(rows, frames.shape[1]), frames.reshape(-1)], axis=1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        paths = [self.tracklets[r].frames[f] for r, f in unique.tolist()]
        return paths, unique[:, 0], inverse.reshape(frames.shape)

    def __getitem__(self, index: int) -> ClipBatch:
        paths, owners, inverse = self.batch_paths(index)
        images = np.zeros((len(paths), self.height, self.width, 3), dtype=np.uint8)
        errors = []
        for position, path in enumerate(paths):
            try:
                images[position] = _decode(path, height=self.height, width=self.width)
            except DECODE_ERRORS as exc:
                errors.append((int(owners[position]), path, _reason(exc)))
        clips = torch.from_numpy(images[inverse]).permute(0, 1, 4, 2, 3).contiguous()
        return ClipBatch(int(index), clips, torch.from_numpy(self.batches[index].copy()), tuple(errors))


class ClipLoader:
    """Iterates the ClipBatch items of a DataLoader in batch order, raising on unreadable frames.

    Attributes:
        dataset: the ClipDataset.
        dataloader: the underlying DataLoader (its sampler yields batch indices start..iterations-1).
    """

    def __init__(self, dataset: ClipDataset, dataloader: DataLoader) -> None:
        self.dataset, self.dataloader = dataset, dataloader

    def __len__(self) -> int:
        return len(self.dataloader)

    def __iter__(self) -> Iterator[ClipBatch]:
        for item in self.dataloader:
            if item.errors:
                row, path, reason = item.errors[0]
                name = self.dataset.tracklets[row].name or f"#{row}"
                raise AuxReidError(
                    f"cannot read frame {path} (train tracklet {name}, batch {item.index}): {reason}; "
                    "fix or remove the file"
                )
            yield item


def clip_loader(
    tracklets: Sequence[Tracklet],
    batches: np.ndarray,
    *,
    seq_len: int,
    seed: int,
    round: int,
    height: int,
    width: int,
    num_workers: int,
    pin_memory: bool,
    prefetch_factor: int = 2,
    start_iteration: int = 0,
    rank: int = 0,
    world: int = 1,
    num_instances: int = 1,
) -> ClipLoader:
    """A loader yielding one ClipBatch per batch, from `start_iteration` on, decoded by `num_workers`.

    Args:
        tracklets: the labelled tracklets; `batches` index into them.
        batches: (iterations, batch_size) row indices.
        seq_len: L, frames per instance.
        seed, round: seed the clip runs (with the batch index; `batch_clip_frames`).
        height, width: decoded frame size.
        num_workers: decoding processes (0: the main process); results do not depend on it.
        pin_memory: pin the items for asynchronous copies to CUDA.
        prefetch_factor: items each worker decodes ahead (used when num_workers > 0).
        start_iteration: first batch to yield (resume); batches keep their absolute index.
        rank, world, num_instances: under DDP, this rank's share of every batch
            (`stages.data.sampler.shard`). Pass the full batches: the clip runs are drawn for the
            whole batch and then split, so an instance's frames do not depend on the world size.

    Raises:
        AuxReidError: batches that do not split over `world` in whole identity groups; while
            iterating, a frame that cannot be decoded, naming the file.
    """
    batches = np.asarray(batches, dtype=np.int64)
    if not 0 <= start_iteration <= len(batches):
        raise ValueError(f"start_iteration {start_iteration} is outside 0..{len(batches)}")
    num_frames = np.array([len(t.frames) for t in tracklets], dtype=np.int64)
    if batches.size and num_frames[np.unique(batches)].min() < 1:
        raise ValueError("every sampled tracklet must have at least one frame")
    frames = batch_clip_frames(num_frames, batches, seq_len=seq_len, seed=seed, round=round)
    if world > 1:
        batches = shard(batches, rank=rank, world=world, num_instances=num_instances)
        frames = shard(frames, rank=rank, world=world, num_instances=num_instances)
    dataset = ClipDataset(tracklets, batches, frames, height=height, width=width)
    dataloader = DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start_iteration, len(batches)),
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=False,
    )
    return ClipLoader(dataset, dataloader)

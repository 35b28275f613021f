"""Stages over torchrun ranks: each rank computes a slice of the rows, every rank gathers them all.

`extract` shards the tracklets (each rank decodes and embeds its slice); `cluster` the kNN lists and Jaccard rows.

Why: at ten million tracklets the kNN search and the Jaccard rows (about nine thousand pairs each examined per
tracklet) are hours of one machine's work, while what comes out of them is small: 30 neighbours a row, and the
few pairs a row keeps below the cap. So each rank searches and computes its own contiguous slice of rows
(`Shard.rows`), the slices are gathered over gloo (on the CPU, beside NCCL when the ranks train on GPUs), and
every rank then holds the same lists and the same distance, and goes on identically (eps, ICDBSCAN, centroids):
the result does not depend on the number of ranks. Only rank 0 writes clusters.h5, at the end and atomically,
so a rank that fails (torchrun stops the others) leaves no file behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from stages.runtime import distributed_from_env

#: Elements per collective call: gloo's buffers are indexed by 32-bit sizes on some paths, so big arrays go in parts.
GATHER_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class Shard:
    """This process's slice of a row-sharded computation (rank 0 of 1: the whole, nothing gathered).

    Attributes:
        rank, world: this process's place among the ranks.
        group: the gloo process group the slices are gathered over (None for one process).
    """

    rank: int = 0
    world: int = 1
    group: object | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """Rows [start, stop) of n that `rank` (default: this one) computes: contiguous, sizes within one."""
        rank = self.rank if rank is None else rank
        return n * rank // self.world, n * (rank + 1) // self.world

    def rows(self, n: int) -> np.ndarray:
        """This rank's rows of n, as int64 indices."""
        start, stop = self.bounds(n)
        return np.arange(start, stop, dtype=np.int64)

    def gather(self, part: np.ndarray) -> np.ndarray:
        """Every rank's `part` (1-D or rows of a 2-D array; any length per rank) concatenated in rank order."""
        if self.world == 1:
            return part
        part = np.ascontiguousarray(part)
        sizes = self._all_gather(np.array([part.shape[0]], dtype=np.int64), 1).reshape(-1)
        width = int(np.prod(part.shape[1:], dtype=np.int64))
        flat = part.reshape(-1)
        longest = int(sizes.max()) * width
        padded = np.zeros(longest, dtype=part.dtype)
        padded[:flat.size] = flat
        gathered = self._all_gather(padded, longest).reshape(self.world, longest)
        pieces = [gathered[r, :int(sizes[r]) * width] for r in range(self.world)]
        return np.concatenate(pieces).reshape(-1, *part.shape[1:])

    def gather_strings(self, part: np.ndarray) -> np.ndarray:
        """Every rank's strings (a 1-D str array), concatenated in rank order."""
        if self.world == 1:
            return part
        text = "\0".join(str(value) for value in part)
        encoded = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        counts = self.gather(np.array([len(part)], dtype=np.int64))
        pieces = self.gather(encoded)
        lengths = self.gather(np.array([len(encoded)], dtype=np.int64))
        values: list[str] = []
        for count, chunk in zip(counts, np.split(pieces, np.cumsum(lengths)[:-1])):
            if count:
                values += chunk.tobytes().decode("utf-8").split("\0")
        return np.array(values, dtype=str)

    def _all_gather(self, flat: np.ndarray, length: int) -> np.ndarray:
        """(world, length) of every rank's `flat` (all of `length`), in parts of at most GATHER_ELEMENTS."""
        out = np.empty((self.world, length), dtype=flat.dtype)
        for first in range(0, max(length, 1), GATHER_ELEMENTS):
            last = min(length, first + GATHER_ELEMENTS)
            mine = torch.from_numpy(np.ascontiguousarray(flat[first:last]))
            parts = [torch.empty_like(mine) for _ in range(self.world)]
            dist.all_gather(parts, mine, group=self.group)
            for rank, piece in enumerate(parts):
                out[rank, first:last] = piece.numpy()
        return out


#: One process: the whole computation, nothing gathered.
WHOLE = Shard()


def shard_from_env() -> Shard:
    """The shard of a torchrun launch (RANK / WORLD_SIZE), its gloo group joined; `WHOLE` without torchrun."""
    launch = distributed_from_env()
    if launch.world == 1:
        return WHOLE
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return Shard(rank=launch.rank, world=launch.world, group=group)

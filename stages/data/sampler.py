"""P x K batches of pseudo identities for train-round, precomputed for a whole round.

Teng et al. 2022 (arXiv 2205.03124) train on batches of P pseudo identities x K tracklets, the other
K - 1 instances of an identity preferably from other cameras than the first (the reference's
RandomMultipleGallerySampler, from MMT/SpCL). Here the whole round's batches are one array drawn up
front from (seed, round): a run resumed at iteration k starts from batch k, and the batches do not
depend on the number of DataLoader workers or DDP ranks (`shard` splits each batch between ranks).

Identity rule (the reference's sampler under a DataLoader with drop_last and an iterator restarted
when exhausted): a random permutation of the C identities is consumed P at a time; the last C mod P
identities of a permutation are dropped and a new permutation starts, so a batch never repeats an
identity. Instance rule per picked identity, the authors' (MMT's RandomMultipleGallerySampler): the
first instance is a uniform random member. When the cluster has members on other cameras than the
first's, all K - 1 others are drawn from those; otherwise from the other members of the same camera.
The draw is without replacement when the pool holds at least K members and with replacement when it
holds fewer (the authors test `len(pool) >= K`, so a pool of exactly K - 1 repeats some too). A
cluster of one member repeats it K times (the reference would emit a short group).
"""

from __future__ import annotations

import numpy as np

from stages.errors import AuxReidError

#: Mixed in with (seed, round) so the batches draw a stream no other stage draws.
_SAMPLER_SALT = 0x5EED_BA7C


def pk_batches(
    labels: np.ndarray,
    cameras: np.ndarray,
    *,
    num_instances: int,
    batch_size: int,
    iterations: int,
    seed: int,
    round: int,
) -> np.ndarray:
    """The batches of one round: P = batch_size / K pseudo identities x K tracklets each.

    Args:
        labels: (n,) pseudo label of each labelled tracklet (noise already removed), >= 0.
        cameras: (n,) camera of each labelled tracklet.
        num_instances: K, tracklets per identity in a batch.
        batch_size: tracklets per batch, a multiple of K.
        iterations: number of batches.
        seed, round: the run's seed and the round trained; different rounds give different batches.

    Returns:
        (iterations, batch_size) int64 row indices into `labels`; batch b holds identity groups of K
        consecutive rows, P distinct identities.

    Raises:
        AuxReidError: fewer identities than a batch needs.
    """
    labels = np.asarray(labels, dtype=np.int64)
    cameras = np.asarray(cameras, dtype=np.int64)
    _validate(labels, cameras, num_instances=num_instances, batch_size=batch_size, iterations=iterations)
    rng = np.random.default_rng([_SAMPLER_SALT, seed, round])
    identities = _identity_schedule(np.unique(labels), batch_size // num_instances, iterations, rng)
    rows = _instances(labels, cameras, identities, num_instances, rng)
    return rows.reshape(iterations, batch_size)


def _validate(labels: np.ndarray, cameras: np.ndarray, *, num_instances: int, batch_size: int, iterations: int) -> None:
    if labels.ndim != 1 or cameras.shape != labels.shape:
        raise ValueError(f"labels {labels.shape} and cameras {cameras.shape} must be two (n,) arrays")
    if num_instances < 1 or batch_size < 1 or batch_size % num_instances:
        raise ValueError(f"batch_size {batch_size} must be a positive multiple of num_instances {num_instances}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0: pass only the labelled tracklets (drop the noise, label -1)")
    identities = np.unique(labels).size
    needed = batch_size // num_instances
    if iterations and identities < needed:
        raise AuxReidError(
            f"the pseudo labels have {identities} clusters but a batch needs {needed} distinct identities "
            f"(train.batch_size {batch_size} / train.instances {num_instances}); lower train.batch_size, "
            "or cluster with a larger eps so that more tracklets are labelled"
        )


def _identity_schedule(identities: np.ndarray, per_batch: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(iterations * P,) identities in batch order: permutations consumed P at a time, remainders dropped."""
    batches_per_permutation = identities.size // per_batch
    permutations = -(-iterations // batches_per_permutation) if iterations else 0
    shuffled = rng.permuted(np.tile(identities, (permutations, 1)), axis=1)
    return shuffled[:, : batches_per_permutation * per_batch].reshape(-1)[: iterations * per_batch]


def _instances(
    labels: np.ndarray, cameras: np.ndarray, picks: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """(len(picks) * K,) rows: K instances per picked identity (module docstring), one cluster at a time.

    Within a cluster all its picks are drawn at once: random keys over the members, the pool (other
    cameras, else the same camera without the first) sorted to the front, so the first `pool` columns
    of the argsort are a random permutation of the pool. Without replacement takes its first K - 1; with
    replacement takes K - 1 uniform positions among the first `pool`.
    """
    out = np.empty((picks.size, k), dtype=np.int64)
    by_label = np.argsort(labels, kind="stable")
    label_starts = np.searchsorted(labels[by_label], np.unique(labels))
    member_lists = dict(zip(np.unique(labels).tolist(), np.split(by_label, label_starts[1:])))
    pick_order = np.argsort(picks, kind="stable")
    picked, pick_starts = np.unique(picks[pick_order], return_index=True)
    for label, slots in zip(picked.tolist(), np.split(pick_order, pick_starts[1:])):
        members = member_lists[label]
        size, count = members.size, slots.size
        first = rng.integers(size, size=count)
        member_cams = cameras[members]
        in_pool = member_cams[None, :] != member_cams[first][:, None]
        same_camera_only = ~in_pool.any(axis=1)
        in_pool[same_camera_only] = True
        in_pool[same_camera_only, first[same_camera_only]] = False
        pool = in_pool.sum(axis=1)
        keys = rng.random((count, size)) + 2.0 * ~in_pool
        shuffled = np.argsort(keys, axis=1)
        positions = np.floor(rng.random((count, k - 1)) * pool[:, None]).astype(np.int64)
        positions[pool >= k] = np.arange(k - 1)  # without replacement: the pool's first K - 1 in random order
        others = np.take_along_axis(shuffled, positions, axis=1)
        others = np.where((pool == 0)[:, None], first[:, None], others)
        out[slots] = members[np.concatenate([first[:, None], others], axis=1)]
    return out.reshape(-1)


def shard(batches: np.ndarray, *, rank: int, world: int, num_instances: int) -> np.ndarray:
    """This DDP rank's contiguous 1/world slice of every batch; identity groups stay on one rank.

    Args:
        batches: (iterations, batch_size, ...) from `pk_batches` (or per-instance data aligned with
            it, such as clip frame indices); sliced along axis 1.
        rank: this process's rank, 0 <= rank < world.
        world: number of processes.
        num_instances: K, the size of an identity group.

    Returns:
        (iterations, batch_size / world, ...), a view.

    Raises:
        AuxReidError: batch_size is not a multiple of world x K.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside 0..{world - 1} (world size {world})")
    size = batches.shape[1]
    if size % (world * num_instances):
        raise AuxReidError(
            f"train.batch_size {size} cannot be split over {world} processes in whole identity groups of "
            f"train.instances {num_instances}; make train.batch_size a multiple of {world * num_instances}"
        )
    part = size // world
    return batches[:, rank * part : (rank + 1) * part]


def clip_starts(num_frames: np.ndarray, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of one random run of `seq_len` consecutive frames per instance.

    The start is uniform in [0, T - L]; a tracklet shorter than L cycles its frames 0, 1, ..., T-1,
    0, 1, ... (as extraction's cluster mode does, `stages.model.embed.cluster_sample`).

    Args:
        num_frames: (m,) frame count T of each instance's tracklet, all >= 1.
        seq_len: L, frames per run.
        rng: draws one uniform per instance, in order.

    Returns:
        (m, L) int64 indices into each tracklet's frames.
    """
    num_frames = np.asarray(num_frames, dtype=np.int64)
    uniform = rng.random(num_frames.size)
    starts = np.floor(uniform * (np.maximum(num_frames - seq_len, 0) + 1)).astype(np.int64)
    return (starts[:, None] + np.arange(seq_len, dtype=np.int64)[None, :]) % num_frames[:, None]

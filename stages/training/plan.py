"""The plan of one round, before any network exists: which tracklets train, their pseudo labels, the batch
size and iterations, and every batch (P x K rows), all fixed by the clusters, the config and (seed, round)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.artifacts.h5 import Artifact
from stages.artifacts.readers import clusters_train_rows
from stages.config import MAX_ROUND_ITERATIONS, Config
from stages.data.base import DatasetSplit, Tracklet
from stages.data.sampler import pk_batches
from stages.errors import AuxReidError
from stages.progress import Progress
from stages.training.optim import round_iterations


@dataclass(frozen=True)
class RoundPlan:
    """What one round trains on.

    Attributes:
        round: the round trained.
        tracklets: the labelled train tracklets (label != -1), in clusters.h5 order.
        labels: (n,) their pseudo labels; cameras: (n,) their cameras.
        true_ids: (n,) their dataset ids when all are known (inspection only), else None.
        num_clusters: C, the classifier rows of the round.
        iterations: steps of the round.
        batches: (iterations, batch_size) rows into `tracklets`, P identities x K instances each.
    """

    round: int
    tracklets: tuple[Tracklet, ...]
    labels: np.ndarray
    cameras: np.ndarray
    true_ids: np.ndarray | None
    num_clusters: int
    iterations: int
    batches: np.ndarray


def round_batch_size(batch_size: int, instances: int, *, num_clusters: int, world: int, round: int,
                     progress: Progress) -> int:
    """The round's batch: P = batch_size / instances identities, fewer (with a warning) when there are fewer clusters.

    Early rounds of a weak model, or data with few tracklets per person, can leave fewer clusters than
    a batch has identities; training on all of them beats stopping the loop. Under DDP the identities
    still split evenly over the ranks.
    """
    wanted = batch_size // instances
    if num_clusters >= wanted:
        return batch_size
    usable = num_clusters - num_clusters % world
    if usable < max(2, world):
        raise AuxReidError(
            f"round {round} has {num_clusters} cluster(s); a batch needs at least {max(2, world)} pseudo identities "
            "(the triplet losses need negatives); cluster with a larger eps or a smaller cluster.min_samples"
        )
    progress.warn(f"round {round} has {num_clusters} clusters, fewer than the {wanted} identities of a batch "
                  f"(train.batch_size {batch_size} / train.instances {instances}); batches hold {usable} x {instances}")
    return usable * instances


def plan_round(clusters: Artifact, dataset: DatasetSplit, config: Config, *, round: int, world: int,
               progress: Progress) -> RoundPlan:
    """The RoundPlan of `round` from its clusters.h5, whose rows must be the dataset's train tracklets.

    Raises:
        AuxReidError: the rows are not each train tracklet once (`clusters_train_rows`), or too few clusters.
    """
    train = config.train
    labels_all = clusters["labels"].astype(np.int64)
    tracklet_index = clusters_train_rows(clusters, train_tracklets=len(dataset.train), dataset=dataset.name)
    labelled = np.flatnonzero(labels_all >= 0)
    tracklets = tuple(dataset.train[i] for i in tracklet_index[labelled])
    labels = labels_all[labelled]
    cameras = np.array([t.camera for t in tracklets], dtype=np.int64)
    ids = np.array([t.person_id for t in tracklets], dtype=np.int64)
    num_clusters = int(clusters["centroids"].shape[0])
    iterations = round_iterations(train, num_clusters=num_clusters)
    if iterations > MAX_ROUND_ITERATIONS:
        raise AuxReidError(f"round {round}: train.iters_multiplier {train.iters_multiplier:g} x {num_clusters} clusters asks "
                           f"for {iterations} iterations, more than the {MAX_ROUND_ITERATIONS} a round may train; lower "
                           "train.iters_multiplier")
    batch_size = round_batch_size(train.batch_size, train.instances, num_clusters=num_clusters, world=world,
                                  round=round, progress=progress)
    batches = pk_batches(labels, cameras, num_instances=train.instances, batch_size=batch_size,
                         iterations=iterations, seed=config.seed, round=round)
    return RoundPlan(round=round, tracklets=tracklets, labels=labels, cameras=cameras,
                     true_ids=ids if ids.size and (ids >= 0).all() else None, num_clusters=num_clusters,
                     iterations=iterations, batches=batches)

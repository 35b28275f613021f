"""stages/training/plan.py: the round's labelled rows, batch size, iterations and batches, before any network."""

from __future__ import annotations

import numpy as np
import pytest

from stages.artifacts.h5 import Artifact, Provenance
from stages.config import build_config
from stages.data.base import DatasetSplit, Tracklet
from stages.errors import AuxReidError
from stages.progress import RecordingProgress
from stages.training.plan import plan_round, round_batch_size


def _dataset(n: int) -> DatasetSplit:
    train = tuple(Tracklet(frames=(f"t{i}.jpg",), person_id=i // 3, camera=i % 2, times=None, name=f"t{i}")
                  for i in range(n))
    return DatasetSplit(name="toy", root="/", train=train, query=(), gallery=(), has_times=False, num_cameras=2)


def _clusters(labels: np.ndarray, count: int) -> Artifact:
    data = {"labels": labels, "centroids": np.zeros((count, 4), np.float32),
            "tracklet_index": np.arange(len(labels))}
    return Artifact(path=None, provenance=Provenance("clusters", 1, "toy", "f", 1), data=data, attrs={})


def test_plan_keeps_the_labelled_rows_and_draws_the_round_batches():
    labels = np.array([0, 0, 0, -1, 1, 1, 1, -1, 2, 2, 2, 2])
    config = build_config(({"seed": 4, "train": {"batch_size": 6, "instances": 2, "iters_multiplier": 0,
                                                 "fixed_iters": 5}}, "t"))
    plan = plan_round(_clusters(labels, 3), _dataset(12), config, round=2, world=1, progress=RecordingProgress())
    assert [t.name for t in plan.tracklets] == [f"t{i}" for i in np.flatnonzero(labels >= 0)]
    np.testing.assert_array_equal(plan.labels, labels[labels >= 0])
    np.testing.assert_array_equal(plan.cameras, [t.camera for t in plan.tracklets])
    np.testing.assert_array_equal(plan.true_ids, [t.person_id for t in plan.tracklets])
    assert (plan.round, plan.num_clusters, plan.iterations, plan.batches.shape) == (2, 3, 5, (5, 6))
    again = plan_round(_clusters(labels, 3), _dataset(12), config, round=2, world=1, progress=RecordingProgress())
    np.testing.assert_array_equal(plan.batches, again.batches)  # (seed, round) fix the batches


def test_round_batch_size_shrinks_to_the_clusters_with_a_warning_and_refuses_fewer_than_two():
    progress = RecordingProgress()
    assert round_batch_size(64, 4, num_clusters=20, world=1, round=1, progress=progress) == 64
    assert round_batch_size(64, 4, num_clusters=9, world=2, round=3, progress=progress) == 32  # 8 identities, 2 ranks
    assert progress.warnings == ["round 3 has 9 clusters, fewer than the 16 identities of a batch (train.batch_size 64 "
                                 "/ train.instances 4); batches hold 8 x 4"]
    with pytest.raises(AuxReidError, match=r"^round 1 has 1 cluster\(s\); a batch needs at least 2 pseudo identities"):
        round_batch_size(64, 4, num_clusters=1, world=1, round=1, progress=progress)


def test_a_round_asking_for_more_than_the_iteration_cap_is_refused():
    """The multiplier's own bound (<= 100) times many clusters can still ask for too much: the plan refuses it."""
    labels = np.repeat(np.arange(2000), 2)
    config = build_config(({"train": {"batch_size": 4, "instances": 2, "iters_multiplier": 60}}, "t"))
    with pytest.raises(AuxReidError, match=r"^round 3: train.iters_multiplier 60 x 2000 clusters asks for 120000 "
                                           r"iterations, more than the 100000 a round may train; lower "
                                           r"train.iters_multiplier$"):
        plan_round(_clusters(labels, 2000), _dataset(4000), config, round=3, world=1, progress=RecordingProgress())

"""P x K batches of pseudo identities: distinct identities, cross-camera instances, resumable, shardable."""

import numpy as np
import pytest

from stages.data.sampler import clip_starts, pk_batches, shard
from stages.errors import AuxReidError


def _toy(seed=0, clusters=10, size=(2, 12)):
    """Labels of `clusters` clusters of random sizes, cameras 0..3, rows shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(clusters), rng.integers(*size, size=clusters))
    rng.shuffle(labels)
    return labels, rng.integers(0, 4, size=labels.size)


def test_pk_batches_distinct_identities_times_k():
    labels, cameras = _toy()
    batches = pk_batches(labels, cameras, num_instances=4, batch_size=12, iterations=7, seed=1, round=2)
    assert batches.shape == (7, 12) and batches.dtype == np.int64
    assert batches.min() >= 0 and batches.max() < labels.size
    for batch in batches:
        groups = labels[batch].reshape(3, 4)
        assert (groups == groups[:, :1]).all()  # K consecutive rows share one identity
        assert len(set(groups[:, 0].tolist())) == 3


def test_pk_batches_identities_follow_permutations():
    labels, cameras = _toy(clusters=10)
    batches = pk_batches(labels, cameras, num_instances=2, batch_size=6, iterations=9, seed=0, round=0)
    identities = labels[batches[:, ::2]]  # (9, P = 3)
    # 10 identities -> 3 batches per permutation, the 10th identity of each permutation dropped
    for p in range(3):
        used = identities[3 * p : 3 * p + 3].reshape(-1)
        assert len(set(used.tolist())) == 9


def test_pk_batches_draws_all_others_from_other_cameras():
    """The authors' rule: K - 1 from the other cameras whenever there are any, even with repeats."""
    # cluster 0: rows 0-2 on camera 0, rows 3-5 on camera 1; cluster 1: rows 6-10, one camera
    labels = np.array([0] * 6 + [1] * 5)
    cameras = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    batches = pk_batches(labels, cameras, num_instances=4, batch_size=4, iterations=200, seed=3, round=1)
    cluster0 = batches[labels[batches[:, 0]] == 0]
    others = cluster0[:, 1:]
    assert (cameras[others] != cameras[cluster0[:, :1]]).all()  # never the first's camera
    # a pool of 3 < K = 4 is drawn with replacement: repeats happen, and all 3 appear
    assert any(len(set(g.tolist())) < 3 for g in others) and set(others.reshape(-1).tolist()) == {0, 1, 2, 3, 4, 5}
    cluster1 = batches[labels[batches[:, 0]] == 1]
    for group in cluster1:  # one camera: the 4 others of the same camera are >= K, drawn without replacement
        assert len(set(group.tolist())) == 4 and set(group.tolist()) <= {6, 7, 8, 9, 10}


def test_pk_batches_one_other_camera_member_fills_every_slot():
    labels = np.zeros(5, dtype=np.int64)
    cameras = np.array([0, 0, 0, 0, 1])
    batches = pk_batches(labels, cameras, num_instances=3, batch_size=3, iterations=60, seed=0, round=0)
    for first, second, third in batches:
        if first != 4:
            assert second == third == 4  # the only other-camera member, twice
        else:
            assert {second, third} <= {0, 1, 2, 3}  # the first is alone on camera 1: all four others are its pool
    assert any(group[0] == 4 for group in batches)


def test_pk_batches_pool_of_at_least_k_is_drawn_without_replacement():
    labels = np.zeros(9, dtype=np.int64)
    cameras = np.array([0, 1, 1, 1, 1, 2, 2, 2, 2])
    batches = pk_batches(labels, cameras, num_instances=4, batch_size=4, iterations=100, seed=2, round=0)
    assert all(len(set(g.tolist())) == 4 for g in batches)  # every pool has >= 4 other-camera members


def test_pk_batches_small_clusters_with_replacement():
    labels = np.array([0, 0, 1, 2, 2, 2])
    cameras = np.array([0, 1, 0, 0, 1, 2])
    batches = pk_batches(labels, cameras, num_instances=4, batch_size=4, iterations=30, seed=5, round=0)
    for group in batches:
        members = np.flatnonzero(labels == labels[group[0]])
        assert set(group.tolist()) <= set(members.tolist())
        if labels[group[0]] == 0:  # two members on two cameras: the other one three times
            assert sorted(group.tolist()) in ([0, 1, 1, 1], [0, 0, 0, 1])
    assert any(g.tolist() == [2, 2, 2, 2] for g in batches)  # one member: repeated K times


def test_pk_batches_match_the_authors_sampler_in_distribution():
    """How often each member follows a given first, against the reference rule's exact probabilities."""
    labels = np.zeros(6, dtype=np.int64)
    cameras = np.array([0, 0, 1, 1, 1, 2])
    batches = pk_batches(labels, cameras, num_instances=4, batch_size=4, iterations=6000, seed=7, round=0)
    first_on_cam0 = batches[cameras[batches[:, 0]] == 0]
    counts = np.bincount(first_on_cam0[:, 1:].reshape(-1), minlength=6) / first_on_cam0[:, 1:].size
    # pool = the 4 members on cameras 1, 2 (>= K): without replacement, each in 3 of the 3 slots' 4 -> 1/4 each
    np.testing.assert_allclose(counts, [0, 0, 0.25, 0.25, 0.25, 0.25], atol=0.02)
    first_on_cam2 = batches[batches[:, 0] == 5]
    assert (first_on_cam2[:, 1:] <= 4).all()


def test_pk_batches_deterministic_per_seed_and_round():
    labels, cameras = _toy()
    args = dict(num_instances=4, batch_size=8, iterations=10)
    a = pk_batches(labels, cameras, seed=1, round=3, **args)
    np.testing.assert_array_equal(a, pk_batches(labels, cameras, seed=1, round=3, **args))
    assert not np.array_equal(a, pk_batches(labels, cameras, seed=1, round=4, **args))
    assert not np.array_equal(a, pk_batches(labels, cameras, seed=2, round=3, **args))


def test_pk_batches_does_not_modify_inputs():
    labels, cameras = _toy()
    before = labels.copy(), cameras.copy()
    pk_batches(labels, cameras, num_instances=4, batch_size=8, iterations=3, seed=0, round=0)
    np.testing.assert_array_equal(labels, before[0])
    np.testing.assert_array_equal(cameras, before[1])


def test_pk_batches_too_few_clusters_names_the_settings():
    labels = np.array([0, 0, 1, 1])
    with pytest.raises(AuxReidError, match=r"^the pseudo labels have 2 clusters but a batch needs 4 distinct"):
        pk_batches(labels, labels, num_instances=2, batch_size=8, iterations=1, seed=0, round=0)
    with pytest.raises(ValueError, match="multiple of num_instances"):
        pk_batches(labels, labels, num_instances=3, batch_size=8, iterations=1, seed=0, round=0)


def test_shard_covers_batch_and_keeps_groups_whole():
    labels, cameras = _toy()
    batches = pk_batches(labels, cameras, num_instances=2, batch_size=8, iterations=5, seed=0, round=0)
    parts = [shard(batches, rank=r, world=2, num_instances=2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), batches)
    for part in parts:
        groups = labels[part].reshape(5, 2, 2)
        assert (groups == groups[..., :1]).all()
    with pytest.raises(AuxReidError, match="make train.batch_size a multiple of 6"):
        shard(batches, rank=0, world=3, num_instances=2)
    with pytest.raises(ValueError, match="rank 2 is outside 0..1"):
        shard(batches, rank=2, world=2, num_instances=2)


def test_clip_starts_runs_within_bounds():
    num_frames = np.array([4, 10, 7, 100])
    frames = clip_starts(num_frames, 4, np.random.default_rng(0))
    assert frames.shape == (4, 4) and frames.dtype == np.int64
    np.testing.assert_array_equal(np.diff(frames, axis=1), 1)
    assert (frames[:, 0] >= 0).all() and (frames[:, -1] < num_frames).all()
    np.testing.assert_array_equal(frames[0], [0, 1, 2, 3])
    starts = clip_starts(np.full(2000, 6), 4, np.random.default_rng(1))[:, 0]
    assert set(starts.tolist()) == {0, 1, 2}


def test_clip_starts_cycles_short_tracklets():
    frames = clip_starts(np.array([3, 1]), 5, np.random.default_rng(0))
    np.testing.assert_array_equal(frames, [[0, 1, 2, 0, 1], [0, 0, 0, 0, 0]])

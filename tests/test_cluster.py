"""cluster stage: centroids, RLSCE map, quality scores, eps handling, zero clusters, the stage entry."""

import numpy as np
import pytest
from scipy import sparse

from stages.artifacts import Artifact, Provenance
from stages.cluster import cluster_centroids, require_clusters, rlsce_map, zero_cluster_message
from stages.cluster_montage import frame_picks, montage_rows
from stages.cluster_quality import cluster_sizes, noise_ratio, quality, size_histogram
from stages.errors import AuxReidError


def test_cluster_centroids_mean_of_members_ignoring_noise():
    features = np.array([[1, 0], [3, 0], [0, 2], [9, 9], [0, 4]], dtype=np.float32)
    labels = np.array([0, 0, 1, -1, 1])
    np.testing.assert_allclose(cluster_centroids(features, labels), [[2, 0], [0, 3]])
    assert cluster_centroids(features, labels).dtype == np.float32
    assert cluster_centroids(features, np.full(5, -1)).shape == (0, 2)


def test_rlsce_map_ranks_by_jaccard_then_euclidean_and_excludes_self():
    centroids = np.array([[0.0], [1.0], [2.0], [10.0], [4.0]])
    # Sparse support: row 0 knows only cluster 3 (0.2) and 1 (0.5); every other entry is 1.0.
    jaccard = sparse.csr_matrix((np.array([0.0, 0.2, 0.5]), (np.array([0, 0, 0]), np.array([0, 3, 1]))), shape=(5, 5))
    nearest = rlsce_map(centroids, jaccard, k=3)
    assert nearest.shape == (5, 3)
    np.testing.assert_array_equal(nearest[0], [3, 1, 2])  # 3 and 1 from the support, then 2 by distance
    np.testing.assert_array_equal(nearest[4], [2, 1, 0])  # no support: plain distance order
    assert all(i not in row for i, row in enumerate(nearest))


def test_rlsce_map_caps_k_at_clusters_minus_one():
    centroids = np.array([[0.0], [1.0], [3.0]])
    empty = sparse.csr_matrix((3, 3))
    np.testing.assert_array_equal(rlsce_map(centroids, empty, k=60), [[1, 2], [0, 2], [1, 0]])
    assert rlsce_map(centroids[:1], sparse.csr_matrix((1, 1)), k=60).shape == (1, 0)


def test_quality_scores_over_non_noise_tracklets():
    labels = np.array([0, 0, 0, 1, 1, -1, -1])
    ids = np.array([5, 5, 6, 6, 6, 5, 7])
    scores = quality(labels, ids)
    assert scores["purity"] == pytest.approx(4 / 5)
    # Same-cluster pairs: 3 + 1 = 4, of which same id: (0,1) and (3,4) -> 2. Same-id pairs: 1 + 3 = 4.
    assert scores["pairwise_precision"] == pytest.approx(0.5)
    assert scores["pairwise_recall"] == pytest.approx(0.5)
    perfect = quality(np.array([0, 0, 1, 1, -1]), np.array([3, 3, 4, 4, 3]))
    assert perfect["nmi"] == pytest.approx(1.0) and perfect["ari"] == pytest.approx(1.0)
    assert np.isnan(quality(np.full(3, -1), np.arange(3))["purity"])


def test_cluster_sizes_noise_ratio_and_histogram():
    labels = np.array([0, 0, 1, -1, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(cluster_sizes(labels), [2, 1, 5])
    assert noise_ratio(labels) == pytest.approx(1 / 9)
    assert size_histogram(np.array([2, 1, 5])) == [("1", 1), ("2", 1), ("5-8", 1)]


def _artifact(num_clusters, eps=0.25):
    provenance = Provenance(schema="clusters", schema_version=1, dataset="synth", fingerprint="f", round=1)
    data = {"labels": np.full(4, -1), "centroids": np.zeros((num_clusters, 2), np.float32)}
    return Artifact(path="run/round_001/clusters.h5", provenance=provenance, data=data,
                    attrs={"eps": eps, "num_clusters": num_clusters})


def test_require_clusters_refuses_zero_clusters_with_the_stage_message():
    with pytest.raises(AuxReidError) as info:
        require_clusters(_artifact(0))
    assert str(info.value) == zero_cluster_message("run/round_001/clusters.h5", 0.25)
    assert str(info.value) == (
        "run/round_001/clusters.h5 has no clusters: every tracklet is noise at eps=0.25; raise cluster.eps "
        "(e.g. --set cluster.eps=0.6) or use --set cluster.eps_mode=adaptive, then re-run `auxreid cluster`"
    )
    require_clusters(_artifact(3))


def test_montage_rows_and_frame_picks():
    np.testing.assert_array_equal(montage_rows(np.array([1, 0, 1, -1, 1]), 1), [0, 2, 4])
    with pytest.raises(AuxReidError, match=r"cluster 2 does not exist; this file has clusters 0\.\.1"):
        montage_rows(np.array([1, 0]), 2)
    np.testing.assert_array_equal(frame_picks(11, count=6), [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(frame_picks(3, count=6), [0, 1, 2])

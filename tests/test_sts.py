"""Tests of stages/auxinfo/sts.py: confident pairs, gap histograms, the transit model, on a simulated network."""

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import roc_auc_score

from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import (
    estimate_transit,
    gap_histograms,
    group_pairs,
    histogram_edges,
    mutual_knn_pairs,
    transit_from_pairs,
)
from stages.auxinfo.transit import FALLBACK_FLAT, FALLBACK_OWN, FALLBACK_POOLED, oriented_gaps

CAMERAS = 4
BIN = 4.0


def _network(seed: int, *, ids: int = 150, duration: float = 3600.0, noise: float = 1.0, dim: int = 32):
    """Identities walking camera to camera with known mean transit times; features = id + noise.

    Returns:
        dict of camera, start, end, person (n,), features (n, dim) and transit (C, C) mean seconds.
    """
    rng = np.random.default_rng(seed)
    transit = rng.uniform(20, 160, (CAMERAS, CAMERAS))
    embedding = rng.normal(size=(ids, dim))
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    camera, start, end, person = [], [], [], []
    for pid in range(ids):
        t = rng.uniform(0, duration)
        cam = rng.integers(CAMERAS)
        for _ in range(rng.integers(2, 5)):
            dwell = rng.uniform(4, 15)
            camera.append(cam), start.append(t), end.append(t + dwell), person.append(pid)
            nxt = (cam + rng.integers(1, CAMERAS)) % CAMERAS
            t += dwell + rng.normal(transit[cam, nxt], 0.05 * transit[cam, nxt])
            cam = nxt
    person = np.array(person)
    features = embedding[person] + noise * rng.normal(size=(person.size, dim)) / np.sqrt(dim)
    return {
        "camera": np.array(camera),
        "start": np.array(start),
        "end": np.array(end),
        "person": person,
        "features": features.astype(np.float32),
        "transit": transit,
    }


def _cross_camera_auc(model, net) -> float:
    n = net["camera"].size
    i, j = np.triu_indices(n, k=1)
    cross = net["camera"][i] != net["camera"][j]
    i, j = i[cross], j[cross]
    spans = Spans(net["camera"], net["start"], net["end"])
    p = model.probability(spans.take(i), spans.take(j))
    return roc_auc_score(net["person"][i] == net["person"][j], p)


def _model(pairs, net, *, source: str):
    return transit_from_pairs(
        pairs, Spans(net["camera"], net["start"], net["end"]), num_cameras=CAMERAS, bin_seconds=BIN,
        max_gap_seconds=600.0, sigma_bins=2.0, min_pairs=5, source=source,
    )


@pytest.fixture(scope="module")
def network():
    return _network(0)


def test_histogram_edges_symmetric_around_zero():
    edges = histogram_edges(bin_seconds=2.0, max_gap_seconds=5.0)
    assert edges.tolist() == [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0]


def test_mutual_knn_pairs_lone_camera_and_empty_input():
    assert mutual_knn_pairs(np.zeros((0, 4)), np.zeros(0, dtype=int), k=3).shape == (0, 2)
    pairs = mutual_knn_pairs(np.eye(3, dtype=np.float32), np.array([0, 1, 1]), k=5)
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]]


def test_group_pairs_joins_rows_sharing_a_label():
    pairs = group_pairs(np.array([3, -1, 3, 0, 3, 0, -1]))
    assert pairs.tolist() == [[0, 2], [0, 4], [2, 4], [3, 5]]


def test_mutual_knn_pairs_cross_and_same_camera():
    features = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [0.95, -0.3]], dtype=np.float32)
    camera = np.array([0, 1, 0, 1, 0])
    original = features.copy()
    pairs = mutual_knn_pairs(features, camera, k=1, block_rows=2)
    # cross: 0<->1 and 2<->3 are mutual; 4's cross neighbour 1 prefers 0.
    # same camera: 0<->4 (2 is nobody's nearest); 1<->3 are each other's only camera-1 neighbour.
    assert pairs.tolist() == [[0, 1], [0, 4], [1, 3], [2, 3]]
    np.testing.assert_array_equal(features, original)


def test_gap_histograms_orients_pairs_and_drops_same_camera_overlaps():
    camera = np.array([0, 1, 0, 0])
    start = np.array([100.0, 0.0, 103.0, 150.0])
    end = np.array([110.0, 5.0, 120.0, 160.0])
    edges = histogram_edges(bin_seconds=10.0, max_gap_seconds=200.0)
    pairs = np.array([[0, 1], [0, 2], [0, 3]])
    counts = gap_histograms(pairs, Spans(camera, start, end), edges=edges, num_cameras=2)
    assert counts.sum() == 2  # pair (0, 2) overlaps in camera 0: two people, dropped
    assert counts[1, 0, np.searchsorted(edges, 95.0) - 1] == 1  # camera 1 (ends 5 s) -> camera 0 (starts 100 s)
    assert counts[0, 0, np.searchsorted(edges, 40.0, side="right") - 1] == 1  # re-appearance 110 s -> 150 s


def test_estimate_transit_scales_to_peak_and_falls_back():
    edges = histogram_edges(bin_seconds=1.0, max_gap_seconds=5.0)
    counts = np.zeros((3, 3, 10), dtype=np.int64)
    counts[0, 1, 7] = 4
    counts[0, 1, 8] = 2
    counts[1, 2, 6] = 1
    model = estimate_transit(counts, edges=edges, sigma_bins=0.0, min_pairs=3, source="oracle")
    np.testing.assert_allclose(model.density[0, 1, 6:9], [0.0, 1.0, 0.5])
    assert model.fallback[0, 1] == FALLBACK_OWN
    assert model.fallback[1, 2] == FALLBACK_POOLED  # 1 pair < 3: pooled cross-camera histogram (7 pairs)
    np.testing.assert_allclose(model.density[1, 2, 6:9], [0.25, 1.0, 0.5])
    assert model.fallback[1, 1] == FALLBACK_FLAT and model.density[1, 1].min() == 1.0  # no same-camera data
    assert model.support[0, 1] == 6


def test_estimate_transit_smoothing_keeps_peak_and_spreads_mass():
    edges = histogram_edges(bin_seconds=1.0, max_gap_seconds=10.0)
    counts = np.zeros((1, 1, 20), dtype=np.int64)
    counts[0, 0, 14] = 10
    model = estimate_transit(counts, edges=edges, sigma_bins=2.0, min_pairs=1, source="oracle")
    row = model.density[0, 0]
    assert row.argmax() == 14 and row[14] == 1.0
    assert 0.5 < row[12] < 0.7  # exp(-2^2 / (2 * 2^2)) = 0.607


def test_transit_from_pairs_oracle_peaks_within_one_bin(network):
    model = _model(group_pairs(network["person"]), network, source="oracle")
    centers = (model.edges[:-1] + model.edges[1:]) / 2
    off = ~np.eye(CAMERAS, dtype=bool)
    assert (model.fallback[off] == FALLBACK_OWN).all()
    # direct transits dominate each pair's histogram; their peak is the simulated mean gap
    peaks = centers[model.density.argmax(axis=2)][off]
    assert np.abs(peaks - network["transit"][off]).max() <= BIN


def test_mutual_knn_transit_separates_same_id_pairs(network):
    pairs = mutual_knn_pairs(network["features"], network["camera"], k=3)
    precision = (network["person"][pairs[:, 0]] == network["person"][pairs[:, 1]]).mean()
    assert 0.2 < precision < 0.95  # the appearance source is imperfect on purpose
    auc = _cross_camera_auc(_model(pairs, network, source="appearance"), network)
    assert auc >= 0.8


def test_cluster_transit_at_least_as_good_as_mutual_knn(network):
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=0.8, metric="cosine", linkage="average"
    ).fit_predict(network["features"])
    knn_auc = _cross_camera_auc(
        _model(mutual_knn_pairs(network["features"], network["camera"], k=3), network, source="appearance"), network
    )
    cluster_auc = _cross_camera_auc(_model(group_pairs(labels), network, source="clusters"), network)
    assert cluster_auc >= knn_auc - 0.01


def test_transit_probability_symmetric(network):
    model = _model(group_pairs(network["person"]), network, source="oracle")
    spans = Spans(network["camera"], network["start"], network["end"])
    s, e = spans.start, spans.end
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(spans), (2, 500))
    np.testing.assert_array_equal(model.probability(spans.take(i), spans.take(j)),
                                  model.probability(spans.take(j), spans.take(i)))
    cam_from, cam_to, gap = oriented_gaps(spans.take(i), spans.take(j))
    assert (gap >= -(e - s).max()).all()

"""cluster stage: centroids, RLSCE map, quality scores, eps handling, zero clusters, the stage entry."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from stages.artifacts.h5 import Artifact, Provenance, make_provenance, read_artifact, write_artifact
from stages.artifacts.schemas import AUX, CLUSTERS, FEATURES
from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import group_pairs, transit_from_pairs
from stages.auxinfo.toc import overlap_pairs
from stages.cluster import cluster_features, cluster_to_file
from stages.clustering.centroids import cluster_centroids, rlsce_map
from stages.clustering.diagnosis import require_clusters, zero_cluster_message
from stages.clustering.icdbscan import cannot_link_violations
from stages.clustering.quality import cluster_sizes, noise_ratio, quality, size_histogram
from stages.config import Config
from stages.errors import AuxReidError
from stages.progress import RecordingProgress
from stages.views.montage import frame_picks, montage_rows


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


def test_rlsce_map_ties_jaccard_zeros_within_float_noise():
    # 1 and 2 both have d = 0 to cluster 0 in exact arithmetic; 2 came out as 3e-7 but is nearer in Euclid
    centroids = np.array([[0.0], [5.0], [1.0], [9.0]])
    jaccard = sparse.csr_matrix((np.array([0.0, 3e-7, 0.4]), (np.array([0, 0, 0]), np.array([1, 2, 3]))), shape=(4, 4))
    np.testing.assert_array_equal(rlsce_map(centroids, jaccard, k=3)[0], [2, 1, 3])


def test_rlsce_map_caps_k_at_clusters_minus_one():
    centroids = np.array([[0.0], [1.0], [3.0]])
    empty = sparse.csr_matrix((3, 3))
    np.testing.assert_array_equal(rlsce_map(centroids, empty, k=60), [[1, 2], [0, 2], [1, 0]])
    assert rlsce_map(centroids[:1], sparse.csr_matrix((1, 1)), k=60).shape == (1, 0)


def test_rlsce_map_equals_a_full_sort_by_jaccard_euclidean_and_index_with_ties():
    """Only each row's candidates up to its K-th Jaccard value are sorted; the map must equal ranking every
    cluster by (Jaccard, squared Euclidean, index), with rows of many ties, of few stored pairs and of none."""
    rng = np.random.default_rng(3)
    count = 300
    centroids = rng.integers(0, 4, size=(count, 2)).astype(np.float64)  # many equal Euclidean distances
    rows, cols = rng.integers(0, count, 6000), rng.integers(0, count, 6000)
    values = rng.choice([0.0, 1e-7, 0.3, 0.5, 0.5, 0.9], size=6000)
    keep = (rows >= 40) & (rows != cols)  # the first 40 rows store nothing
    jaccard = sparse.coo_matrix((values[keep], (rows[keep], cols[keep])), shape=(count, count)).tocsr()
    jaccard.sum_duplicates()
    jaccard.data = np.minimum(jaccard.data, 0.95)
    dense = np.ones((count, count))
    coo = jaccard.tocoo()
    dense[coo.row, coo.col] = coo.data
    dense[dense <= 1e-6] = 0.0
    np.fill_diagonal(dense, np.inf)
    norms = (centroids**2).sum(axis=1)
    euclid = norms[:, None] + norms[None, :] - 2.0 * centroids @ centroids.T
    for k in (1, 7, 60):
        expected = np.lexsort((np.broadcast_to(np.arange(count), dense.shape), euclid, dense), axis=-1)[:, :k]
        np.testing.assert_array_equal(rlsce_map(centroids, jaccard, k=k), expected)


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


def test_quality_nmi_all_counts_noise_as_singletons_and_rewards_recovering_it():
    ids = np.array([3, 3, 3, 4, 4, 4])
    from sklearn.metrics import normalized_mutual_info_score

    few = quality(np.array([0, 0, -1, 1, 1, -1]), ids)
    assert few["nmi"] == pytest.approx(1.0)
    assert few["nmi_all"] == pytest.approx(normalized_mutual_info_score(ids, [0, 0, 2, 1, 1, 3]))
    more = quality(np.array([0, 0, 0, 1, 1, -1]), ids)
    assert few["nmi_all"] < more["nmi_all"] < quality(np.array([0, 0, 0, 1, 1, 1]), ids)["nmi_all"] == pytest.approx(1.0)


def test_cluster_sizes_noise_ratio_and_histogram():
    labels = np.array([0, 0, 1, -1, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(cluster_sizes(labels), [2, 1, 5])
    assert noise_ratio(labels) == pytest.approx(1 / 9)
    assert size_histogram(np.array([2, 1, 5])) == [("1", 1), ("2", 1), ("5-8", 1)]


def _artifact(num_clusters, eps=0.25, **attrs):
    provenance = Provenance(schema="clusters", schema_version=1, dataset="synth", fingerprint="f", round=1)
    data = {"labels": np.full(4, -1), "centroids": np.zeros((num_clusters, 2), np.float32)}
    return Artifact(path="run/round_001/clusters.h5", provenance=provenance, data=data,
                    attrs={"eps": eps, "num_clusters": num_clusters, **attrs})


def test_require_clusters_refuses_zero_clusters_with_the_stage_message():
    with pytest.raises(AuxReidError) as info:
        require_clusters(_artifact(0))
    assert str(info.value) == zero_cluster_message("run/round_001/clusters.h5", 0.25)
    assert str(info.value) == (
        "run/round_001/clusters.h5 has no clusters: every tracklet is noise at eps=0.25; raise cluster.eps above "
        "0.25 (fixed eps) or cluster.rho (adaptive eps), or lower cluster.min_samples, then re-run `auxreid cluster`"
    )
    with pytest.raises(AuxReidError) as info:
        require_clusters(_artifact(0, eps=0.6, eps_source="fixed"))
    assert str(info.value) == (
        "run/round_001/clusters.h5 has no clusters: every tracklet is noise at eps=0.6; raise cluster.eps above 0.6 "
        "or use --set cluster.eps_mode=adaptive, then re-run `auxreid cluster`"
    )
    require_clusters(_artifact(3))


@pytest.mark.parametrize("source, hint", [
    ("adaptive", "raise cluster.rho (a larger fraction of the distances gives a larger eps) or lower cluster.min_samples"),
    ("adaptive, from r1/clusters.h5", "this eps is round 1's (adaptive, from r1/clusters.h5): re-cluster round 1 with a "
                                      "larger cluster.rho, or use --set cluster.eps_mode=fixed with cluster.eps above 0.6"),
])
def test_zero_cluster_message_never_proposes_the_eps_just_used(source, hint):
    message = zero_cluster_message("c.h5", 0.6, source)
    assert message == f"c.h5 has no clusters: every tracklet is noise at eps=0.6; {hint}, then re-run `auxreid cluster`"
    assert "cluster.eps=0.6" not in message


def test_montage_rows_and_frame_picks():
    np.testing.assert_array_equal(montage_rows(np.array([1, 0, 1, -1, 1]), 1), [0, 2, 4])
    with pytest.raises(AuxReidError, match=r"cluster 2 does not exist; this file has clusters 0\.\.1"):
        montage_rows(np.array([1, 0]), 2)
    np.testing.assert_array_equal(frame_picks(11, count=6), [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(frame_picks(3, count=6), [0, 1, 2])


# --- the stage entry, on features built from synthetic truth + noise ----------------------------------


FINGERPRINT = "synthfp"


def synthetic_truth(*, people=30, per_person=6, dim=32, noise=0.35, seed=0):
    """Person ids, cameras and non-overlapping per-person spans, and noisy features around per-person centres.

    Each person walks through `per_person` tracklets one after the other (spans never overlap within a
    person), while different people overlap in time, so same-camera overlaps are always two people.
    """
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(people), per_person)
    order = np.tile(np.arange(per_person), people)
    camera = rng.integers(0, 4, ids.size)
    start = rng.uniform(0, 50, people)[ids] + order * 40.0
    end = start + 30.0
    centres = rng.normal(size=(people, dim))
    features = (centres[ids] + noise * rng.normal(size=(ids.size, dim))).astype(np.float32)
    return {"ids": ids, "camera": camera, "start": start, "end": end, "features": features}


def write_inputs(folder, truth, *, round=1, with_aux=True):
    """features.h5 (and aux.h5 with TOC pairs and an oracle STS model) for `truth`."""
    config = Config()
    n = truth["ids"].size
    columns = {"features": truth["features"], "tracklet_index": np.arange(n), "camera": truth["camera"],
               "person_id": truth["ids"], "num_frames": np.full(n, 8)}
    features = write_artifact(
        folder / "features.h5",
        make_provenance(FEATURES, dataset="synth", fingerprint=FINGERPRINT, round=round, config=config),
        {f"train/{key}": value for key, value in columns.items()}, attrs={"mode": "cluster", "bad_frames_skipped": 0},
    )
    if not with_aux:
        return features, None
    spans = Spans(truth["camera"], truth["start"], truth["end"])
    transit = transit_from_pairs(group_pairs(truth["ids"]), spans,
                                 num_cameras=4, bin_seconds=2.0, max_gap_seconds=600.0, sigma_bins=2.0, min_pairs=5,
                                 source="oracle")
    data = {"train/camera": truth["camera"], "train/start": truth["start"], "train/end": truth["end"],
            "toc/train_pairs": overlap_pairs(spans),
            "toc/query_gallery_pairs": np.zeros((0, 2), np.int64)} | transit.to_arrays()
    aux = write_artifact(folder / "aux.h5",
                         make_provenance(AUX, dataset="synth", fingerprint=FINGERPRINT, round=0, config=config),
                         data, attrs={"has_times": True, "num_cameras": 4, "sts_source": "oracle"})
    return features, aux


def _config(**cluster):
    config = Config()
    config.cluster.k1, config.cluster.rlsce_k = 20, 10
    for key, value in cluster.items():
        setattr(config.cluster, key, value)
    return config


def _run(folder, config, *, name="clusters.h5", aux=True, round=1, **kwargs):
    features, aux_path = write_inputs(folder, kwargs.pop("truth", synthetic_truth(noise=1.0)), round=round, with_aux=aux)
    out = cluster_to_file(config, features_path=features, aux_path=aux_path, out_path=folder / name, round=round, **kwargs)
    return read_artifact(out, CLUSTERS, fingerprint=FINGERPRINT, round=round)


def test_run_cluster_toc_removes_violations_and_scores_quality(tmp_path):
    plain = _run(tmp_path, _config(rho=0.05), name="plain.h5")
    toc = _run(tmp_path, _config(rho=0.05, toc=True), name="toc.h5")
    assert plain.attrs["algorithm"] == "dbscan" and toc.attrs["algorithm"] == "icdbscan"
    assert plain.attrs["cannot_link_violations"] > 0 and toc.attrs["cannot_link_violations"] == 0
    assert toc.attrs["cannot_link_enforced"] == toc.attrs["cannot_link_pairs"] == plain.attrs["cannot_link_pairs"] > 0
    assert "cannot_link_enforced" not in plain.attrs
    assert toc["quality/nmi"] > plain["quality/nmi"] > 0.85
    assert toc.attrs["eps"] == plain.attrs["eps"] and toc.attrs["eps_source"] == "adaptive"
    count = toc.attrs["num_clusters"]
    assert toc["centroids"].shape == (count, 32) and toc["nearest_clusters"].shape == (count, 10)
    assert toc["sizes"].sum() == int(round((1 - toc.attrs["noise_ratio"]) * 180))
    np.testing.assert_array_equal(toc["tracklet_index"], np.arange(180))
    assert set(toc.provenance.parents) == {"features", "aux"}


def test_run_cluster_reuses_round_one_eps(tmp_path):
    first = _run(tmp_path / "r1", _config(rho=0.05))
    later = _run(tmp_path / "r2", _config(rho=0.05), round=2, truth=synthetic_truth(noise=0.5, seed=1),
                 eps_from=first.path)
    assert later.attrs["eps"] == first.attrs["eps"]
    assert later.attrs["eps_source"] == f"adaptive, from {first.path}"
    fresh = _run(tmp_path / "r3", _config(rho=0.05), round=2, truth=synthetic_truth(noise=0.5, seed=1))
    assert fresh.attrs["eps"] != first.attrs["eps"]
    fixed = _run(tmp_path / "r4", _config(eps_mode="fixed", eps=0.5))
    with pytest.raises(AuxReidError, match="used a fixed eps, not an adaptive one to reuse"):
        _run(tmp_path / "r5", _config(rho=0.05), round=2, eps_from=fixed.path)


def test_run_cluster_is_deterministic(tmp_path):
    a = _run(tmp_path, _config(rho=0.05, toc=True), name="a.h5")
    b = _run(tmp_path, _config(rho=0.05, toc=True), name="b.h5")
    for key in ("labels", "centroids", "nearest_clusters"):
        np.testing.assert_array_equal(a[key], b[key])


def test_run_cluster_writes_zero_clusters_and_warns(tmp_path):
    progress = RecordingProgress()
    lonely = synthetic_truth(people=180, per_person=1)  # nobody is seen twice: no dense region
    art = _run(tmp_path, _config(eps_mode="fixed", eps=0.01, scp=False, sts=False), aux=False, progress=progress,
               truth=lonely)
    assert art.attrs["num_clusters"] == 0 and art.attrs["noise_ratio"] == 1.0
    assert art["centroids"].shape == (0, 32) and art["nearest_clusters"].shape == (0, 0)
    assert "cannot_link_violations" not in art.attrs
    # one warning: the zero-cluster message (no eps proposed: this one was fixed), then why, the data, what to try
    assert len(progress.warnings) == 1
    head, why, data, hints = progress.warnings[0].split("\n  ")
    assert head == zero_cluster_message(art.path, 0.01, "fixed")
    assert "cluster.min_samples = 4" in why and "min / median / max 1 / 1 / 1, 100% of 180 identities" in why
    assert data.startswith("data: 180 train tracklets on 4 cameras")
    assert hints.startswith("try: --set cluster.min_samples=2") and "cluster.eps=0.01" not in hints
    with pytest.raises(AuxReidError, match="has no clusters: every tracklet is noise at eps=0.01; raise cluster.eps"):
        require_clusters(art)


def test_run_cluster_oracle_labels_are_the_true_identities_named_as_such(tmp_path):
    """cluster.labels = oracle: one cluster per person (ids renumbered), no eps, no aux needed, named everywhere."""
    truth = synthetic_truth(noise=1.0)
    progress = RecordingProgress()
    art = _run(tmp_path, _config(labels="oracle", toc=True), aux=False, truth=truth, progress=progress)
    np.testing.assert_array_equal(art["labels"], np.unique(truth["ids"], return_inverse=True)[1])
    assert (art.attrs["algorithm"], art.attrs["eps_source"], art.attrs["eps"]) == ("oracle", "oracle", 0.0)
    assert art.attrs["num_clusters"] == 30 and art.attrs["noise_ratio"] == 0.0 and art["quality/nmi"] == 1.0
    assert art["nearest_clusters"].shape == (30, 10) and set(art.provenance.parents) == {"features"}
    assert progress.warnings == ["cluster.labels = oracle: round 1's pseudo labels are the 30 true identities "
                                 "(an upper bound, not the method)"]
    later = _run(tmp_path / "r2", _config(labels="oracle"), round=2, truth=truth, eps_from=tmp_path / "nowhere.h5")
    assert later.attrs["num_clusters"] == 30 and set(later.provenance.parents) == {"features", "aux"}
    unknown = dict(truth, ids=np.where(np.arange(truth["ids"].size) < 3, -1, truth["ids"]))
    with pytest.raises(AuxReidError, match=r"^cluster.labels = oracle trains on the true identities, but 3 of the 180 "
                                           r"train tracklets in .*features.h5 have no person id; use cluster.labels: "
                                           r"clustering for this dataset$"):
        _run(tmp_path / "unknown", _config(labels="oracle"), aux=False, truth=unknown)


def test_camera_standardise_gives_every_camera_mean_0_std_1():
    from stages.clustering.camera_norm import camera_standardise

    rng = np.random.default_rng(0)
    camera = np.array([0] * 50 + [3] * 30 + [1])
    features = (rng.normal(size=(81, 6)) * np.array([1, 2, 3, 4, 5, 0])
                + 10 * np.eye(4, 6)[np.minimum(camera, 3)]).astype(np.float32)
    before = features.copy()
    out = camera_standardise(features, camera)
    assert out.dtype == np.float32 and np.array_equal(features, before)
    for c in (0, 3):
        np.testing.assert_allclose(out[camera == c, :5].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(out[camera == c, :5].std(0), 1, atol=1e-4)
    assert not out[:, 5].any() and not out[camera == 1].any()  # a constant dimension, a one-tracklet camera


def test_cluster_centroids_in_chunks_of_whole_clusters_equal_one_gather_to_the_bit(monkeypatch):
    from stages.clustering import centroids

    rng = np.random.default_rng(2)
    labels = rng.integers(-1, 40, 2000)
    labels[:300] = 7  # one cluster larger than a chunk
    features = rng.normal(size=(2000, 8)).astype(np.float32)
    members = np.flatnonzero(labels >= 0)
    members = members[np.argsort(labels[members], kind="stable")]
    sizes = np.bincount(labels[members])
    expected = (np.add.reduceat(features[members], np.cumsum(sizes) - sizes, axis=0, dtype=np.float64)
                / sizes[:, None]).astype(np.float32)
    monkeypatch.setattr(centroids, "CHUNK_ROWS", 101)
    assert np.array_equal(centroids.cluster_centroids(features, labels), expected)


def test_camera_standardise_in_row_chunks_equals_one_pass_to_the_bit(monkeypatch):
    from stages.clustering import camera_norm

    rng = np.random.default_rng(1)
    camera = rng.integers(0, 5, 1000)
    features = (rng.normal(size=(1000, 16)) + rng.normal(size=(5, 16))[camera] * 4).astype(np.float16)
    x = features.astype(np.float64)  # the one-pass computation, every row at once
    sums, squares = np.zeros((5, 16)), np.zeros((5, 16))
    np.add.at(sums, camera, x)
    np.add.at(squares, camera, x * x)
    counts = np.bincount(camera)[:, None]
    mean = sums / counts
    std = np.sqrt(np.maximum(squares / counts - mean * mean, 0.0))
    expected = ((x - mean[camera]) / (std[camera] + camera_norm.STD_FLOOR)).astype(np.float32)
    monkeypatch.setattr(camera_norm, "CHUNK_ROWS", 97)
    assert np.array_equal(camera_norm.camera_standardise(features, camera), expected)


def test_run_cluster_camera_norm_clusters_people_not_cameras(tmp_path):
    """Each camera shifts every feature by its own offset, larger than the spread between people."""
    truth = synthetic_truth(noise=0.5)
    offsets = np.random.default_rng(7).normal(size=(4, 32)) * 3.0
    truth = dict(truth, features=(truth["features"] + offsets[truth["camera"]]).astype(np.float32))
    config = dict(rho=0.05, scp=False, sts=False)
    plain = _run(tmp_path / "plain", _config(**config), aux=False, truth=truth)
    normed = _run(tmp_path / "normed", _config(camera_norm=True, **config), aux=False, truth=truth)
    assert normed["quality/nmi_all"] > plain["quality/nmi_all"] + 0.1, (plain["quality/nmi_all"], normed["quality/nmi_all"])


def test_run_cluster_needs_aux_for_toc_and_sts(tmp_path):
    with pytest.raises(AuxReidError) as info:
        _run(tmp_path, _config(toc=True), aux=False)
    assert str(info.value) == (
        "cluster.toc and cluster.sts need aux.h5; pass --aux aux.h5 (written by `auxreid mine-aux`) or set "
        "cluster.toc=false cluster.sts=false"
    )


def test_run_cluster_refuses_features_of_another_round(tmp_path):
    features, _ = write_inputs(tmp_path, synthetic_truth(), round=2, with_aux=False)
    with pytest.raises(AuxReidError, match=r"features\.h5 is from round 2, but round 1 is needed here"):
        cluster_to_file(_config(sts=False), features_path=features, aux_path=None, out_path=tmp_path / "c.h5", round=1)
    assert not (tmp_path / "c.h5").exists()


def test_cluster_features_equals_sklearn_on_the_dense_penalised_matrix():
    truth = synthetic_truth(noise=1.0)
    aux_free = _config(rho=0.05)

    def adjust(distance):
        return distance.add_same_camera(truth["camera"], lam=0.05).scale(lambda r, c: 1.0 + 0.1 * ((r + c) % 3))

    labels, eps, distance = cluster_features(truth["features"], aux_free.cluster, eps=None, adjust=adjust)
    expected = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(distance.to_dense())
    np.testing.assert_array_equal(labels, expected)
    assert labels.max() >= 5


def test_montage_draws_one_row_per_member_tracklet(tmp_path):
    from PIL import Image

    from stages.data import load_dataset
    from stages.views.montage import (
        FRAME_HEIGHT,
        FRAME_WIDTH,
        LABEL_WIDTH,
        MONTAGE_FRAMES,
        OFF_MAJORITY,
        TITLE_HEIGHT,
        montage,
    )

    lines = ["path,tracklet,camera,split,person_id,timestamp"]
    for t in range(3):
        for f in range(4):
            path = tmp_path / f"t{t}_{f}.png"
            Image.new("RGB", (16, 32), (80 * t, 200, 40)).save(path)
            lines.append(f"{path.name},t{t},c{t % 2},train,{t},{10 * t + f}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    config = Config()
    config.data.dataset, config.data.manifest, config.data.dense_step = "manifest", str(tmp_path / "m.csv"), 0
    names = [tracklet.name for tracklet in load_dataset(config.data).train]
    index = np.array([names.index(f"t{t}") for t in range(3)])
    provenance = make_provenance(CLUSTERS, dataset="manifest", fingerprint="f", round=1, config=config)
    path = write_artifact(tmp_path / "c.h5", provenance, {
        "labels": np.array([0, -1, 0]), "tracklet_index": index, "centroids": np.zeros((1, 2), np.float32),
        "nearest_clusters": np.zeros((1, 0), np.int64)})
    out = montage(read_artifact(path, CLUSTERS), 0, tmp_path / "m.png")
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (TITLE_HEIGHT + 2 * FRAME_HEIGHT, LABEL_WIDTH + MONTAGE_FRAMES * FRAME_WIDTH, 3)
    middle = TITLE_HEIGHT + FRAME_HEIGHT // 2
    np.testing.assert_array_equal(image[middle, LABEL_WIDTH + 5], [0, 200, 40])  # row 0: tracklet t0
    np.testing.assert_array_equal(image[FRAME_HEIGHT + middle, LABEL_WIDTH + 5], [160, 200, 40])  # row 1: t2
    np.testing.assert_array_equal(image[middle, LABEL_WIDTH + 4 * FRAME_WIDTH + 5], [255, 255, 255])  # 4 frames only
    # ids 0 and 2 tie, the smaller is the majority: t2's row is marked, t0's is not
    np.testing.assert_array_equal(image[FRAME_HEIGHT + middle, 1], OFF_MAJORITY)
    np.testing.assert_array_equal(image[middle, 1], [255, 255, 255])
    with pytest.raises(AuxReidError, match=r"cluster 1 does not exist; this file has clusters 0\.\.0"):
        montage(read_artifact(path, CLUSTERS), 1, tmp_path / "x.png")


def test_run_cluster_reestimates_sts_from_previous_clusters(tmp_path):
    first = _run(tmp_path / "r1", _config(rho=0.05, toc=True))
    truth = synthetic_truth(noise=1.0, seed=1)
    kept = _run(tmp_path / "a", _config(rho=0.05), round=2, truth=truth, previous_clusters=first.path)
    again = _run(tmp_path / "b", _config(rho=0.05, sts_reestimate=True), round=2, truth=truth,
                 previous_clusters=first.path)
    assert "previous_clusters" not in kept.provenance.parents and "previous_clusters" in again.provenance.parents
    assert again.attrs["eps"] != kept.attrs["eps"]  # another transit model, other STS factors


def test_cluster_features_reproduces_reference_partitions_from_features(reference):
    cluster = _config(k1=30, k2=6).cluster
    eps = float(reference["eps"])
    labels, _, _ = cluster_features(reference["features"], cluster, eps=eps)
    assert adjusted_rand_score(labels, reference["dbscan_labels"]) >= 0.99
    cluster.toc, cluster.relaxed = True, -1.0
    pairs = reference["cannot_link_pairs"]
    labels, _, _ = cluster_features(reference["features"], cluster, eps=eps, cannot_link=pairs)
    assert adjusted_rand_score(labels, reference["icdbscan_labels"]) >= 0.99
    assert cannot_link_violations(labels, pairs) == 0


def test_cluster_features_adaptive_eps_and_partitions_match_reference(reference):
    # The reference's rule with "non-zero" = above ZERO_TOLERANCE on its own matrix gives 0.094769; the
    # stored eps (0.0390, exact zeros) hinges on float noise (tests/test_eps.py). The reference labels at
    # that eps: sklearn DBSCAN and the benchmark's set-based ICDBSCAN on the stored matrix.
    import importlib.util
    from pathlib import Path

    from stages.clustering.eps import adaptive_eps
    from stages.clustering.sparse_distance import from_csr

    stored, pairs = reference["jaccard"], reference["cannot_link_pairs"]
    keep = stored < 1
    rows, cols = np.nonzero(keep)
    expected_eps = adaptive_eps(from_csr(np.concatenate([[0], np.cumsum(keep.sum(1))]), cols, stored[rows, cols]),
                                rho=1.6e-3)
    spec = importlib.util.spec_from_file_location(
        "cluster_icdbscan", Path(__file__).resolve().parents[1] / "benchmarks" / "cluster_icdbscan.py")
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    cluster = _config(k1=30, k2=6).cluster
    labels, eps, _ = cluster_features(reference["features"], cluster, eps=None)
    assert abs(eps / expected_eps - 1) <= 0.01
    expected = DBSCAN(eps=expected_eps, min_samples=4, metric="precomputed").fit(stored).labels_
    assert adjusted_rand_score(labels, expected) >= 0.99
    cluster.toc, cluster.relaxed = True, -1.0
    labels, eps, _ = cluster_features(reference["features"], cluster, eps=None, cannot_link=pairs)
    expected = baseline.sets_reference_structure(stored, pairs, eps=expected_eps, relaxed=-1.0)
    assert adjusted_rand_score(labels, expected) >= 0.99


def test_run_cluster_refuses_aux_of_other_rows(tmp_path):
    truth = synthetic_truth()
    _, aux = write_inputs(tmp_path, truth)
    features, _ = write_inputs(tmp_path / "sub", {key: value[:100] for key, value in truth.items()}, with_aux=False)
    with pytest.raises(AuxReidError, match=r"aux\.h5 describes 180 train tracklets but the features' rows are not"):
        cluster_to_file(_config(), features_path=features, aux_path=aux, out_path=tmp_path / "c.h5", round=1)


def test_summarize_reports_histogram_noise_violations_and_quality():
    from stages.views.summaries import summarize_clusters as summarize

    provenance = Provenance(schema="clusters", schema_version=1, dataset="synth", fingerprint="f", round=1)
    data = {"labels": np.array([0, 0, 1, 1, 1, -1]), "sizes": np.array([2, 3]),
            "centroids": np.zeros((2, 2), np.float32), "nearest_clusters": np.array([[1], [0]]),
            "quality/nmi": np.float64(0.75)}
    attrs = {"eps": 0.125, "eps_source": "fixed", "algorithm": "icdbscan", "num_clusters": 2, "noise_ratio": 1 / 6,
             "cannot_link_pairs": 9, "cannot_link_violations": 1, "cannot_link_enforced": 4}
    sections = dict(summarize(Artifact(path="c.h5", provenance=provenance, data=data, attrs=attrs)))
    overview = dict(sections["clusters"])
    assert overview["clusters"] == "2" and overview["noise ratio"] == "0.167" and overview["eps"] == "0.125 (fixed)"
    assert overview["cannot-link violations"] == "1 of 9 TOC pairs (4 enforced, 0 violated)"
    assert sections["cluster sizes"] == [("size 2", "1 clusters"), ("size 3-4", "1 clusters")]
    assert dict(sections["quality vs ids"])["nmi"] == "0.7500"

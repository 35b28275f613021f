"""The warning for a clustering that mostly failed: thresholds, the explanation, and a synthetic network."""

import numpy as np
import pytest

from stages.artifacts.readers import read_clusters
from stages.clustering.diagnosis import (
    CLUSTERS_PER_TRACKLET_LIMIT,
    NOISE_RATIO_LIMIT,
    Knobs,
    failed_clustering_message,
    zero_cluster_message,
)

KNOBS = Knobs(min_samples=4, eps=0.07, eps_source="adaptive", rho=0.004, dense_step=0)


def _message(labels, *, person_id=None, knobs=KNOBS):
    n = len(labels)
    return failed_clustering_message(
        np.asarray(labels), camera=np.arange(n) % 4, num_frames=np.full(n, 24),
        person_id=np.arange(n) // 3 if person_id is None else person_id, knobs=knobs, path="c.h5",
    )


def _labels(n, *, clusters, noise):
    """n labels: `noise` of them -1, the rest spread over `clusters` clusters."""
    labels = np.full(n, -1)
    clustered = n - noise
    labels[:clustered] = np.arange(clustered) % clusters
    return labels


def test_failed_clustering_message_thresholds():
    assert NOISE_RATIO_LIMIT == 0.8 and CLUSTERS_PER_TRACKLET_LIMIT == 0.01
    assert _message(_labels(1000, clusters=100, noise=800)) is None  # exactly 80 % noise
    assert _message(_labels(1000, clusters=100, noise=801)).startswith(
        "c.h5: clustering mostly failed: 100 clusters for 1,000 tracklets, 80.1% noise (warned above 80% noise or "
        "below one cluster per 100 tracklets)")
    assert _message(_labels(1000, clusters=10, noise=0)) is None  # exactly one cluster per 100 tracklets
    assert "9 clusters for 1,000 tracklets, 0.0% noise" in _message(_labels(1000, clusters=9, noise=0))
    assert "1 cluster for 100 tracklets" in _message(_labels(100, clusters=1, noise=90))
    assert _message(np.zeros(0, dtype=np.int64)) is None


def test_failed_clustering_message_explains_with_ids_cameras_lengths_and_knobs():
    person_id = np.repeat(np.arange(50), 2)  # 2 tracklets per identity, min_samples 4
    head, why, data, hints = _message(_labels(100, clusters=1, noise=96), person_id=person_id).split("\n  ")
    assert why == (
        "why: a cluster needs a core tracklet with cluster.min_samples = 4 tracklets within eps = 0.07 (adaptive), "
        "itself included, so an identity with fewer tracklets cannot form one; tracklets per identity (dataset ids, "
        "read for this check only) min / median / max 2 / 2 / 2, 100% of 50 identities have fewer than 4"
    )
    assert data == ("data: 100 train tracklets on 4 cameras, per camera min / median / max 25 / 25 / 25; frames per "
                    "tracklet min / median / max 24 / 24 / 24 (whole tracklets)")
    assert hints == (
        "try: --set cluster.min_samples=2 (no more than the tracklets an identity has); data.dense_step (e.g. 6: 4 "
        "pieces of a median tracklet) cuts tracklets into pieces, more per identity (then re-run extract); a larger "
        "cluster.rho (now 0.004) gives a larger adaptive eps"
    )


def test_failed_clustering_message_without_ids_and_other_eps_sources():
    unknown = np.full(100, -1)
    fixed = Knobs(min_samples=3, eps=0.5, eps_source="fixed", rho=0.0016, dense_step=40)
    _, why, data, hints = _message(_labels(100, clusters=1, noise=96), person_id=unknown, knobs=fixed).split("\n  ")
    assert why.endswith("the tracklets per identity are unknown here (no dataset ids)")
    assert data.endswith("(pieces of 40 frames, the last with the remainder (data.dense_step = 40))")
    assert hints == ("try: --set cluster.min_samples=2 (no more than the tracklets an identity has); a smaller "
                     "data.dense_step (now 40) cuts each tracklet into more pieces (then re-run extract); a larger "
                     "cluster.eps (now 0.5)")
    mars = Knobs(min_samples=2, eps=0.1, eps_source="adaptive, from r1.h5", rho=0.0016, dense_step=0)
    hints = _message(_labels(100, clusters=1, noise=96), person_id=unknown, knobs=mars).split("\n  ")[-1]
    assert hints == ("try: data.dense_step (e.g. 12: 2 pieces of a median tracklet) cuts tracklets into pieces, more per "
                     "identity (then re-run extract); a larger cluster.rho (now 0.0016) at round 1, whose eps this "
                     "round reuses")


def test_failed_clustering_message_for_zero_clusters_starts_with_the_zero_cluster_message():
    message = _message(np.full(40, -1))
    assert message.startswith(zero_cluster_message("c.h5", 0.07, "adaptive") + "\n  why: ")
    assert message.count("has no clusters") == 1


# --- a small synthetic camera network with 2-4 tracklets per identity, real (random-init) features ---------


@pytest.fixture(scope="module")
def sparse_network(module_tmp):
    """features.h5 and aux.h5 of a Duke-layout network whose identities have 2-4 tracklets (synth.yaml model)."""
    from conftest import CONFIGS
    from stages.config import load_config
    from stages.extract import extract_to_file
    from stages.init_run import write_initial_model
    from stages.mine_aux import mine_aux_to_file
    from stages.synth import run_synth

    folder = module_tmp.mktemp("sparse_network")
    root = run_synth(folder / "synth", layout="duke", seed=1, ids=30, test_ids=4, distractors=2, cams=4,
                     tracklets_per_id=2, min_frames=2, max_frames=4)
    config = load_config(CONFIGS / "synth.yaml", [f"data.root={root}", "data.dense_step=0"])  # whole tracklets
    write_initial_model(config, folder / "model.pt")
    features = extract_to_file(config, split="train", mode="cluster", model_path=folder / "model.pt",
                           out_path=folder / "features.h5", round=1)
    aux = mine_aux_to_file(config, output=folder / "aux.h5", features=features)
    return config, features, aux


def test_run_cluster_warns_once_on_a_network_with_few_tracklets_per_identity(sparse_network, tmp_path):
    from stages.cluster import cluster_to_file
    from stages.progress import RecordingProgress

    config, features, aux = sparse_network
    config.cluster.min_samples = 4
    progress = RecordingProgress()
    written = cluster_to_file(config, features_path=features, aux_path=aux, out_path=tmp_path / "c4.h5", round=1,
                          progress=progress)
    attrs = read_clusters(written).attrs
    assert attrs["noise_ratio"] > NOISE_RATIO_LIMIT
    assert len(progress.warnings) == 1
    head, why, data, hints = progress.warnings[0].split("\n  ")
    assert head.startswith(f"{written}: clustering mostly failed: {attrs['num_clusters']} cluster")
    assert f"{attrs['noise_ratio']:.1%} noise" in head
    assert "min / median / max 2 / " in why and "identities have fewer than 4" in why
    assert data.startswith("data: 91 train tracklets on 4 cameras") and "(whole tracklets)" in data
    assert hints.startswith("try: --set cluster.min_samples=2")
    config.cluster.min_samples = 2
    again = cluster_to_file(config, features_path=features, aux_path=aux, out_path=tmp_path / "c2.h5", round=1)
    assert read_clusters(again).attrs["num_clusters"] > attrs["num_clusters"]

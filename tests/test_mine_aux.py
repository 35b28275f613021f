"""Tests of stages/mine_aux.py and `auxreid mine-aux` on the synthetic network and tiny Duke/manifest fixtures."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.h5 import make_provenance, read_artifact, write_artifact
from stages.artifacts.schemas import AUX, CLUSTERS, FEATURES
from stages.auxinfo.aux_file import load_aux
from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import group_pairs, mutual_knn_pairs, transit_from_pairs
from stages.auxinfo.toc import overlap_pairs_naive
from stages.config import load_config
from stages.data import load_dataset
from stages.data.duke import DUKE_CAMERA_OFFSETS, DUKE_FPS
from stages.data.synth.world import FPS, TRAIN, SynthSpec, simulate
from stages.errors import AuxReidError
from stages.mine_aux import mine_aux_to_file
from stages.progress import RecordingProgress
from stages.rundir import RunDir, write_run_config
from stages.synth import run_synth
from stages.views.summaries import summarize_aux as summarize
from stages.views.transit_plot import plot_transit

SMALL = {"ids": 40, "test_ids": 10, "distractors": 2, "height": 16, "width": 8, "min_frames": 2, "max_frames": 4}


def _config(root: Path, *extra: str, dataset: str = "synth"):
    return load_config(None, [f"data.dataset={dataset}", f"data.root={json.dumps(str(root))}", "data.dense_step=0", *extra])


def _write_features(path: Path, dataset, features: np.ndarray, *, round: int = 0) -> Path:
    train = dataset.arrays("train")
    provenance = make_provenance(FEATURES, dataset=dataset.name, fingerprint=dataset.fingerprint, round=round)
    return write_artifact(path, provenance, {
        "train/features": features.astype(np.float32),
        "train/tracklet_index": np.arange(len(features), dtype=np.int64),
        "train/camera": train["camera"],
        "train/person_id": train["person_id"],
        "train/num_frames": train["num_frames"],
    })


def _noisy_id_features(person: np.ndarray, *, noise: float, seed: int) -> np.ndarray:
    """Identity embedding + strong noise: a stand-in for a weak round-0 model (mutual kNN is imperfect)."""
    rng = np.random.default_rng(seed)
    ids, index = np.unique(person, return_inverse=True)
    embedding = rng.normal(size=(ids.size, 64))
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    return embedding[index] + noise * rng.normal(size=(person.size, 64)) / 8


def _cross_camera_auc(aux, person: np.ndarray) -> float:
    camera = aux.camera("train")
    i, j = np.triu_indices(camera.size, k=1)
    cross = camera[i] != camera[j]
    return roc_auc_score(person[i[cross]] == person[j[cross]], aux.sts_probability("train", i[cross], "train", j[cross]))


@pytest.fixture(scope="module")
def synth(module_tmp):
    root = run_synth(module_tmp.mktemp("synth") / "net", layout="duke", seed=0, **SMALL)
    dataset = load_dataset(_config(root).data)
    return root, dataset


def test_run_mine_aux_toc_is_exact_on_synthetic_network(synth, tmp_path):
    root, dataset = synth
    progress = RecordingProgress()
    aux = load_aux(mine_aux_to_file(_config(root), output=tmp_path / "aux.h5", dataset=dataset, progress=progress),
                   fingerprint=dataset.fingerprint)
    train = dataset.arrays("train")
    truth = json.loads((root / "synth.json").read_text())["toc"]
    brute = overlap_pairs_naive(Spans(train["camera"], train["start"], train["end"]))
    np.testing.assert_array_equal(aux.cannot_link, brute)  # recall and precision 1.0 against brute force
    assert len(aux.cannot_link) == truth["train_pairs"] > 5
    person = train["person_id"]
    assert (person[aux.cannot_link[:, 0]] != person[aux.cannot_link[:, 1]]).all()  # never one identity
    assert len(aux.query_gallery_overlap) == truth["query_gallery_pairs"]
    assert not aux.has_sts
    assert progress.warnings == [
        "no STS model written: aux.sts_source=appearance needs --features F.h5; re-run mine-aux with it once "
        "features exist (any round), or use --sts-source oracle for ablations"
    ]


def test_run_mine_aux_appearance_and_cluster_sts_separate_identities(synth, tmp_path):
    root, dataset = synth
    person = dataset.arrays("train")["person_id"]
    features = _noisy_id_features(person, noise=1.0, seed=0)
    feature_path = _write_features(tmp_path / "features.h5", dataset, features)
    appearance = load_aux(mine_aux_to_file(_config(root), output=tmp_path / "a.h5", features=feature_path, dataset=dataset))
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=0.8, metric="cosine",
                                     linkage="average").fit_predict(features)
    provenance = make_provenance(CLUSTERS, dataset=dataset.name, fingerprint=dataset.fingerprint, round=0)
    cluster_path = write_artifact(tmp_path / "clusters.h5", provenance, {
        "labels": labels.astype(np.int64), "centroids": np.zeros((labels.max() + 1, 64), np.float32),
        "nearest_clusters": np.zeros((labels.max() + 1, 1), np.int64)})
    clustered = load_aux(mine_aux_to_file(_config(root, "aux.sts_source=clusters"), output=tmp_path / "c.h5",
                                      features=feature_path, clusters=cluster_path, dataset=dataset))
    assert appearance.transit.source == "appearance" and clustered.transit.source == "clusters"
    appearance_auc, cluster_auc = _cross_camera_auc(appearance, person), _cross_camera_auc(clustered, person)
    assert appearance_auc >= 0.8
    assert cluster_auc >= appearance_auc - 0.01
    assert read_artifact(tmp_path / "c.h5").provenance.parents.keys() == {"features", "clusters"}


def _colour_histograms(dataset, *, stripes: int = 6) -> np.ndarray:
    """Label-free appearance: per horizontal stripe, chromaticity (8x8) and brightness (8) histograms
    of all frames, square-rooted, then standardised per camera to cancel each camera's colour cast."""
    rows = []
    for tracklet in dataset.train:
        frames = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) for f in tracklet.frames])
        height, parts = frames.shape[1], []
        for k in range(stripes):
            pixels = frames[:, k * height // stripes:(k + 1) * height // stripes].reshape(-1, 3)
            total = pixels.sum(axis=1) + 1
            chroma, _, _ = np.histogram2d(pixels[:, 0] / total, pixels[:, 1] / total, bins=8, range=[[0, 1], [0, 1]])
            bright, _ = np.histogram(total / 3, bins=8, range=(0, 256))
            parts += [chroma.ravel() / len(pixels), bright / len(pixels)]
        rows.append(np.sqrt(np.concatenate(parts)))
    features = np.stack(rows)
    camera = dataset.arrays("train")["camera"]
    for cam in np.unique(camera):
        chosen = camera == cam
        features[chosen] = (features[chosen] - features[chosen].mean(0)) / (features[chosen].std(0) + 1e-3)
    return features


@pytest.mark.slow
def test_run_mine_aux_colour_histogram_sts_separates_identities(tmp_path):
    """A genuinely label-free source on rendered frames (150 train ids: 30 s of rendering)."""
    root = run_synth(tmp_path / "net", layout="duke", seed=0, ids=150)
    dataset = load_dataset(_config(root).data)
    path = _write_features(tmp_path / "features.h5", dataset, _colour_histograms(dataset))
    aux = load_aux(mine_aux_to_file(_config(root), output=tmp_path / "aux.h5", features=path, dataset=dataset))
    assert _cross_camera_auc(aux, dataset.arrays("train")["person_id"]) >= 0.8


def test_transit_peaks_within_one_bin_of_simulated_means():
    """The generator's own simulation at 1,000 train ids (no images): enough transits per camera pair."""
    world = simulate(SynthSpec(ids=1000, test_ids=10, distractors=0))
    t = world.tracklets
    train = t.split == TRAIN
    camera, start, end, person = t.camera[train], t.start[train] / FPS, t.end[train] / FPS, t.person[train]
    features = _noisy_id_features(person, noise=1.0, seed=1)
    settings = {"num_cameras": 8, "bin_seconds": 2.0, "max_gap_seconds": 600.0, "sigma_bins": 2.0, "min_pairs": 5}
    for source, pairs in (("appearance", mutual_knn_pairs(features, camera, k=5)), ("oracle", group_pairs(person))):
        peaks = transit_from_pairs(pairs, Spans(camera, start, end), source=source, **settings).peak_seconds()
        for (a, b), mean in zip(world.graph.edges, world.graph.mean_s):
            assert abs(peaks[a, b] - mean) <= 2.0 and abs(peaks[b, a] - mean) <= 2.0, (source, a, b)


def test_run_mine_aux_refuses_features_of_another_dataset(synth, tmp_path):
    root, dataset = synth
    other = run_synth(tmp_path / "other", layout="duke", seed=1, **SMALL)
    other_dataset = load_dataset(_config(other).data)
    person = other_dataset.arrays("train")["person_id"]
    path = _write_features(tmp_path / "f.h5", other_dataset, _noisy_id_features(person, noise=1.0, seed=0))
    with pytest.raises(AuxReidError) as info:
        mine_aux_to_file(_config(root), output=tmp_path / "aux.h5", features=path, dataset=dataset)
    assert str(info.value) == (
        f"{path} was made from dataset 'synth' with split fingerprint {other_dataset.fingerprint}, but the current "
        f"dataset's fingerprint is {dataset.fingerprint}; it belongs to another dataset or split, re-create it"
    )
    assert not (tmp_path / "aux.h5").exists()


def test_run_mine_aux_without_timestamps_writes_cameras_only(tmp_path):
    root = run_synth(tmp_path / "mars", layout="mars", seed=0, ids=6, test_ids=4, distractors=1, cams=3,
                     height=16, width=8, min_frames=2, max_frames=3)
    progress = RecordingProgress()
    path = mine_aux_to_file(_config(root), output=tmp_path / "aux.h5", progress=progress)
    aux = load_aux(path)
    assert not aux.has_times and aux.camera("train").size > 0
    assert progress.warnings == [
        "dataset synth has no timestamps: TOC and STS are unavailable; aux.h5 holds cameras only (SCP); this config "
        "turns on cluster.sts, evaluate.toc, evaluate.sts: set them to false before cluster/evaluate"
    ]
    with pytest.raises(AuxReidError, match=r"^.*aux\.h5 of dataset synth has no timestamps: TOC and STS are unavailable; set cluster\.sts=false$"):
        aux.require_sts("cluster.sts")
    with pytest.raises(AuxReidError) as info:
        mine_aux_to_file(_config(root, "aux.sts_source=oracle"), output=tmp_path / "o.h5")
    assert str(info.value) == (
        "dataset synth has no timestamps: TOC and STS are unavailable, so aux.sts_source=oracle cannot be used; "
        "mine without --features/--clusters/--sts-source oracle"
    )


def test_run_mine_aux_manifest_without_timestamps_refuses_toc(tmp_path):
    rows = ["path,tracklet,camera,split,person_id"]
    for k, (split, camera) in enumerate([("train", "a"), ("train", "b"), ("query", "a"), ("gallery", "b")]):
        (tmp_path / f"{k}.jpg").write_bytes(b"")
        rows.append(f"{k}.jpg,t{k},{camera},{split},{k}")
    manifest = tmp_path / "frames.csv"
    manifest.write_text("\n".join(rows) + "\n")
    aux = load_aux(mine_aux_to_file(_config(manifest, dataset="manifest"), output=tmp_path / "aux.h5"))
    assert aux.camera("train").tolist() == [0, 1]
    with pytest.raises(AuxReidError) as info:
        _ = aux.cannot_link
    assert str(info.value) == (
        f"{tmp_path / 'aux.h5'} of dataset manifest has no timestamps: TOC and STS are unavailable; set cluster.toc=false"
    )


def test_run_mine_aux_oracle_needs_person_ids(tmp_path):
    rows = ["path,tracklet,camera,split,timestamp"]
    for k, (split, camera) in enumerate([("train", "a"), ("train", "b"), ("query", "a"), ("gallery", "b")]):
        (tmp_path / f"{k}.jpg").write_bytes(b"")
        rows.append(f"{k}.jpg,t{k},{camera},{split},{10.0 * k}")
    manifest = tmp_path / "frames.csv"
    manifest.write_text("\n".join(rows) + "\n")
    with pytest.raises(AuxReidError) as info:
        mine_aux_to_file(_config(manifest, "aux.sts_source=oracle", dataset="manifest"), output=tmp_path / "aux.h5")
    assert str(info.value) == (
        "aux.sts_source=oracle needs ground-truth person ids, but dataset manifest has none in train; "
        "use --sts-source appearance --features F.h5"
    )
    aux = load_aux(mine_aux_to_file(_config(manifest, dataset="manifest"), output=tmp_path / "aux.h5"))
    assert aux.has_times and aux.cannot_link.shape == (0, 2) and aux.spans("query").start.tolist() == [20.0]


def _duke_fixture(root: Path) -> None:
    """Tiny DukeMTMC-VideoReID tree with real frame names in both spellings."""
    frames = {
        "train/0001/0001C6T0001": ["0001C6F0001X30823.jpg", "0001C6F0002X30835.jpg"],
        "train/0001/0001C1T0002": ["0001_C1_F0002_X44086.jpg", "0001_C1_F0003_X44098.jpg"],
        "train/0002/0002C6T0001": ["0002C6F0001X30830.jpg"],
        "query/0003/0003C2T0001": ["0003C2F0001X05000.jpg"],
        "gallery/0003/0003C5T0001": ["0003_C5_F0001_X07000.jpg"],
    }
    for folder, names in frames.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            (root / folder / name).write_bytes(b"")


def test_run_mine_aux_duke_fixture_uses_camera_offsets(tmp_path):
    _duke_fixture(tmp_path / "duke")
    path = mine_aux_to_file(_config(tmp_path / "duke", "aux.sts_source=oracle", dataset="duke"), output=tmp_path / "aux.h5")
    aux = load_aux(path)
    start, end = aux.spans("train").start, aux.spans("train").end
    expected_start = [(44086 + DUKE_CAMERA_OFFSETS[0] - 1) / DUKE_FPS, (30823 + DUKE_CAMERA_OFFSETS[5] - 1) / DUKE_FPS,
                      (30830 + DUKE_CAMERA_OFFSETS[5] - 1) / DUKE_FPS]
    np.testing.assert_allclose(start, expected_start)
    np.testing.assert_allclose(end, [(44098 + 5543 - 1) / DUKE_FPS, (30835 + 22402 - 1) / DUKE_FPS, expected_start[2]])
    assert aux.camera("train").tolist() == [0, 5, 5]
    assert aux.cannot_link.tolist() == [[1, 2]]  # the two camera-6 tracklets share frames 30823..30835
    assert aux.transit.support.sum() == 1  # person 1: camera 1 -> camera 6, 59.8 s later
    assert aux.transit.counts[0, 5, 329] == 1  # bin [58, 60) s


def test_summarize_and_plot_transit(synth, tmp_path):
    root, dataset = synth
    path = mine_aux_to_file(_config(root, "aux.sts_source=oracle"), output=tmp_path / "aux.h5", dataset=dataset)
    artifact = read_artifact(path, AUX)
    sections = dict(summarize(artifact))
    toc = dict(sections["TOC"])
    assert toc["train cannot-link pairs"] == f"{len(artifact['toc/train_pairs']):,}"
    sts = dict(sections["STS transit model"])
    assert sts["source"] == "oracle"
    assert sts["bins"] == "600 x 2 s over [-600, 600] s"
    own = int((artifact["sts/fallback"] == 0).sum())
    assert sts["camera pairs with >= 5 pairs (own model)"] == f"{own} of 64" and own > 10
    png = plot_transit(artifact, tmp_path / "transit.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_mine_aux_dataset_form_and_errors(synth, tmp_path):
    root, _ = synth
    runner = CliRunner()
    out = tmp_path / "run" / "aux.h5"
    result = runner.invoke(app, ["mine-aux", "--dataset", "synth", "--root", str(root), "--out", str(out),
                                 "--sts-source", "oracle", "--set", "data.dense_step=0"])
    assert result.exit_code == 0, result.output
    assert "train cannot-link pairs" in result.output and load_aux(out).transit.source == "oracle"
    run = RunDir(tmp_path / "demo")
    write_run_config(run, _config(root, "aux.sts_source=oracle"))
    result = runner.invoke(app, ["mine-aux", str(run.path)])
    assert result.exit_code == 0, result.output
    assert load_aux(run.aux).transit.source == "oracle"  # the run's config.yaml says oracle
    result = runner.invoke(app, ["mine-aux", "demo", "--dataset", "synth"])
    assert result.exit_code == 1
    assert "error: give either RUN (its config.yaml says the dataset; writes RUN/aux.h5) or --dataset/--root/--out" in result.output
    result = runner.invoke(app, ["mine-aux", "--dataset", "synth", "--root", str(root), "--out", str(out),
                                 "--sts-source", "clusters", "--clusters", str(out)])
    assert result.exit_code == 1
    assert "error: --sts-source clusters needs --features F.h5 too" in result.output


def test_run_mine_aux_refuses_features_with_wrong_cameras(synth, tmp_path):
    root, dataset = synth
    train = dataset.arrays("train")
    provenance = make_provenance(FEATURES, dataset=dataset.name, fingerprint=dataset.fingerprint, round=0)
    path = write_artifact(tmp_path / "f.h5", provenance, {
        "train/features": np.ones((train["camera"].size, 4), np.float32),
        "train/tracklet_index": np.arange(train["camera"].size),
        "train/camera": (train["camera"] + 1) % 8,
        "train/person_id": train["person_id"],
        "train/num_frames": train["num_frames"],
    })
    with pytest.raises(AuxReidError) as info:
        mine_aux_to_file(_config(root), output=tmp_path / "aux.h5", features=path, dataset=dataset)
    assert str(info.value) == f"{path}: train/camera disagrees with the dataset's cameras; re-run `auxreid extract`"

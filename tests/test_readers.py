"""Tests of stages/artifacts/readers.py: one validating reader per schema, stored configs, stale parents."""

import h5py
import numpy as np
import pytest
import torch

from stages.artifacts.h5 import make_provenance, read_provenance, write_artifact
from stages.artifacts.model_file import save_model
from stages.artifacts.readers import (
    SettingChange,
    changed_settings,
    config_from_artifact,
    describe_settings,
    provenance_of,
    read_clusters,
    read_features,
    recorded_parents,
    run_config_of,
    run_settings,
    stale_parents,
    warn_if_stale,
)
from stages.artifacts.schemas import CLUSTERS, FEATURES
from stages.config import Config
from stages.errors import AuxReidError
from stages.progress import RecordingProgress
from stages.rundir import RunDir, write_run_config


def _features(path, *, n=5, mode="cluster", parents=None, config=None, **columns):
    data = {"features": np.ones((n, 3), np.float32), "tracklet_index": np.arange(n), "camera": np.zeros(n, np.int64),
            "person_id": np.arange(n), "num_frames": np.full(n, 4)} | columns
    provenance = make_provenance(FEATURES, dataset="d", fingerprint="fp", round=1, config=config, parents=parents)
    return write_artifact(path, provenance, {f"train/{k}": v for k, v in data.items()}, attrs={"mode": mode})


def _clusters(path, labels, count, *, parents=None, config=None):
    provenance = make_provenance(CLUSTERS, dataset="d", fingerprint="fp", round=1, parents=parents, config=config)
    data = {"labels": np.asarray(labels), "centroids": np.zeros((count, 3), np.float32),
            "nearest_clusters": np.zeros((count, 1), np.int64)}
    return write_artifact(path, provenance, data, attrs={"num_clusters": count})


def test_read_features_validates_mode_and_columns(tmp_path):
    path = _features(tmp_path / "f.h5")
    features = read_features(path, fingerprint="fp", round=1)
    assert features.mode == "cluster" and features["train"]["features"].shape == (5, 3)
    with pytest.raises(AuxReidError, match=r"holds 'cluster'-mode features, but infer-mode features are needed here"):
        read_features(path, mode="infer")
    with pytest.raises(AuxReidError, match=r"has no 'query' features \(query/features, tracklet_index"):
        read_features(path, split=("train", "query"))
    bad = _features(tmp_path / "nan.h5", features=np.full((5, 3), np.nan, np.float32))
    with pytest.raises(AuxReidError, match=r"nan\.h5: train/features holds NaN or infinite values"):
        read_features(bad)
    short = _features(tmp_path / "short.h5", camera=np.zeros(4, np.int64))
    with pytest.raises(AuxReidError, match=r"train/camera has shape \(4,\) but train/features has 5 rows"):
        read_features(short)


def test_read_clusters_checks_labels_against_centroids(tmp_path):
    assert read_clusters(_clusters(tmp_path / "ok.h5", [0, 1, -1, 1], 2)).attrs["num_clusters"] == 2
    assert read_clusters(_clusters(tmp_path / "none.h5", [-1, -1], 0))["centroids"].shape == (0, 3)
    with pytest.raises(AuxReidError, match=r"bad\.h5: labels must lie in -1\.\.1; re-run `auxreid cluster`"):
        read_clusters(_clusters(tmp_path / "bad.h5", [0, 2], 2))


def test_config_from_artifact_reads_hdf5_and_model_files(tmp_path):
    config = Config()
    config.cluster.eps = 0.3
    stored = _features(tmp_path / "f.h5", config=config)
    assert config_from_artifact(stored, overrides=["cluster.k1=7"]).cluster.eps == 0.3
    assert config_from_artifact(stored, overrides=["cluster.k1=7"]).cluster.k1 == 7
    model = save_model(tmp_path / "m.pt", student={"w": torch.zeros(1)}, teacher={"w": torch.zeros(1)}, config=config,
                       round=0, step=0)
    assert config_from_artifact(model).cluster.eps == 0.3
    bare = _features(tmp_path / "bare.h5")
    with pytest.raises(AuxReidError) as info:
        config_from_artifact(bare, hint="it cannot locate the dataset's images")
    assert str(info.value) == f"{bare} carries no config; it cannot locate the dataset's images"


def test_parents_are_recorded_with_their_location_relative_to_the_child(tmp_path):
    parent = _features(tmp_path / "round_001" / "features.h5")
    child = _clusters(tmp_path / "round_001" / "clusters.h5", [0], 1, parents={"features": parent})
    provenance, extra = read_provenance(child)
    assert provenance.parent_paths == {"features": "features.h5"} and "parent_path:features" not in extra
    with h5py.File(child, "r") as handle:
        assert handle.attrs["parent_path:features"] == "features.h5"
    assert recorded_parents(child)["features"].path == parent
    assert stale_parents(child) == []


def test_stale_parents_flags_changed_and_missing_parents(tmp_path):
    first = _features(tmp_path / "a.h5")
    second = _features(tmp_path / "b.h5")
    child = _clusters(tmp_path / "c.h5", [0], 1, parents={"features": first, "aux": second})
    _features(tmp_path / "a.h5", n=6)  # re-made: other bytes
    second.unlink()
    stale = stale_parents(child)
    assert [(s.name, s.path, s.current_sha is None) for s in stale] == [("aux", second, True), ("features", first, False)]
    progress = RecordingProgress()
    warn_if_stale(child, progress)
    assert progress.warnings == [
        f"{child} is stale: it was made from inputs that have changed since (aux {second} is gone; features {first} "
        "changed); re-run `auxreid cluster` for it to bring it up to date (`auxreid status RUN` lists every stale file)"
    ]


def test_a_parent_recorded_without_its_location_is_refused(tmp_path):
    parent = _features(tmp_path / "f.h5")
    child = _clusters(tmp_path / "c.h5", [0], 1, parents={"features": parent})
    with h5py.File(child, "a") as handle:
        del handle.attrs["parent_path:features"]
    message = f"{child} lacks the provenance attribute(s) parent_path:features; re-create it"
    for read in (read_provenance, read_clusters, stale_parents):
        with pytest.raises(AuxReidError) as info:
            read(child)
        assert str(info.value) == message


def test_model_parents_record_hash_and_location(tmp_path):
    clusters = _clusters(tmp_path / "c.h5", [0], 1)
    model = save_model(tmp_path / "m.pt", student={"w": torch.zeros(1)}, teacher={"w": torch.zeros(1)}, config=Config(),
                       round=1, step=3, parents={"clusters": clusters})
    assert recorded_parents(model)["clusters"].path == tmp_path / "c.h5"
    _clusters(tmp_path / "c.h5", [0, 0], 1)
    assert [s.name for s in stale_parents(model)] == ["clusters"]


def test_model_parents_as_bare_hashes_are_refused(tmp_path):
    clusters = _clusters(tmp_path / "c.h5", [0], 1)
    model = save_model(tmp_path / "m.pt", student={"w": torch.zeros(1)}, teacher={"w": torch.zeros(1)}, config=Config(),
                       round=1, step=3, parents={"clusters": clusters})
    entries = torch.load(model, weights_only=True)
    sha = entries["parents"]["clusters"]["sha256"]
    entries["parents"] = {"clusters": sha}
    torch.save(entries, model)
    with pytest.raises(AuxReidError) as info:
        recorded_parents(model)
    assert str(info.value) == (f"{model}: model.pt entry 'parents' maps 'clusters' to {sha!r:.60}, expected "
                               "{'sha256': ..., 'path': ...}; re-create it")


def _changed(config, **sections):
    for name, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, name) if name != "top" else config, key, value)
    return config


def test_settings_that_decide_an_artifact_are_compared_with_its_runs_config(tmp_path):
    run = RunDir(tmp_path / "run")
    write_run_config(run, Config())
    made = _changed(Config(), top={"seed": 3}, cluster={"min_samples": 2, "eps": 0.5, "k1": 20, "toc": True,
                                                         "relaxed": -1.0, "device": "cpu", "knn_backend": "torch"},
                    train={"lr": 1e-4, "rounds": 3}, evaluate={"top_k": 10})
    clusters = _clusters(run.clusters(1), [0], 1, config=made)
    model = save_model(run.model(1), student={"w": torch.zeros(1)}, teacher={"w": torch.zeros(1)}, config=made,
                       round=1, step=1)
    settings = run_settings(run.config_path)
    assert run_config_of(clusters) == run.config_path == run_config_of(model)
    changes = changed_settings(provenance_of(clusters), settings)
    assert changes == [SettingChange("cluster.k1", 20, 30), SettingChange("cluster.eps", 0.5, 0.6),
                       SettingChange("cluster.min_samples", 2, 4), SettingChange("cluster.toc", True, False),
                       SettingChange("cluster.relaxed", -1.0, None)]  # config order; device, knn_backend: ignored
    assert describe_settings(changes) == ("cluster.k1 20 here, 30 in config.yaml; cluster.eps 0.5 here, 0.6 in "
                                          "config.yaml; cluster.min_samples 2 here, 4 in config.yaml and 2 more")
    assert describe_settings(changes[3:]) == ("cluster.toc true here, false in config.yaml; cluster.relaxed -1.0 here, "
                                              "null in config.yaml")
    assert changed_settings(provenance_of(model), settings) == [SettingChange("seed", 3, 0),
                                                                SettingChange("train.lr", 1e-4, 3.5e-4)]
    progress = RecordingProgress()
    warn_if_stale(model, progress)
    assert progress.warnings == [
        f"{model} is stale: it was made with other settings than {run.config_path} (seed 3 here, 0 in config.yaml; "
        "train.lr 0.0001 here, 0.00035 in config.yaml); re-run `auxreid train-round` for it to bring it up to date "
        "(`auxreid status RUN` lists every stale file)"]


def test_an_artifact_outside_a_run_or_with_its_runs_settings_is_not_stale(tmp_path):
    run = RunDir(tmp_path / "run")
    write_run_config(run, _changed(Config(), cluster={"min_samples": 2}))
    made = _changed(Config(), cluster={"min_samples": 2, "device": "cpu"}, train={"rounds": 7, "lr": 1.0})
    inside = _clusters(run.clusters(1), [0], 1, config=made)
    outside = _clusters(tmp_path / "round_x" / "clusters.h5", [0], 1, config=Config())
    (tmp_path / "round_x" / "config.yaml").write_bytes(run.config_path.read_bytes())  # no run: not compared
    assert run_config_of(outside) is None
    assert changed_settings(provenance_of(inside), run_settings(run.config_path)) == []
    progress = RecordingProgress()
    for path in (inside, outside):
        warn_if_stale(path, progress)
    assert progress.warnings == []


@pytest.mark.parametrize("row", [0, 130, 299])
def test_a_nan_in_any_chunk_of_rows_is_refused(monkeypatch, row):
    from stages.artifacts import readers

    monkeypatch.setattr(readers, "FINITE_CHECK_ROWS", 64)
    features = np.ones((300, 4), dtype=np.float16)
    features[row, 2] = np.nan
    columns = {"features": features, **{name: np.zeros(300, dtype=np.int64)
                                        for name in ("tracklet_index", "camera", "person_id", "num_frames")}}
    with pytest.raises(AuxReidError, match=r"^f\.h5: train/features holds NaN or infinite values"):
        readers.check_split_columns(columns, "train", "f.h5")
    features[row, 2] = 1.0
    readers.check_split_columns(columns, "train", "f.h5")

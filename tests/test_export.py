"""export: names and frames stored by extract and cluster, the CSV / npz / image list round trip, errors, the CLI."""

import csv
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from auxreid_cli.main import app
from helpers_frames import tiny_config, tiny_dataset
from stages.artifacts.h5 import make_provenance, read_artifact, write_artifact
from stages.artifacts.model_file import save_model
from stages.artifacts.schemas import CLUSTERS, FEATURES
from stages.cluster import cluster_to_file
from stages.config import Config
from stages.data.frame_table import FrameTable, frame_table, relative_path
from stages.errors import AuxReidError
from stages.export import PseudoLabels, export_to_folder, image_list, load_pseudo_labels, parse_formats
from stages.extract import extract_to_file
from stages.model.pretrained import initial_model
from stages.progress import RecordingProgress
from stages.rundir import RunDir, write_dataset_record, write_run_config

runner = CliRunner()


@pytest.fixture(scope="module")
def clustered(module_tmp):
    """A tiny dataset, its round-1 features.h5 from extract and clusters.h5 from cluster (3 labelled, 3 noise)."""
    base = module_tmp.mktemp("export")
    dataset = tiny_dataset(base / "data", frame_counts=(5, 3, 9, 1, 4, 2))
    config = tiny_config()
    model = initial_model(config, num_classes=4)
    model_path = save_model(base / "round_000" / "model.pt", student=model, teacher=model, config=config, round=0, step=0)
    features = extract_to_file(config, split="train", mode="cluster", model_path=model_path,
                           out_path=base / "round_001" / "features.h5", dataset=dataset)
    config.cluster.k1, config.cluster.k2, config.cluster.min_samples, config.cluster.rlsce_k = 3, 1, 2, 2
    config.cluster.eps_mode, config.cluster.eps = "fixed", 0.9
    config.cluster.toc = config.cluster.sts = config.cluster.scp = False
    clusters = cluster_to_file(config, features_path=features, aux_path=None, out_path=base / "round_001" / "clusters.h5",
                           round=1)
    return dataset, features, clusters, base


def test_extract_and_cluster_store_names_frames_and_root(clustered):
    dataset, features, clusters, _ = clustered
    stored = read_artifact(features, FEATURES)
    assert stored.attrs["data_root"] == dataset.root
    np.testing.assert_array_equal(stored["train/tracklet_name"], [f"train/t{i}" for i in range(6)])
    np.testing.assert_array_equal(stored["train/frame_offsets"], [0, 5, 8, 17, 18, 22, 24])
    assert stored["train/frame_paths"][5] == "train/t1/0000.png"
    copied = read_artifact(clusters, CLUSTERS)
    assert copied.attrs["data_root"] == dataset.root
    for key in ("tracklet_name", "frame_offsets", "frame_paths"):
        np.testing.assert_array_equal(copied[key], stored[f"train/{key}"])
    assert stored["camera_labels"].tolist() == copied["camera_labels"].tolist() == ["C1", "C2", "C3"]


def test_run_export_round_trip_matches_clusters_and_dataset(clustered, tmp_path):
    dataset, features, clusters, _ = clustered
    labels = read_artifact(clusters, CLUSTERS)["labels"]
    assert (labels >= 0).any() and (labels == -1).any()  # the fixture has both labelled and noise tracklets
    written = export_to_folder(clusters, out_dir=tmp_path / "out")
    assert [p.name for p in written] == ["pseudo_labels.csv", "pseudo_labels.npz", "train_list.txt"]
    train = dataset.train
    with open(written[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["tracklet_name"] for row in rows] == [t.name for t in train]
    assert [int(row["pseudo_label"]) for row in rows] == labels.tolist()
    assert [int(row["camera"]) for row in rows] == [t.camera for t in train]
    assert [row["camera_label"] for row in rows] == [f"C{t.camera + 1}" for t in train]  # the dataset's own names
    assert [int(row["num_frames"]) for row in rows] == [len(t.frames) for t in train]
    stored_features = read_artifact(features, FEATURES)["train/features"]
    from_csv = np.array([[float(row[f"feature_{d}"]) for d in range(512)] for row in rows], dtype=np.float32)
    np.testing.assert_array_equal(from_csv, stored_features)
    with np.load(written[1], allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["pseudo_label"], labels)
        np.testing.assert_array_equal(npz["features"], stored_features)
        np.testing.assert_array_equal(npz["tracklet_name"], [t.name for t in train])
        assert npz["camera_labels"].tolist() == ["C1", "C2", "C3"]
        assert npz["camera_label"].tolist() == [f"C{t.camera + 1}" for t in train]
        table = FrameTable(npz["tracklet_name"], npz["frame_offsets"], npz["frame_paths"])
        assert [tuple(os.path.join(str(npz["data_root"]), p) for p in table.frames(i)) for i in range(6)] == \
            [t.frames for t in train]
    lines = [line.split(" ") for line in written[2].read_text().splitlines()]
    expected = [(frame, int(label), t.camera) for t, label in zip(train, labels) if label >= 0 for frame in t.frames]
    assert [(os.path.join(dataset.root, p), int(pid), int(cam)) for p, pid, cam in lines] == expected


def test_run_export_image_list_options(clustered, tmp_path):
    dataset, _, clusters, _ = clustered
    labels = read_artifact(clusters, CLUSTERS)["labels"]
    noisy = export_to_folder(clusters, out_dir=tmp_path / "a", formats=["list"], include_noise=True, paths="absolute")[0]
    lines = [line.split(" ") for line in noisy.read_text().splitlines()]
    assert [(p, int(pid)) for p, pid, _ in lines] == \
        [(frame, int(label)) for t, label in zip(dataset.train, labels) for frame in t.frames]
    moved = export_to_folder(clusters, out_dir=tmp_path / "b", formats="list", root="/elsewhere/duke")[0]
    assert moved.read_text().splitlines()[0].split(" ")[0] == "/elsewhere/duke/" + dataset.train[np.argmax(labels >= 0)].frames[0][len(dataset.root) + 1:]


def test_load_pseudo_labels_features_from_the_clusters_parent_or_none(clustered, tmp_path):
    _, features, clusters, _ = clustered
    assert load_pseudo_labels(clusters).features.shape == (6, 512)
    assert load_pseudo_labels(clusters, with_features=False).features is None
    moved = tmp_path / "clusters.h5"
    shutil.copy(clusters, moved)  # its recorded features.h5 (beside it) is not beside the copy
    progress = RecordingProgress()
    assert load_pseudo_labels(moved, progress=progress).features is None
    assert progress.warnings[-1] == (f"{moved} was made from {tmp_path / 'features.h5'}, which is gone; exporting the "
                                     "labels without features (give --features F.h5 to add them)")
    assert load_pseudo_labels(moved, features_path=features).features.shape == (6, 512)


def test_load_pseudo_labels_refuses_features_of_other_rows(clustered, tmp_path):
    dataset, features, clusters, _ = clustered
    stored = read_artifact(features, FEATURES)
    data = {key: stored[key][::-1] for key in stored.data if key.startswith("train/") and key != "train/bad_frames"}
    other = write_artifact(tmp_path / "f.h5", stored.provenance, data, attrs=stored.attrs)
    with pytest.raises(AuxReidError, match=r"f\.h5: its train rows are not the 6 tracklets .*clusters\.h5 labels, in "
                                           r"order; give the features\.h5 of the same round$"):
        load_pseudo_labels(clusters, features_path=other)


def _old_clusters(tmp_path, *, config, fingerprint, index):
    """A clusters.h5 as written before names and frames were stored."""
    provenance = make_provenance(CLUSTERS, dataset="manifest", fingerprint=fingerprint, round=1, config=config)
    return write_artifact(tmp_path / "old.h5", provenance, {
        "labels": np.array([0, -1, 0]), "tracklet_index": index, "camera": np.array([0, 1, 0]),
        "centroids": np.zeros((1, 2), np.float32), "nearest_clusters": np.zeros((1, 0), np.int64)})


def test_old_clusters_without_names_are_completed_from_their_dataset(tmp_path):
    from stages.data import load_dataset

    lines = ["path,tracklet,camera,split,person_id,timestamp"]
    for t in range(3):
        for f in range(2):
            Image.new("RGB", (8, 16)).save(tmp_path / f"t{t}_{f}.png")
            lines.append(f"t{t}_{f}.png,t{t},c{t % 2},train,{t},{10 * t + f}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    config = Config()
    config.data.dataset, config.data.manifest, config.data.dense_step = "manifest", str(tmp_path / "m.csv"), 0
    dataset = load_dataset(config.data)
    index = np.array([[t.name for t in dataset.train].index(f"t{t}") for t in range(3)])
    old = _old_clusters(tmp_path, config=config, fingerprint=dataset.fingerprint, index=index)
    pseudo = load_pseudo_labels(old, with_features=False)
    np.testing.assert_array_equal(pseudo.table.names, ["t0", "t1", "t2"])
    assert pseudo.data_root == dataset.root and list(pseudo.table.frames(2)) == ["t2_0.png", "t2_1.png"]
    assert pseudo.camera_labels == ("c0", "c1") and pseudo.camera_label.tolist() == ["c0", "c1", "c0"]
    stray = _old_clusters(tmp_path, config=config, fingerprint="0123456789abcdef", index=index)
    with pytest.raises(AuxReidError, match=r"old\.h5 stores no tracklet names or frame paths, and the dataset at .* "
                                           r"\(fingerprint \w+\) is not the one it was made from \(0123456789abcdef\)"):
        load_pseudo_labels(stray, with_features=False)
    (tmp_path / "m.csv").unlink()
    with pytest.raises(AuxReidError) as caught:
        load_pseudo_labels(old, with_features=False)
    message = str(caught.value)
    assert message.startswith(f"{old} stores no tracklet names or frame paths (written before auxreid stored them), "
                              "and its dataset cannot be loaded to look them up (")
    assert message.endswith("re-run `auxreid extract` and `auxreid cluster` for its round") and "\n" not in message


def _pseudo(paths, labels, camera):
    offsets = np.arange(len(paths) + 1)
    table = FrameTable(np.array([f"t{i}" for i in range(len(paths))]), offsets, np.array(paths))
    return PseudoLabels(np.array(labels), np.array(camera), np.arange(len(paths)), table, "/data")


def test_image_list_leaves_noise_out_and_refuses_whitespace():
    pseudo = _pseudo(["a.jpg", "b.jpg", "c.jpg"], [1, -1, 0], [2, 0, 1])
    assert image_list(pseudo) == ["a.jpg 1 2", "c.jpg 0 1"]
    assert image_list(pseudo, include_noise=True, root="/r") == ["/r/a.jpg 1 2", "/r/b.jpg -1 0", "/r/c.jpg 0 1"]
    with pytest.raises(AuxReidError, match=r"^frame path 'my frames/b\.jpg' holds whitespace, which the space-separated "
                                           r"image list cannot carry; export with --format csv,npz instead$"):
        image_list(_pseudo(["a.jpg", "my frames/b.jpg"], [0, 0], [0, 0]))


def test_frame_table_offsets_and_checks():
    from stages.data.base import Tracklet

    tracklets = [Tracklet(frames=("/d/x/1.jpg", "/d/x/2.jpg"), person_id=0, camera=0, name="x"),
                 Tracklet(frames=("/e/3.jpg",), person_id=0, camera=1, name="y")]
    columns = frame_table(tracklets, "/d")
    np.testing.assert_array_equal(columns["frame_offsets"], [0, 2, 3])
    assert columns["frame_paths"].tolist() == ["x/1.jpg", "x/2.jpg", "../e/3.jpg"] and relative_path("/d/a", "/d/") == "a"
    table = FrameTable.from_columns(columns, rows=2, source="c.h5", redo="auxreid cluster")
    assert table.frame_owner.tolist() == [0, 0, 1]
    columns["frame_offsets"] = np.array([0, 3, 2])
    with pytest.raises(AuxReidError, match=r"^c\.h5: frame_offsets are not non-decreasing from 0 to 3 "):
        FrameTable.from_columns(columns, rows=2, source="c.h5", redo="auxreid cluster")
    with pytest.raises(AuxReidError, match=r"^c\.h5: tracklet_name \(2,\) and frame_offsets \(3,\) do not fit its 3 rows"):
        FrameTable.from_columns(columns, rows=3, source="c.h5", redo="auxreid cluster")


def test_export_errors_are_one_line(clustered, tmp_path):
    _, _, clusters, _ = clustered
    with pytest.raises(AuxReidError, match=r"^unknown export format 'xls'; choose from csv, npz, list \(comma-separated\)$"):
        parse_formats("csv,xls")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(AuxReidError, match=r"^cannot write .*blocked/pseudo_labels\.csv: "):
        export_to_folder(clusters, out_dir=blocked, formats=["csv"])


def test_cli_export_explicit_and_run_mode(clustered, tmp_path):
    dataset, _, clusters, base = clustered
    write_run_config(RunDir(base), tiny_config())  # what init leaves: the config and the dataset it froze
    write_dataset_record(RunDir(base), dataset.name, dataset.fingerprint)
    done = runner.invoke(app, ["export", "--clusters", str(clusters), "--out", str(tmp_path / "e"), "--format", "list",
                               "--no-features"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "e" / "train_list.txt").is_file() and not (tmp_path / "e" / "pseudo_labels.csv").exists()
    missing_out = runner.invoke(app, ["export", "--clusters", str(clusters)])
    assert missing_out.exit_code == 1 and "--clusters needs --out DIR to say where to write the export" in missing_out.output
    nothing = runner.invoke(app, ["export"])
    assert nothing.exit_code == 1 and "give RUN --round R, or --clusters C.h5 --out DIR" in nothing.output
    run_dir = tmp_path / "run"
    (run_dir / "round_001").mkdir(parents=True)
    no_run = runner.invoke(app, ["export", str(run_dir), "--round", "1"])
    assert no_run.exit_code == 1 and f"run directory {run_dir} has no config.yaml" in no_run.output.replace("\n", "")
    write_run_config(RunDir(run_dir), tiny_config())
    write_dataset_record(RunDir(run_dir), dataset.name, dataset.fingerprint)
    absent = runner.invoke(app, ["export", str(run_dir), "--round", "1"])
    assert absent.exit_code == 1
    assert f"{run_dir}/round_001/clusters.h5 does not exist; run `auxreid cluster {run_dir} --round 1` first" in \
        absent.output.replace("\n", "")
    ran = runner.invoke(app, ["export", str(base), "--round", "1", "--format", "csv"])
    assert ran.exit_code == 0, ran.output
    assert (base / "round_001" / "export" / "pseudo_labels.csv").is_file()

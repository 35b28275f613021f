"""`auxreid export` through the CLI on a real run's round: the three files checked against the run's clusters,
features and dataset, the image-list options, and every option combination it refuses.

Explicit mode with --format list --no-features, --clusters without --out, no arguments at all, a run whose round
has no clusters.h5 and run mode with --format csv are in tests/test_export.py
(test_cli_export_explicit_and_run_mode); file contents on `run_export` and its one-line errors are tested there too.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from stages.artifacts.readers import read_clusters, read_features
from stages.data import load_dataset
from stages.rundir import RunDir, load_run_config
from test_cli_train_round import built_run, invoke, refused, run_copy, snapshot, usage_error

FILES = ("pseudo_labels.csv", "pseudo_labels.npz", "train_list.txt")


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


@pytest.fixture(scope="module")
def truth(base):
    """Round 1's labels, tracklet rows and train features, and each train tracklet's frames relative to the root."""
    clusters = read_clusters(base / "round_001" / "clusters.h5")
    features = read_features(base / "round_001" / "features.h5")["train"]["features"]
    dataset = load_dataset(load_run_config(RunDir(base)).data)
    frames = [[os.path.relpath(frame, dataset.root) for frame in tracklet.frames] for tracklet in dataset.train]
    cameras = [tracklet.camera for tracklet in dataset.train]
    return clusters["labels"], clusters["tracklet_index"], features, frames, cameras, dataset.root


def _image_list(truth, *, include_noise=False, root=None):
    labels, index, _, frames, cameras, _ = truth
    return [f"{os.path.join(root, path) if root else path} {label} {cameras[row]}"
            for label, row in zip(labels.tolist(), index.tolist()) if label >= 0 or include_noise for path in frames[row]]


def test_run_mode_writes_labels_features_and_image_list_into_the_round(base, tmp_path, truth):
    run = run_copy(base, tmp_path)
    before = snapshot(run)
    result = invoke("export", run, "--round", "1")
    assert result.exit_code == 0, result.output
    folder = run / "round_001" / "export"
    assert result.output.splitlines() == [f"wrote {folder / name}" for name in FILES]
    labels, index, features, frames, _, root = truth
    with open(folder / "pseudo_labels.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["tracklet_index", "tracklet_name", "camera", "camera_label", "pseudo_label", "num_frames",
                      *[f"feature_{d}" for d in range(features.shape[1])]]
    assert [int(row[0]) for row in rows] == index.tolist() and [int(row[4]) for row in rows] == labels.tolist()
    assert [row[3] for row in rows] == [f"C{int(row[2]) + 1}" for row in rows]  # the synthetic network's C1.. names
    assert [int(row[5]) for row in rows] == [len(frames[i]) for i in index.tolist()]
    np.testing.assert_array_equal(np.array([row[6:] for row in rows], dtype=np.float32), features)
    with np.load(folder / "pseudo_labels.npz") as npz:
        np.testing.assert_array_equal(npz["pseudo_label"], labels)
        np.testing.assert_array_equal(npz["features"], features)
        assert str(npz["data_root"]) == root
    assert (folder / "train_list.txt").read_text().splitlines() == _image_list(truth)
    assert (labels == -1).any() and (labels >= 0).any()  # noise left out of the list, labelled tracklets kept
    after = snapshot(run)
    assert {k: v for k, v in after.items() if not k.startswith("round_001/export/")} == before


def test_explicit_mode_image_list_options(base, tmp_path, truth):
    clusters = base / "round_001" / "clusters.h5"
    before = snapshot(base)
    root = truth[-1]
    cases = {"noise": (["--include-noise"], _image_list(truth, include_noise=True)),
             "absolute": (["--paths", "absolute"], _image_list(truth, root=root)),
             "rooted": (["--root", "/mnt/elsewhere"], _image_list(truth, root="/mnt/elsewhere"))}
    for name, (options, expected) in cases.items():
        result = invoke("export", "--clusters", clusters, "--out", tmp_path / name, "--format", "list", *options)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == [f"wrote {tmp_path / name / 'train_list.txt'}"]
        assert (tmp_path / name / "train_list.txt").read_text().splitlines() == expected, name
    assert len(cases["noise"][1]) > len(_image_list(truth))
    bare = invoke("export", "--clusters", clusters, "--out", tmp_path / "bare", "--format", "npz,csv", "--no-features")
    assert bare.exit_code == 0, bare.output
    assert bare.output.splitlines() == [f"wrote {tmp_path / 'bare' / name}" for name in FILES[1::-1]]  # --format's order
    with np.load(tmp_path / "bare" / "pseudo_labels.npz") as npz:
        assert "features" not in npz.files
        np.testing.assert_array_equal(npz["pseudo_label"], truth[0])
    assert (tmp_path / "bare" / "pseudo_labels.csv").read_text().splitlines()[0] == (
        "tracklet_index,tracklet_name,camera,camera_label,pseudo_label,num_frames")
    assert snapshot(base) == before


@pytest.mark.parametrize(("args", "message"), [
    (["{run}"], "give RUN --round R, or --clusters C.h5 --out DIR (see `auxreid export --help`)"),
    (["--round", "1"], "give RUN --round R, or --clusters C.h5 --out DIR (see `auxreid export --help`)"),
    (["{run}", "--round", "0"], "--round must be >= 1, got 0 (round 0 has no pseudo labels)"),
    (["{run}", "--round", "1", "--clusters", "{clusters}"], "give RUN --round R or --clusters C.h5, not both"),
    (["--clusters", "{clusters}", "--out", "{out}", "--format", "csv,xls"],
     "unknown export format 'xls'; choose from csv, npz, list (comma-separated)"),
    (["--clusters", "{clusters}", "--out", "{out}", "--format", ""],
     "unknown export format none; choose from csv, npz, list (comma-separated)"),
    (["--clusters", "{clusters}", "--out", "{out}", "--features", "{run}/round_001/eval.h5"],
     "{run}/round_001/eval.h5 is a 'eval' artifact but a 'features' artifact is needed here"),
    (["--clusters", "{clusters}", "--out", "{out}", "--round", "2"], "{clusters} is from round 1, but round 2 is needed here"),
    (["--clusters", "{run}/nope.h5", "--out", "{out}"],
     "--clusters {run}/nope.h5 does not exist; give an existing file"),
], ids=["run-without-round", "round-without-run", "round-0", "run-and-clusters", "unknown-format", "no-format",
        "features-of-another-schema", "round-of-other-clusters", "missing-clusters"])
def test_refused_option_combinations_write_nothing(base, tmp_path, args, message):
    paths = {"run": base, "clusters": base / "round_001" / "clusters.h5", "out": tmp_path / "e"}
    before = snapshot(base)
    refused(invoke("export", *[a.format(**paths) for a in args]), f"error: {message.format(**paths)}")
    assert snapshot(base) == before and list(tmp_path.iterdir()) == []


def test_unknown_path_style_is_a_usage_error(base, tmp_path):
    usage_error(invoke("export", "--clusters", base / "round_001" / "clusters.h5", "--out", tmp_path / "e", "--paths",
                       "mixed"), "Invalid value for '--paths'")
    assert list(tmp_path.iterdir()) == []


def test_features_that_do_not_exist_are_refused(base, tmp_path):
    missing = tmp_path / "nope.h5"
    result = invoke("export", "--clusters", base / "round_001" / "clusters.h5", "--out", tmp_path / "e", "--features",
                    missing)
    assert str(missing) in refused(result)
    assert list(tmp_path.iterdir()) == []

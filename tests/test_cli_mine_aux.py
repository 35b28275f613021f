"""`auxreid mine-aux` through the CLI: run mode from a real run's round, dataset mode with a run's features, and every
option combination it refuses.

Dataset mode with --sts-source oracle, run mode with --set aux.sts_source=oracle, RUN with --dataset and
--sts-source clusters without --features are in tests/test_mine_aux.py (test_cli_mine_aux_dataset_form_and_errors);
the default --out under $AUXREID_ARTIFACTS in tests/test_first_hour.py; a read-only run folder in
tests/bad_inputs/test_bad_writes.py; features of another dataset in tests/bad_inputs/test_bad_values.py.
"""

from __future__ import annotations

import pytest

from stages.artifacts.readers import recorded_parents
from stages.auxinfo.aux_file import load_aux
from stages.data import load_dataset
from stages.rundir import RunDir, load_run_config
from test_cli_train_round import built_run, invoke, refused, run_copy, snapshot, usage_error


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


def _cells(output: str) -> dict[str, str]:
    return {cells[0]: cells[1] for line in output.splitlines()
            if len(cells := [cell.strip() for cell in line.split("│")[1:-1]]) == 2}


@pytest.mark.parametrize("source", ["appearance", "clusters"])
def test_run_mode_mines_sts_from_the_runs_round_one(base, tmp_path, source):
    """Without --features / --clusters, the STS source's inputs (config.yaml's aux.sts_source) are the run's
    round-1 files."""
    run = run_copy(base, tmp_path)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("sts_source: appearance", f"sts_source: {source}"))
    before = snapshot(run)
    result = invoke("mine-aux", run)
    assert result.exit_code == 0, result.output
    after = snapshot(run)
    assert after["aux.h5"][0] != before["aux.h5"][0]  # replaced...
    assert {k: v for k, v in after.items() if k != "aux.h5"} == {k: v for k, v in before.items() if k != "aux.h5"}
    assert f"wrote {run / 'aux.h5'}" in result.output.splitlines()
    dataset = load_dataset(load_run_config(RunDir(run)).data)
    aux = load_aux(run / "aux.h5", fingerprint=dataset.fingerprint)
    assert aux.transit.source == source and aux.camera("train").size == len(dataset.train)
    parents = {role: record.path for role, record in recorded_parents(run / "aux.h5").items()}
    expected = {"features": run / "round_001" / "features.h5"}
    if source == "clusters":
        expected["clusters"] = run / "round_001" / "clusters.h5"
    assert {role: parents.get(role) for role in expected} == expected
    cells = _cells(result.output)
    assert cells["source"] == source and cells["train tracklets"] == str(len(dataset.train))
    assert "warning" not in result.output  # round 1's clusters, read for the clusters source, were up to date


def test_dataset_mode_mines_sts_from_given_features(base, tmp_path, tiny_synth):
    out = tmp_path / "aux.h5"
    features = base / "round_001" / "features.h5"
    result = invoke("mine-aux", "--dataset", "synth", "--root", tiny_synth, "--out", out, "--features", features,
                    "--set", "data.dense_step=0")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.splitlines()
    aux = load_aux(out)
    assert aux.transit.source == "appearance" and aux.dataset == "synth"
    assert recorded_parents(out)["features"].path == features
    assert [p.name for p in tmp_path.iterdir()] == ["aux.h5"]


@pytest.mark.parametrize("option", ["--out", "--root", "--config"])
def test_run_with_a_dataset_mode_option_is_refused(base, tmp_path, option):
    before = snapshot(base)
    value = {"--out": tmp_path / "aux.h5", "--root": tmp_path, "--config": "configs/synth.yaml"}[option]
    message = ("error: give either RUN (its config.yaml is used) or --config, not both; use --set to override"
               if option == "--config" else
               "error: give either RUN (its config.yaml says the dataset; writes RUN/aux.h5) or --dataset/--root/--out, "
               "not both; use --set to override the run's settings")
    refused(invoke("mine-aux", base, option, value), message)
    assert snapshot(base) == before and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [[], ["--root", "{tmp}/data", "--out", "{tmp}/aux.h5"], ["--sts-source", "oracle"]],
                         ids=["nothing", "root-and-out", "sts-source"])
def test_without_run_or_dataset_says_how_to_call_it(tmp_path, args):
    result = invoke("mine-aux", *[a.format(tmp=tmp_path) for a in args])
    refused(result, "error: give a run (auxreid mine-aux RUN) or --dataset NAME (--root DIR and --out FILE.h5 have "
                    "defaults: the dataset's home and artifacts/NAME/aux.h5)")
    assert list(tmp_path.iterdir()) == []  # not even the artifacts folder


def test_round_goes_with_run_only(tmp_path, tiny_synth):
    result = invoke("mine-aux", "--dataset", "synth", "--root", tiny_synth, "--out", tmp_path / "aux.h5", "--round", "1")
    refused(result, "error: --round goes with RUN: it picks the run's features (and clusters) of that round")
    assert list(tmp_path.iterdir()) == []


def test_negative_round_is_refused(base):
    before = snapshot(base)
    refused(invoke("mine-aux", base, "--round", "-1"), "error: --round must be >= 0, got -1")
    assert snapshot(base) == before


def test_run_folder_without_config_is_refused(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    refused(invoke("mine-aux", folder),
            f"error: run directory {folder} has no config.yaml; create it with `auxreid init exp --config ")
    assert not (folder / "aux.h5").exists()


def test_unknown_sts_source_is_a_usage_error(base):
    before = snapshot(base)
    usage_error(invoke("mine-aux", base, "--sts-source", "colour"), "Invalid value for '--sts-source'")
    assert snapshot(base) == before


def test_dataset_mode_refuses_features_that_do_not_exist(tmp_path, tiny_synth):
    missing = tmp_path / "nope.h5"
    result = invoke("mine-aux", "--dataset", "synth", "--root", tiny_synth, "--out", tmp_path / "aux.h5",
                    "--features", missing, "--set", "data.dense_step=0")
    assert str(missing) in refused(result)
    assert list(tmp_path.iterdir()) == []


def test_dataset_mode_reads_a_manifest_given_with_manifest(tmp_path):
    from helpers_cameras import CAMERAS, write_cameras
    from stages.artifacts.h5 import read_artifact

    manifest = write_cameras(tmp_path / "cams")
    out = tmp_path / "aux.h5"
    result = invoke("mine-aux", "--dataset", "manifest", "--manifest", manifest, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.splitlines()
    cells = _cells(result.output)
    assert (cells["cameras"], cells["time span"]) == ("3: gate, lobby, street", "2026-03-01 14:00:00–14:06:11")
    assert load_aux(out).camera("train").size == 18
    assert read_artifact(out)["camera_labels"].tolist() == list(CAMERAS)


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "synth", "--manifest", "{tmp}/m.csv", "--out", "{tmp}/aux.h5"],
     "--manifest goes with --dataset manifest, not --dataset synth; give --dataset manifest, or drop --manifest"),
    (["--dataset", "manifest", "--out", "{tmp}/aux.h5"], "--dataset manifest needs --manifest FILE (.csv or .jsonl)"),
], ids=["manifest-beside-synth", "manifest-dataset-without-file"])
def test_dataset_mode_refuses_a_manifest_without_its_dataset_and_the_dataset_without_its_manifest(tmp_path, args,
                                                                                                 message):
    refused(invoke("mine-aux", *[a.format(tmp=tmp_path) for a in args]), f"error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_run_mode_refuses_manifest(base, tmp_path):
    before = snapshot(base)
    refused(invoke("mine-aux", base, "--manifest", tmp_path / "m.csv"),
            "error: give either RUN (its config.yaml says the dataset and its manifest) or --dataset manifest "
            "--manifest FILE, not both; use --set data.manifest=FILE to override the run's")
    assert snapshot(base) == before

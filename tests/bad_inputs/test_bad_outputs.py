"""An output path never lands on the wrong file: not on an input of the same command, not on a file of another
kind or one auxreid did not write, and on a file of its own kind only in RUN mode or with --force.

Every case is refused before any work, with one line, and leaves every file as it was.
"""

from __future__ import annotations

import pytest

from stages.artifacts.output_guard import file_kind, guard_output
from stages.errors import AuxReidError
from test_cli_train_round import built_run, invoke, refused, run_copy, snapshot


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


@pytest.fixture
def run(base, tmp_path):
    return run_copy(base, tmp_path)


def test_train_round_out_equal_to_its_model_is_refused(run):
    before = snapshot(run)
    model = run / "round_000" / "model.pt"
    refused(invoke("train-round", "--clusters", run / "round_001" / "clusters.h5", "--model", model, "--out", model),
            f"error: --out {model} is also this command's model input; an output never replaces an input: write it "
            "elsewhere")
    assert snapshot(run) == before


@pytest.mark.parametrize("command, target, found, wanted", [
    (("evaluate", "--features", "{run}/round_001/eval.h5"), "round_001/features.h5", "a features.h5 artifact",
     "an eval.h5 artifact"),
    (("cluster", "--features", "{run}/round_001/features.h5"), "round_001/model.pt", "a model.pt",
     "a clusters.h5 artifact"),
    (("mine-aux", "--dataset", "synth", "--root", "{root}"), "round_001/clusters.h5", "a clusters.h5 artifact",
     "an aux.h5 artifact"),
    (("extract", "--model", "{run}/round_001/model.pt"), "aux.h5", "an aux.h5 artifact", "a features.h5 artifact"),
])
def test_an_output_never_replaces_an_artifact_of_another_kind(run, tiny_synth, command, target, found, wanted):
    before = snapshot(run)
    args = [str(part).format(run=run, root=tiny_synth) for part in command]
    out = run / target
    refused(invoke(*args, "--out", out, "--force"),
            f"error: --out {out} is {found}, not {wanted}; it is left alone: choose another path")
    assert snapshot(run) == before


def test_report_and_export_keep_files_of_another_kind(run):
    before = snapshot(run)
    model = run / "round_001" / "model.pt"
    refused(invoke("report", run, "--out", model),
            f"error: --out {model} is a model.pt, not a PNG figure; it is left alone: choose another path")
    clusters = run / "round_001" / "clusters.h5"
    refused(invoke("export", "--clusters", clusters, "--out", run / "aux.h5"),
            f"error: --out {run / 'aux.h5'} is an aux.h5 artifact, not a folder; it is left alone: choose another path")
    clusters_before = clusters.read_bytes()
    refused(invoke("inspect", clusters, "--montage", "0", "--out", clusters),
            f"error: --out {clusters} is also this command's artifact input; an output never replaces an input")
    refused(invoke("inspect", run / "round_001" / "eval.h5", "--ranklist", "worst", "--out", run / "aux.h5"),
            f"error: --out {run / 'aux.h5'} is an aux.h5 artifact, not a PNG figure; it is left alone")
    assert snapshot(run) == before and clusters.read_bytes() == clusters_before


def test_a_file_auxreid_did_not_write_is_left_alone(run, tmp_path):
    notes = tmp_path / "notes.h5"
    notes.write_text("my notes\n")
    refused(invoke("cluster", "--features", run / "round_001" / "features.h5", "--out", notes, "--force"),
            f"error: --out {notes} exists and is not a file auxreid wrote; it is left alone: choose another path for "
            "the clusters.h5 artifact")
    assert notes.read_text() == "my notes\n"


def test_an_existing_output_of_the_same_kind_needs_force(run, tmp_path):
    args = ("cluster", "--features", run / "round_001" / "features.h5", "--aux", run / "aux.h5")
    out = tmp_path / "c.h5"
    first = invoke(*args, "--out", out)
    assert first.exit_code == 0, first.output
    written = out.read_bytes()
    refused(invoke(*args, "--out", out),
            f"error: --out {out} already exists (a clusters.h5 artifact); pass --force to replace it, or choose "
            "another path")
    assert out.read_bytes() == written
    again = invoke(*args, "--out", out, "--force")
    assert again.exit_code == 0, again.output


def test_export_into_a_folder_holding_an_export_needs_force(run, tmp_path):
    clusters = run / "round_001" / "clusters.h5"
    out = tmp_path / "pseudo"
    assert invoke("export", "--clusters", clusters, "--out", out, "--format", "csv").exit_code == 0
    refused(invoke("export", "--clusters", clusters, "--out", out, "--format", "csv"),
            f"error: --out {out} already holds pseudo_labels.csv; pass --force to replace them, or choose another folder")
    assert invoke("export", "--clusters", clusters, "--out", out, "--format", "csv", "--force").exit_code == 0


def test_run_mode_replaces_the_runs_own_files(run):
    """A run's own outputs are the command's job to re-make: no --force in RUN mode."""
    result = invoke("cluster", run, "--round", "1")
    assert result.exit_code == 0, result.output
    assert invoke("report", run).exit_code == 0 and invoke("report", run).exit_code == 0


def test_file_kinds(run, tmp_path):
    kinds = {name: file_kind(run / name) for name in ("aux.h5", "round_001/features.h5", "round_001/clusters.h5",
                                                       "round_001/eval.h5", "round_001/eval.json", "round_001/model.pt",
                                                       "metrics.jsonl", "round_001")}
    assert kinds == {"aux.h5": "aux", "round_001/features.h5": "features", "round_001/clusters.h5": "clusters",
                     "round_001/eval.h5": "eval", "round_001/eval.json": "json", "round_001/model.pt": "model",
                     "metrics.jsonl": "metrics", "round_001": "folder"}
    binary = tmp_path / "m.jsonl"
    binary.write_bytes(b"\xff\xfe\x00binary")
    assert file_kind(binary) is None
    with pytest.raises(AuxReidError, match=r"--metrics .*m.jsonl exists and is not a file auxreid wrote"):
        guard_output(binary, "metrics", option="--metrics", inputs={}, replace=True)

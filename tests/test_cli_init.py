"""`auxreid init` through the CLI: what it prints and writes, --force, and every option it refuses.

The frozen config with --set on top, a missing dataset, an existing run without --force and an unknown --set key
are in tests/test_cli_core.py; unusable run names and the artifacts root itself in
tests/bad_inputs/test_bad_writes.py; shipped config names, unknown names and model.pretrained files in
tests/bad_inputs/test_bad_weights.py; out-of-range values in tests/bad_inputs/test_bad_values.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CONFIGS
from stages.artifacts.model_file import read_model_file
from stages.data import load_dataset
from stages.rundir import RunDir, load_run_config
from test_cli_train_round import invoke, refused, snapshot, usage_error


def _init(run, *sets: str, force: bool = False):
    return invoke("init", run, "--config", CONFIGS / "synth.yaml", *(["--force"] if force else []),
                  *[a for s in sets for a in ("--set", s)])


def _assert_announces_every_file(output: str, run: RunDir) -> None:
    """`created RUN/config.yaml`, then one `wrote` line per other file of the run (round 0's model.pt among them),
    and nothing else: every file init leaves in the run is named, and every name is a file there."""
    lines = output.splitlines()
    assert lines[0] == f"created {run.config_path}" and all(line.startswith("wrote ") for line in lines[1:]), output
    named = {run.config_path, *(Path(line.removeprefix("wrote ")) for line in lines[1:])}
    assert run.model(0) in named and len(named) == len(lines)
    assert named == {p for p in run.path.rglob("*") if p.is_file() and p.name != "log.txt"}


def test_init_prints_every_file_and_freezes_a_relative_root_as_absolute(tmp_path, tiny_synth, monkeypatch):
    monkeypatch.chdir(tiny_synth.parent)
    run = RunDir(tmp_path / "runs" / "exp")
    result = _init(run.path, f"data.root={tiny_synth.name}")
    assert result.exit_code == 0, result.output
    _assert_announces_every_file(result.output, run)
    config = load_run_config(run)
    assert config.data.root == str(tiny_synth)  # later commands may start in any directory
    dataset = load_dataset(config.data)
    model = read_model_file(run.model(0))
    assert (model.round, model.step, model.dataset, model.fingerprint) == (0, 0, "synth", dataset.fingerprint)
    assert model.num_classes == len(dataset.train) and model.config == config
    log = (run.path / "log.txt").read_text().splitlines()
    assert len(log) == 1 and "  exit 0  " in log[0]  # no `start` line: the run folder did not exist yet


def test_init_force_replaces_config_and_model(tmp_path, tiny_synth):
    run = RunDir(tmp_path / "exp")
    assert _init(run.path, f"data.root={tiny_synth}").exit_code == 0
    first = snapshot(run.path)
    result = _init(run.path, f"data.root={tiny_synth}", "cluster.eps=0.7", force=True)
    assert result.exit_code == 0, result.output
    _assert_announces_every_file(result.output, run)
    assert load_run_config(run).cluster.eps == 0.7
    after = snapshot(run.path)
    assert after.keys() == first.keys() and all(after[name][0] != first[name][0] for name in first)  # both replaced


def test_init_force_that_fails_leaves_the_existing_run_as_it_was(tmp_path, tiny_synth):
    run = RunDir(tmp_path / "exp")
    assert _init(run.path, f"data.root={tiny_synth}").exit_code == 0
    before = snapshot(run.path)
    absent = tmp_path / "absent"
    refused(_init(run.path, f"data.root={absent}", force=True), f"folder {absent} is missing; it should hold synth.json")
    assert snapshot(run.path) == before and load_run_config(run).data.root == str(tiny_synth)


@pytest.mark.parametrize(("args", "message"), [
    (["--config", "{tmp}/nope.yaml"], "config file {tmp}/nope.yaml does not exist; give a YAML file or a shipped config"),
    (["--config", "{tmp}/bad.yaml"], "config file {tmp}/bad.yaml is not valid YAML"),
    (["--config", "synth", "--set", "cluster.eps"],
     "--set 'cluster.eps' is not of the form key=value (e.g. --set cluster.eps=0.5)"),
    (["--config", "synth", "--set", "cluster.k1=abc"],
     "--set: 'cluster.k1' must be int, got 'abc'; fix the value in the YAML file or --set"),
    (["--config", "synth", "--set", "cluster.k1=3", "--set", "cluster.k1.x=2"],
     "--set 'cluster.k1.x=2': 'k1' was already given a value"),
], ids=["missing-config", "config-not-yaml", "set-without-value", "set-wrong-type", "set-below-a-value"])
def test_init_refuses_bad_config_options_before_creating_the_run(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("cluster: [\n")
    run = tmp_path / "exp"
    result = invoke("init", run, *[a.format(tmp=tmp_path) for a in args])
    refused(result, f"error: {message.format(tmp=tmp_path)}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize(("args", "text"), [
    (["{tmp}/exp"], "Missing option '--config'"),
    (["--config", "synth"], "Missing argument 'run'"),
])
def test_init_without_run_or_config_is_a_usage_error(tmp_path, args, text):
    usage_error(invoke("init", *[a.format(tmp=tmp_path) for a in args]), text)
    assert list(tmp_path.iterdir()) == []


def test_init_manifest_option_freezes_the_manifest_of_a_manifest_config(tmp_path, monkeypatch):
    from helpers_cameras import CAMERAS, tiny_set_args, write_cameras

    write_cameras(tmp_path / "cams")
    monkeypatch.chdir(tmp_path)
    run = RunDir(tmp_path / "runs" / "cams")
    result = invoke("init", run.path, "--config", CONFIGS / "manifest.yaml", "--manifest", "cams/manifest.csv",
                    *tiny_set_args())
    assert result.exit_code == 0, result.output
    _assert_announces_every_file(result.output, run)
    config = load_run_config(run)
    assert (config.data.dataset, config.data.manifest) == ("manifest", str(tmp_path / "cams" / "manifest.csv"))
    assert load_dataset(config.data).camera_labels == CAMERAS


@pytest.mark.parametrize(("config", "manifest", "message"), [
    ("synth.yaml", "cams/manifest.csv",
     "--manifest goes with a manifest dataset, but {configs}/synth.yaml has data.dataset synth; give a config with "
     "data.dataset manifest (e.g. --config configs/manifest.yaml), or drop --manifest"),
    ("manifest.yaml", None,
     "data.dataset manifest ({configs}/manifest.yaml) needs --manifest FILE (.csv or .jsonl; with make round: DATA=FILE)"),
], ids=["manifest-beside-synth", "manifest-config-without-file"])
def test_init_refuses_a_manifest_without_its_dataset_and_the_dataset_without_its_manifest(tmp_path, config, manifest,
                                                                                         message):
    run = tmp_path / "exp"
    result = invoke("init", run, "--config", CONFIGS / config, *(["--manifest", manifest] if manifest else []))
    refused(result, f"error: {message.format(configs=CONFIGS)}")
    assert list(tmp_path.iterdir()) == []

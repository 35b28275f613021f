"""`auxreid init` and `auxreid inspect` through the CLI: exit codes, files, one-line errors."""

import numpy as np
import torch
import yaml
from typer.testing import CliRunner

from auxreid_cli.main import app
from conftest import CONFIGS
from stages.artifacts.h5 import Schema, make_provenance, write_artifact
from stages.data import load_dataset
from stages.rundir import RunDir, load_run_config

runner = CliRunner()


def test_init_writes_frozen_resolved_config(tmp_path, tiny_synth):
    result = runner.invoke(app, ["init", "exp", "--config", str(CONFIGS / "synth.yaml"), "--set", "cluster.eps=0.4",
                                 "--set", f"data.root={tiny_synth}"])
    assert result.exit_code == 0, result.output
    run = RunDir.resolve("exp")
    assert run.path == tmp_path / "artifacts" / "exp"
    frozen = yaml.safe_load(run.config_path.read_text())
    assert frozen["cluster"]["eps"] == 0.4 and frozen["cluster"]["k2"] == 6 and frozen["data"]["dataset"] == "synth"
    assert load_run_config(run, ["cluster.k1=10"]).cluster.k1 == 10
    model = torch.load(run.model(0), weights_only=True)
    assert model["round"] == 0 and model["num_classes"] == len(load_dataset(load_run_config(run).data).train)


def test_init_without_dataset_writes_nothing(tmp_path):
    result = runner.invoke(app, ["init", "exp", "--config", str(CONFIGS / "synth.yaml"),
                                 "--set", f"data.root={tmp_path / 'absent'}"])
    assert result.exit_code == 1 and "absent is missing" in result.output
    assert not RunDir.resolve("exp").config_path.exists()


def test_init_refuses_existing_run_and_bad_keys(tiny_synth):
    args = ["init", "exp", "--config", str(CONFIGS / "synth.yaml"), "--set", f"data.root={tiny_synth}"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "config.yaml already exists; pick another run name or pass --force" in again.output
    bad = runner.invoke(app, ["init", "other", "--config", str(CONFIGS / "synth.yaml"), "--set", "cluster.min_sample=3"])
    assert bad.exit_code == 1
    assert "error: --set: unknown config key 'cluster.min_sample'; did you mean 'cluster.min_samples'?" in bad.output
    assert "Traceback" not in bad.output


def test_inspect_prints_provenance_and_datasets(tmp_path):
    provenance = make_provenance(Schema("custom", 1, ()), dataset="synth", fingerprint="f00d", round=3)
    path = write_artifact(tmp_path / "x.h5", provenance, {"values": np.arange(10, dtype=np.float32)})
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "f00d" in result.output and "values" in result.output and "(10,)" in result.output
    assert "min 0  mean 4.5  max 9" in result.output


def test_inspect_missing_file_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope.h5")])
    assert result.exit_code == 1
    assert "nope.h5 does not exist; run the stage that writes it first" in result.output


def test_inspect_option_for_wrong_schema(tmp_path):
    provenance = make_provenance(Schema("custom", 1, ()), dataset="synth", fingerprint="f00d", round=3)
    path = write_artifact(tmp_path / "x.h5", provenance, {"values": np.arange(3)})
    result = runner.invoke(app, ["inspect", str(path), "--montage", "2", "--out", str(tmp_path / "m.png")])
    assert result.exit_code == 1 and "--montage needs a 'clusters' artifact" in result.output


def test_inspect_model_pt_prints_round_step_arch_classes_and_parents(tmp_path):
    from stages.artifacts.model_file import save_model
    from stages.config import build_config
    from stages.model.pretrained import initial_model

    config = build_config(({"model": {"arch": "resnet18", "pretrained": "none"}}, "test"))
    model = initial_model(config, num_classes=7)
    parent = tmp_path / "clusters.h5"
    parent.write_bytes(b"c")
    path = save_model(tmp_path / "model.pt", student=model, teacher=model, config=config, round=4, step=123,
                      dataset="synth", fingerprint="beef", parents={"clusters": parent}, extra={"iterations": 9})
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    for text in ("auxreid-model v2", "resnet18", "│ round ", " 4 ", "123", "classifier rows", " 7 ", "beef",
                 "parent clusters", "(clusters.h5)", "iterations"):
        assert text in result.output, text
    bad = runner.invoke(app, ["inspect", str(path), "--montage", "1", "--out", str(tmp_path / "m.png")])
    assert bad.exit_code == 1 and "need an HDF5 artifact, but" in bad.output


def test_inspect_config_yaml_validates_it(tmp_path):
    result = runner.invoke(app, ["inspect", str(CONFIGS / "synth.yaml")])
    assert result.exit_code == 0, result.output
    assert "a valid config" in result.output and "resnet18" in result.output and "rlsce_k" in result.output
    (tmp_path / "bad.yaml").write_text("train:\n  rlsce_k: 5\n")
    bad = runner.invoke(app, ["inspect", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 1 and "unknown config key 'train.rlsce_k'; did you mean 'cluster.rlsce_k'?" in bad.output

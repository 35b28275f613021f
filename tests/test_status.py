"""`auxreid status` and stages/status.py on a tiny run: listing, stale children after a re-made parent, an artifact
made with other settings than config.yaml, errors."""

import pytest
import torch
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.model_file import save_model
from stages.artifacts.readers import SettingChange
from stages.cluster import cluster_to_file
from stages.config import Config
from stages.progress import RecordingProgress
from stages.rundir import RunDir, write_run_config
from stages.status import run_status
from test_cluster import FINGERPRINT, synthetic_truth, write_inputs

runner = CliRunner()


@pytest.fixture(autouse=True)
def _run_dataset(monkeypatch):
    """These runs name no dataset on disk; their artifacts are made for the fingerprint FINGERPRINT."""
    monkeypatch.setattr("stages.rundir.run_fingerprint", lambda run, config: ("synth", FINGERPRINT))


def _tiny_run() -> RunDir:
    """A run with round 0's model, round 1's features and aux.h5, and round 1's clusters made by the CLI."""
    config = Config()
    config.cluster.k1, config.cluster.rlsce_k, config.cluster.rho = 20, 10, 0.05
    config.cluster.toc = True
    run = RunDir.resolve("exp")
    write_run_config(run, config)
    state = {"w": torch.zeros(2)}
    save_model(run.model(0), student=state, teacher=state, config=config, round=0, step=0)
    run.round_dir(1).mkdir(parents=True)
    _, aux = write_inputs(run.round_dir(1), synthetic_truth(noise=1.0), round=1)
    aux.replace(run.aux)
    result = runner.invoke(app, ["cluster", "exp", "--round", "1"])
    assert result.exit_code == 0, result.output
    return run


def test_status_lists_every_round_artifact():
    run = _tiny_run()
    result = runner.invoke(app, ["status", "exp"])
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert lines[0] == f"run exp ({run.path})" and {"run", "round_000", "round_001"} <= set(lines)
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:7]] for line in lines if "│" in line}
    assert cells["clusters.h5"][:3] == ["yes", "1", "clusters v1"] and cells["clusters.h5"][4] == "no"
    assert cells["features.h5"][4] == "-" and cells["config.yaml"][:3] == ["yes", "", "config"]
    assert cells["eval.h5"] == ["no", "", "", "", ""]
    assert lines[-1] == "5 artifacts, none stale (-: no parent recorded)"
    rows = {row.name: row for row in run_status(run)}
    assert list(rows) == ["config.yaml", "aux.h5", "round_000/model.pt", "round_000/eval.h5", "round_001/features.h5",
                          "round_001/clusters.h5", "round_001/model.pt", "round_001/eval.h5"]
    assert rows["round_001/clusters.h5"].checked and not rows["round_001/features.h5"].checked
    assert rows["round_000/model.pt"].schema == "model v2" and rows["round_001/model.pt"].exists is False


def test_status_flags_children_of_a_remade_artifact():
    run = _tiny_run()
    write_inputs(run.round_dir(1), synthetic_truth(noise=1.0, seed=7), round=1, with_aux=False)  # re-extract round 1
    result = runner.invoke(app, ["status", "exp"])
    assert result.exit_code == 0, result.output
    assert "1 stale of 5 artifacts; re-make them (then what was made from them):" in result.output
    assert ("  round_001/clusters.h5 (features round_001/features.h5 changed): auxreid cluster exp --round 1"
            in result.output.splitlines())
    stale = {row.name: row.stale for row in run_status(run)}
    assert [s.name for s in stale["round_001/clusters.h5"]] == ["features"] and not stale["aux.h5"]
    run.aux.unlink()
    gone = {row.name: row.stale for row in run_status(run)}["round_001/clusters.h5"]
    assert [(s.name, s.current_sha) for s in gone] == [("aux", None), ("features", gone[1].current_sha)]


def test_stage_warns_when_it_reads_a_stale_input(tmp_path):
    run = _tiny_run()
    write_inputs(run.round_dir(1), synthetic_truth(noise=1.0, seed=7), round=1, with_aux=False)
    progress = RecordingProgress()
    config = Config()
    config.cluster.k1, config.cluster.rlsce_k, config.cluster.rho = 20, 10, 0.05
    config.cluster.sts = False
    cluster_to_file(config, features_path=run.features(1), aux_path=None,
                out_path=tmp_path / "c2.h5", round=1, eps_from=run.clusters(1), progress=progress)
    assert progress.warnings == [
        f"{run.clusters(1)} is stale: it was made from inputs that have changed since (features {run.features(1)} "
        "changed); re-run `auxreid cluster` for it to bring it up to date (`auxreid status RUN` lists every stale file)"
    ]


def test_a_set_in_run_mode_writes_a_variant_that_status_lists_and_leaves_the_run_alone():
    run = _tiny_run()
    official = run.clusters(1).read_bytes()
    result = runner.invoke(app, ["cluster", "exp", "--round", "1", "--set", "cluster.min_samples=2"])
    assert result.exit_code == 0, result.output
    variant = run.round_dir(1) / "variants" / "cluster.min_samples=2" / "clusters.h5"
    assert ("variant cluster.min_samples=2 (cluster.min_samples 2 here, 4 in config.yaml): written into "
            f"{variant.parent}") in " ".join(result.output.split())
    assert variant.is_file() and run.clusters(1).read_bytes() == official
    result = runner.invoke(app, ["status", "exp"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-2:] == [
        "1 variant beside the run's own files (made with --set or other inputs; not part of the loop): "
        "round_001/variants/cluster.min_samples=2",
        "6 artifacts, none stale (-: no parent recorded)"]
    assert "variant: cluster.min_samples 2 here, 4 in config.yaml" in " ".join(result.output.split())
    rows = {row.name: row for row in run_status(run)}
    row = rows["round_001/variants/cluster.min_samples=2/clusters.h5"]
    assert (row.variant, row.settings, row.group) == ("cluster.min_samples=2", [SettingChange("cluster.min_samples", 2, 4)],
                                                      "round_001 variant cluster.min_samples=2")
    assert row.rerun == "auxreid cluster exp --round 1 --set cluster.min_samples=2"
    assert not any(row.settings for name, row in rows.items() if "variants" not in name)


def test_status_and_a_stage_name_an_artifact_made_with_other_settings_than_an_edited_config(tmp_path):
    run = _tiny_run()
    run.config_path.write_text(run.config_path.read_text().replace("min_samples: 4", "min_samples: 2"))
    result = runner.invoke(app, ["status", "exp"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-2:] == [
        "1 stale of 5 artifacts; re-make them (then what was made from them):",
        "  round_001/clusters.h5 (cluster.min_samples 4 here, 2 in config.yaml): auxreid cluster exp --round 1"]
    rows = {row.name: row for row in run_status(run)}
    assert rows["round_001/clusters.h5"].settings == [SettingChange("cluster.min_samples", 4, 2)]
    assert not rows["round_001/clusters.h5"].stale and not any(row.settings for row in rows.values()
                                                               if row.name != "round_001/clusters.h5")
    progress = RecordingProgress()
    config = Config()
    config.cluster.k1, config.cluster.rlsce_k, config.cluster.rho, config.cluster.sts = 20, 10, 0.05, False
    cluster_to_file(config, features_path=run.features(1), aux_path=None, out_path=tmp_path / "c2.h5", round=1,
                    eps_from=run.clusters(1), progress=progress)
    assert progress.warnings == [
        f"{run.clusters(1)} is stale: it was made with other settings than {run.config_path} (cluster.min_samples 4 "
        "here, 2 in config.yaml); re-run `auxreid cluster` for it to bring it up to date (`auxreid status RUN` lists "
        "every stale file)"
    ]


def test_status_of_a_missing_run_is_one_line():
    result = runner.invoke(app, ["status", "nope"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: run directory {RunDir.resolve('nope').path} does not exist; create it with `auxreid init nope "
        "--config configs/synth.yaml`"
    )

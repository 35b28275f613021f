"""`auxreid init --sync` (make round's call on every run): a changed CONFIG or --set re-initialises a run and says
what changed, the same request changes nothing, and edits made by hand in config.yaml are never dropped silently."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CONFIGS
from stages.rundir import RunDir, load_run_config
from test_cli_train_round import invoke, refused, snapshot


def _sync(run: RunDir, *sets: str, config=CONFIGS / "synth.yaml"):
    return invoke("init", run.path, "--config", config, *[a for s in sets for a in ("--set", s)], "--sync")


@pytest.fixture
def run(tmp_path, tiny_synth):
    run = RunDir(tmp_path / "exp")
    made = _sync(run, f"data.root={tiny_synth}")
    assert made.exit_code == 0, made.output
    assert made.output.splitlines()[0] == f"created {run.config_path}"
    record = json.loads(run.init_record.read_text())
    assert record["config_yaml"] == run.config_path.read_text() and len(record["request"]) == 64
    return run


def _said(result) -> str:
    return " ".join(result.output.split())


def test_the_same_request_changes_nothing(run, tiny_synth):
    before = snapshot(run.path)
    again = _sync(run, f"data.root={tiny_synth}")
    assert again.exit_code == 0, again.output
    assert again.output.strip() == f"{run.config_path} is up to date" and snapshot(run.path) == before


def test_another_setting_reinitialises_the_run_and_names_the_change(run, tiny_synth):
    changed = _sync(run, f"data.root={tiny_synth}", "cluster.eps=0.55", "cluster.eps_mode=fixed")
    assert changed.exit_code == 0, changed.output
    assert _said(changed).startswith(
        f"re-initialising {run.path}: cluster.eps_mode adaptive in config.yaml, fixed from {CONFIGS / 'synth.yaml'}; "
        f"cluster.eps 0.6 in config.yaml, 0.55 from {CONFIGS / 'synth.yaml'}; what was made with the old settings is "
        "stale now")
    config = load_run_config(run)
    assert (config.cluster.eps, config.cluster.eps_mode) == (0.55, "fixed") and run.model(0).is_file()
    assert json.loads(run.init_record.read_text())["config_yaml"] == run.config_path.read_text()


def test_a_request_that_resolves_to_the_same_config_only_updates_the_record(run, tiny_synth):
    config = run.config_path.read_bytes()
    same = _sync(run, f"data.root={tiny_synth}", f"cluster.eps={load_run_config(run).cluster.eps}")
    assert same.exit_code == 0 and same.output.strip() == f"{run.config_path} is up to date"
    assert run.config_path.read_bytes() == config


def test_hand_edits_stand_while_the_request_is_unchanged_and_refuse_a_changed_one(run, tiny_synth):
    run.config_path.write_text(run.config_path.read_text().replace("min_samples: 4", "min_samples: 3"))
    kept = _sync(run, f"data.root={tiny_synth}")
    assert kept.exit_code == 0 and load_run_config(run).cluster.min_samples == 3
    before = snapshot(run.path)
    line = refused(_sync(run, f"data.root={tiny_synth}", "train.lr=0.0001"))
    assert line == (
        f"error: {run.config_path} was edited since `auxreid init` wrote it (cluster.min_samples 4 as init wrote it, "
        f"3 now); and {CONFIGS / 'synth.yaml'} with this call's --set gives other settings (cluster.min_samples 3 in "
        f"config.yaml, 4 from {CONFIGS / 'synth.yaml'}; train.lr 0.00035 in config.yaml, 0.0001 from "
        f"{CONFIGS / 'synth.yaml'}); re-initialising would drop the edits: carry them into {CONFIGS / 'synth.yaml'} "
        f"(or SET=...), or start the run over with `auxreid init {run.path} --config {CONFIGS / 'synth.yaml'} --force`")
    assert snapshot(run.path) == before


def test_a_run_without_a_record_is_refused_when_the_request_differs(run, tiny_synth):
    run.init_record.unlink()
    line = refused(_sync(run, f"data.root={tiny_synth}", "train.lr=0.0001"))
    assert f"{run.config_path} has no record of what `auxreid init` wrote ({run.init_record} is missing" in line
    same = _sync(run, f"data.root={tiny_synth}")
    assert same.exit_code == 0 and run.init_record.is_file()  # the same config: the record is written now


def test_a_deleted_round_zero_model_is_written_again(run, tiny_synth):
    model = run.model(0).read_bytes()
    run.model(0).unlink()
    again = _sync(run, f"data.root={tiny_synth}")
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == [f"{run.config_path} is up to date", f"wrote {run.model(0)}"]
    assert len(run.model(0).read_bytes()) == len(model)


def test_a_sync_with_nothing_to_do_imports_no_torch(run, tiny_synth):
    code = ("import sys; from typer.testing import CliRunner; from auxreid_cli.main import app; "
            f"r = CliRunner().invoke(app, ['init', {str(run.path)!r}, '--config', {str(CONFIGS / 'synth.yaml')!r}, "
            f"'--set', 'data.root={tiny_synth}', '--sync']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "False"

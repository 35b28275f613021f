"""Variants: a stage given --set (or evaluate given other inputs) in RUN mode writes beside the run's own files.

The rule under test, for every stage: the run's official artifacts always follow its config.yaml; a call that
differs in a setting deciding what the stage writes goes to `variants/<name>/`, which `status` and `report` show as
such; a setting that only changes where or how fast a stage runs, or a value equal to config.yaml's, writes the
official file as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from stages.config import Config
from stages.report import run_report
from stages.rundir import RunDir
from stages.status import run_status
from stages.variants import Difference, setting_differences, variant_name
from test_cli_train_round import built_run, invoke, run_copy, snapshot


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


@pytest.fixture
def run(base, tmp_path):
    return run_copy(base, tmp_path)


def _official(run: Path) -> dict:
    """Every file of the run outside variants/ (what a variant must leave alone)."""
    return {name: state for name, state in snapshot(run).items() if "variants" not in Path(name).parts}


def _said(result) -> str:
    return " ".join(result.output.split())


def test_evaluate_with_a_set_writes_a_variant_that_reranks_the_rounds_own_test_features(run):
    before = _official(run)
    result = invoke("evaluate", run, "--round", "1", "--set", "evaluate.rerank=true")
    assert result.exit_code == 0, result.output
    folder = run / "round_001" / "variants" / "evaluate.rerank=true"
    assert ("variant evaluate.rerank=true (evaluate.rerank true here, false in config.yaml): written into "
            f"{folder}") in _said(result)
    assert sorted(p.name for p in folder.iterdir()) == ["eval.h5", "eval.json"]
    assert _official(run) == before  # eval.h5, eval.json and the shared test_features.h5 untouched
    with h5py.File(folder / "eval.h5") as variant, h5py.File(run / "round_001" / "eval.h5") as own:
        assert bool(variant.attrs["rerank"]) and not bool(own.attrs["rerank"])
        variant_map, own_map = float(variant["metrics/mAP"][()]), float(own["metrics/mAP"][()])

    report = run_report(RunDir(run))
    assert [(v.round, v.name, v.mAP, v.note) for v in report.variants] == [
        (1, "evaluate.rerank=true", variant_map, "evaluate.rerank true here, false in config.yaml")]
    assert [row.mAP for row in report.rows if row.round == 1] == [own_map]
    assert not any(row.eval_note for row in report.rows)
    markdown = (run / "report.md").read_text()
    assert "## Variants (beside the run's own files, not part of the loop)" in markdown
    assert f"| 1 | evaluate.rerank=true | {variant_map:.4f} |" in markdown

    rows = {row.name: row for row in run_status(RunDir(run))}
    row = rows["round_001/variants/evaluate.rerank=true/eval.h5"]
    assert row.variant == "evaluate.rerank=true" and not row.stale
    assert row.rerun == f"auxreid evaluate {run} --round 1 --set evaluate.rerank=true"

    before = _official(run)
    again = invoke("evaluate", run, "--round", "1", "--set", "evaluate.rerank=true")
    assert again.exit_code == 0, again.output  # the same call replaces its own variant, nothing else
    assert _official(run) == before and len(list((run / "round_001" / "variants").iterdir())) == 1


def test_a_round_evaluated_with_other_settings_than_config_yaml_is_marked_in_the_report(run):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("  rerank: false", "  rerank: true"))
    report = run_report(RunDir(run))
    [row] = [row for row in report.rows if row.round == 1]
    assert row.eval_note == "evaluate.rerank false here, true in config.yaml"
    assert (f"round 1* was evaluated with other settings than config.yaml (evaluate.rerank false here, true in "
            f"config.yaml); `auxreid evaluate {run} --round 1` evaluates it as config.yaml says") in report.summary
    markdown = (run / "report.md").read_text()
    assert "| 1* |" in markdown and "| 0 |" in markdown
    printed = invoke("report", run)
    assert printed.exit_code == 0 and "round 1* was evaluated with other settings" in _said(printed)


def test_train_round_variant_keeps_its_model_metrics_and_checkpoint_beside_the_round(run):
    before = _official(run)
    result = invoke("train-round", run, "--round", "1", "--set", "train.lr=0.0001")
    assert result.exit_code == 0, result.output
    folder = run / "round_001" / "variants" / "train.lr=0.0001"
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.jsonl", "model.pt"]
    assert _official(run) == before  # RUN/metrics.jsonl too
    [record] = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
                if json.loads(line).get("kind", "round") == "round" and "iterations" in json.loads(line)]
    assert record["round"] == 1
    rows = {row.name: row for row in run_status(RunDir(run))}
    assert rows["round_001/variants/train.lr=0.0001/model.pt"].rerun == (
        f"auxreid train-round {run} --round 1 --set train.lr=0.0001")


def test_evaluate_with_another_model_is_a_variant_named_after_it(run):
    before = _official(run)
    result = invoke("evaluate", run, "--round", "1", "--model", run / "round_000" / "model.pt")
    assert result.exit_code == 0, result.output
    folder = run / "round_001" / "variants" / "model=round_000_model.pt"
    assert (folder / "eval.h5").is_file() and _official(run) == before
    assert (f"model {run / 'round_000' / 'model.pt'} instead of the run's {run / 'round_001' / 'model.pt'}"
            in _said(result))
    same = invoke("evaluate", run, "--round", "1", "--model", run / "round_001" / "model.pt")
    assert same.exit_code == 0, same.output  # the round's own model is no variant: the official file is rewritten
    assert "variant" not in same.output and _official(run)["round_001/eval.h5"] != before["round_001/eval.h5"]


def test_mine_aux_variant_lives_in_the_run_folder(run):
    before = _official(run)
    result = invoke("mine-aux", run, "--set", "aux.sts_bin_seconds=4")
    assert result.exit_code == 0, result.output
    assert (run / "variants" / "aux.sts_bin_seconds=4.0" / "aux.h5").is_file() and _official(run) == before
    rows = {row.name: row for row in run_status(RunDir(run))}
    assert rows["variants/aux.sts_bin_seconds=4.0/aux.h5"].group == "run variant aux.sts_bin_seconds=4.0"


@pytest.mark.parametrize("assignment", ["cluster.device=cpu", "cluster.min_samples=3"])
def test_a_set_that_changes_no_result_writes_the_official_file(run, assignment):
    """A device (how it runs) or config.yaml's own value makes no variant."""
    before = _official(run)
    result = invoke("cluster", run, "--round", "1", "--set", assignment)
    assert result.exit_code == 0, result.output
    assert "variant" not in result.output and not (run / "round_001" / "variants").exists()
    assert _official(run)["round_001/clusters.h5"] != before["round_001/clusters.h5"]


def test_variant_names_spell_the_difference_and_stay_short():
    official, asked = Config(), Config()
    asked.cluster.min_samples, asked.cluster.eps, asked.cluster.device = 2, 0.5, "cpu"
    differences = setting_differences("cluster", official, asked)
    assert differences == [Difference("cluster.eps", official.cluster.eps, 0.5),
                           Difference("cluster.min_samples", 4, 2)]
    assert variant_name(differences) == "cluster.eps=0.5,cluster.min_samples=2"
    long = [Difference(f"cluster.k{i}", 1, "x" * 20) for i in range(8)]
    name = variant_name(long)
    assert len(name) == 96 and name[-9] == "@" and name != variant_name(long[:7])
    assert variant_name([Difference("data.root", "", "/a b/c")]) == "data.root=_a_b_c"

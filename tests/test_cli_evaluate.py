"""CLI tests for `auxreid evaluate` and `auxreid report` (exit codes, error text, files written)."""

import json

import numpy as np
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.schemas import FEATURES
from stages.config import Config
from test_report import write_eval

runner = CliRunner()


def _features(path, reference, *, with_gallery=True):
    data = {}
    splits = [("query", "query_emb", "qid", "qcam")] + ([("gallery", "gallery_emb", "gid", "gcam")] if with_gallery else [])
    for split, emb, ids, cams in splits:
        n = len(reference[emb])
        data.update({f"{split}/features": reference[emb], f"{split}/tracklet_index": np.arange(n),
                     f"{split}/camera": reference[cams], f"{split}/person_id": reference[ids],
                     f"{split}/num_frames": np.ones(n, np.int64)})
    config = Config()
    config.evaluate.toc = config.evaluate.scp = config.evaluate.sts = False
    provenance = make_provenance(FEATURES, dataset="ref", fingerprint="f" * 16, round=4, config=config)
    return write_artifact(path, provenance, data, attrs={"mode": "infer"})


def test_evaluate_features_prints_metrics_and_writes_json(reference, tmp_path):
    features = _features(tmp_path / "f.h5", reference)
    result = runner.invoke(app, ["evaluate", "--features", str(features), "--out", str(tmp_path / "eval.h5")])
    assert result.exit_code == 0, result.output
    assert "0.4917" in result.output and "120 evaluated, 0 skipped" in result.output
    record = json.loads((tmp_path / "eval.json").read_text())
    assert abs(record["mAP"] - float(reference["mAP"])) <= 1e-6 and record["round"] == 4


def test_evaluate_missing_gallery_exits_1(reference, tmp_path):
    features = _features(tmp_path / "f.h5", reference, with_gallery=False)
    result = runner.invoke(app, ["evaluate", "--features", str(features), "--out", str(tmp_path / "eval.h5")])
    assert result.exit_code == 1
    assert "error:" in result.output and "has no 'gallery' features" in result.output
    assert not (tmp_path / "eval.h5").exists()


def test_evaluate_run_without_round_exits_1():
    result = runner.invoke(app, ["evaluate", "demo"])
    assert result.exit_code == 1 and "say which round of demo to evaluate with --round R" in result.output


def test_report_missing_run_exits_1(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 1 and "does not exist; create it with `auxreid init`" in result.output


def test_report_prints_rounds(tmp_path):
    run = tmp_path / "run"
    (run / "round_001").mkdir(parents=True)
    write_eval(run / "round_001" / "eval.h5", 0.25)
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert "0.2500" in result.output and (run / "report.md").is_file() and (tmp_path / "r.png").is_file()


def test_report_without_out_draws_run_report_png(tmp_path):
    run = tmp_path / "run"
    (run / "round_001").mkdir(parents=True)
    write_eval(run / "round_001" / "eval.h5", 0.25)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.png").is_file() and "report.png" in (run / "report.md").read_text()

"""Tests for stages/report.py and stages/views/report_table.py: per-round rows from a run directory and metrics.jsonl, figure and report.md."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.model_file import save_model
from stages.artifacts.schemas import CLUSTERS, EVAL, FEATURES
from stages.config import Config
from stages.errors import AuxReidError
from stages.report import collect_rows, read_round_records, run_report
from stages.views.report_table import (
    BEST_LABEL,
    LAST_LABEL,
    RoundRow,
    best_evaluated_round,
    losses_table,
    markdown_table,
    summary_lines,
)

LOSSES = {"id": 2.0, "triplet": 0.5, "soft_id": 1.5, "soft_triplet": 0.25, "total": 2.25}


def _round(run, r, *, eval_map=None, clusters=None, step=None, extract_s=None):
    folder = run / f"round_{r:03d}"
    folder.mkdir(parents=True)
    if eval_map is not None:
        write_eval(folder / "eval.h5", eval_map, round=r)
    if clusters is not None:
        data = {"labels": np.zeros(4, np.int64), "centroids": np.zeros((clusters, 2), np.float32),
                "nearest_clusters": np.zeros((clusters, 1), np.int64), "quality/nmi": np.float64(0.5),
                "quality/purity": np.float64(0.75), "quality/nmi_all": np.float64(0.625)}
        write_artifact(folder / "clusters.h5", make_provenance(CLUSTERS, dataset="d", fingerprint="f", round=r), data,
                       attrs={"num_clusters": clusters, "noise_ratio": 0.25, "eps": 0.5, "seconds": 2.0})
    if extract_s is not None:
        write_artifact(folder / "features.h5", make_provenance(FEATURES, dataset="d", fingerprint="f", round=r),
                       {"train/features": np.zeros((4, 2), np.float32)}, attrs={"mode": "cluster", "seconds": extract_s})
    if step is not None:
        state = {"w": torch.zeros(3)}
        save_model(folder / "model.pt", student=state, teacher=state, config=Config(), round=r, step=step)


def write_eval(path, eval_map, *, round=1):
    """An eval.h5 whose mAP is `eval_map` and rank-1 `eval_map` + 0.1, 3 seconds (eval.h5 is report's source)."""
    columns = {f"{split}/{name}": np.zeros(2, np.int64) for split in ("query", "gallery")
               for name in ("person_id", "camera", "tracklet_index", "num_frames")}
    data = {**columns, "query/features": np.zeros((2, 2), np.float32), "gallery/features": np.zeros((2, 2), np.float32),
            "metrics/mAP": np.float64(eval_map), "metrics/cmc": np.array([eval_map + 0.1, 1.0]),
            "metrics/mINP": np.float64(eval_map), "ap": np.zeros(2), "topk_index": np.zeros((2, 1), np.int64),
            "topk_distance": np.zeros((2, 1), np.float32)}
    write_artifact(path, make_provenance(EVAL, dataset="d", fingerprint="f", round=round), data, attrs={"seconds": 3.0})


def _metrics(run, *records):
    lines = [json.dumps({"kind": "iteration", "round": 1, "iteration": 1, "losses": LOSSES})]
    lines += [json.dumps({"kind": "round", **record}) for record in records]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_collect_rows_reads_each_artifact_and_the_round_records(tmp_path):
    run = tmp_path / "run"
    _round(run, 0, eval_map=0.25, step=0)
    _round(run, 1, clusters=12, step=40, extract_s=5.0)
    _round(run, 2, eval_map=0.5, clusters=15, step=100)
    _metrics(run, {"round": 1, "iterations": 30, "losses": {"total": 9.0}, "seconds": 1.0},  # re-trained below
             {"round": 1, "iterations": 40, "losses": LOSSES, "seconds": 12.5, "pseudo_label_precision": 0.875})
    rows = collect_rows(run)
    quality = dict(clusters=None, noise_ratio=0.25, nmi=0.5, nmi_all=0.625, purity=0.75, cluster_s=2.0)
    assert rows == [
        RoundRow(round=0, mAP=0.25, rank1=0.35, step=0, evaluate_s=3.0),
        RoundRow(round=1, **{**quality, "clusters": 12}, step=40, iterations=40, losses=LOSSES, precision=0.875,
                 extract_s=5.0, train_s=12.5),
        RoundRow(round=2, mAP=0.5, rank1=0.6, **{**quality, "clusters": 15}, step=100, iterations=60, evaluate_s=3.0),
    ]
    assert rows[1].loss == 2.25 and rows[2].loss is None
    assert markdown_table(rows).splitlines()[3] == (
        "| 1 | - | - | 12 | 0.2500 | 0.5000 | 0.6250 | 0.7500 | 40 | 2.2500 | 0.8750 | 5.0 | 2.0 | 12.5 | - |")
    assert losses_table(rows).splitlines()[2] == "| 1 | 2.0000 | 0.5000 | 1.5000 | 0.2500 | 2.2500 |"


def test_read_round_records_refuses_a_broken_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_round_records(path) == {}
    path.write_text(json.dumps({"kind": "round", "round": 2, "iterations": 5}) + "\n\n{\"kind\": \"iter")
    with pytest.raises(AuxReidError, match=r"metrics.jsonl line 3 is not valid JSON .*delete that line"):
        read_round_records(path)
    path.write_text(json.dumps({"kind": "round", "round": 2, "iterations": 5}) + "\n[1]\n")
    with pytest.raises(AuxReidError, match=r"line 2 is not a JSON object"):
        read_round_records(path)


def test_run_report_writes_figure_and_markdown(tmp_path):
    run = tmp_path / "run"
    _round(run, 1, eval_map=0.3, clusters=10, extract_s=4.0)
    _round(run, 2, eval_map=0.4)
    _metrics(run, {"round": 1, "iterations": 7, "losses": LOSSES, "seconds": 6.0})
    report = run_report(run, tmp_path / "report.png")
    with Image.open(report.figure) as image:
        assert image.size == (1500, 800)
    text = report.markdown.read_text()
    assert "| 2 | 0.4000 | 0.5000 | - | - | - | - | - | - | - | - | - | - | - | 3.0 |" in text
    assert "## Mean losses per round" in text and "![report](../report.png)" in text


def test_run_report_without_training_has_no_losses_table(tmp_path):
    run = tmp_path / "run"
    _round(run, 0, eval_map=0.3, step=0)
    text = run_report(run, tmp_path / "r.png").markdown.read_text()
    assert "Mean losses" not in text and "| 0 | 0.3000 | 0.4000 |" in text


def test_run_report_without_rounds_raises(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(AuxReidError, match="has no round_NNN directories yet"):
        run_report(tmp_path / "run", tmp_path / "r.png")
    with pytest.raises(AuxReidError, match="run directory .*missing does not exist"):
        run_report(tmp_path / "missing", tmp_path / "r.png")


def test_run_report_reads_eval_h5_not_its_json_copy(tmp_path):
    run = tmp_path / "run"
    (run / "round_001").mkdir(parents=True)
    write_eval(run / "round_001" / "eval.h5", 0.5)
    (run / "round_001" / "eval.json").write_text("{not json")
    assert collect_rows(run)[0].mAP == 0.5
    (run / "round_001" / "eval.h5").write_bytes(b"not hdf5")
    with pytest.raises(AuxReidError, match=r"round_001/eval.h5 is not a readable HDF5 file"):
        run_report(run, tmp_path / "r.png")




NAN = math.nan


def test_best_evaluated_round_is_the_highest_map_after_round_0():
    assert best_evaluated_round({0: 0.9, 2: 0.5, 4: 0.7, 6: 0.6}) == 4  # round 0 is higher but untrained
    assert best_evaluated_round({6: 0.7, 2: 0.7, 4: 0.6}) == 2  # a tie goes to the earlier round, whatever the order
    assert best_evaluated_round({2: NAN, 4: 0.1, 6: 0.2}) == 6  # NaN is never the best, not even first in line
    assert best_evaluated_round({0: 0.4, 2: NAN}) is None  # round 0 does not stand in for a NaN trained round
    assert best_evaluated_round({0: 0.4}) == 0  # round 0 alone
    assert best_evaluated_round({0: NAN}) is None
    assert best_evaluated_round({}) is None


def test_summary_lines_say_why_there_is_no_best_round():
    assert summary_lines([RoundRow(round=0), RoundRow(round=1)]) == [
        f"{LAST_LABEL}: none (no round has an eval.h5 yet)", f"{BEST_LABEL}: none (no round has an eval.h5 yet)"]
    assert summary_lines([RoundRow(round=0, mAP=0.25, rank1=0.5), RoundRow(round=1)]) == [
        f"{LAST_LABEL}: round 0, mAP 0.2500, rank-1 0.5000",
        f"{BEST_LABEL}: round 0, mAP 0.2500, rank-1 0.5000 (round 0, the initial model before any training, "
        "is the only evaluated round)"]
    assert summary_lines([RoundRow(round=0, mAP=0.25), RoundRow(round=2, mAP=NAN, rank1=NAN)]) == [
        f"{LAST_LABEL}: round 2, mAP NaN, rank-1 NaN",
        f"{BEST_LABEL}: none (every evaluated round after round 0 has a NaN mAP)"]
    assert summary_lines([RoundRow(round=0, mAP=NAN)])[1] == (
        f"{BEST_LABEL}: none (round 0, the only evaluated round, has a NaN mAP)")


def test_report_command_prints_the_last_and_the_best_evaluated_round(tmp_path):
    """Rounds 0, 2, 4, 6 and 8 evaluated (8 with a NaN mAP), 5 trained but not evaluated: numbers from eval.h5."""
    run = tmp_path / "run"
    for r, eval_map in ((0, 0.875), (2, 0.5), (4, 0.625), (6, 0.5), (8, NAN)):
        _round(run, r, eval_map=eval_map)
    _round(run, 5, clusters=10)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    last = "last evaluated round: round 8, mAP NaN, rank-1 NaN"
    best = "best of evaluated rounds, as the paper reports: round 4, mAP 0.6250, rank-1 0.7250"
    assert last in result.output.splitlines() and best in result.output.splitlines()
    assert f"- {last}\n- {best}\n" in (run / "report.md").read_text()


def test_report_with_an_oracle_run_says_what_share_of_its_map_label_free_reaches(tmp_path):
    """Compared at the last round both runs evaluated after round 0 (round 4 here; round 6 only in the oracle)."""
    run, oracle = tmp_path / "run", tmp_path / "oracle"
    for r, eval_map in ((0, 0.5), (2, 0.5), (4, 0.625)):
        _round(run, r, eval_map=eval_map)
    for r, eval_map in ((0, 0.5), (2, 0.75), (4, 0.78125), (6, 0.8)):
        _round(oracle, r, eval_map=eval_map)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.png"), "--oracle", str(oracle)])
    assert result.exit_code == 0, result.output
    line = (f"label-free reaches, of the oracle's mAP: 80% at round 4 (mAP 0.6250 against 0.7812 with true identities "
            f"as pseudo labels, run {oracle})")
    assert line in result.output.splitlines() and f"- {line}\n" in (run / "report.md").read_text()
    missing = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.png"), "--oracle",
                                       str(tmp_path / "none")])
    assert missing.exit_code == 1 and f"error: --oracle: {tmp_path / 'none'} has no round_NNN directories" in missing.output


def test_report_figure_stars_the_best_round():
    from matplotlib import pyplot as plt

    from stages.views.report_plot import report_figure

    rows = [RoundRow(round=r, mAP=m, rank1=0.5) for r, m in ((0, 0.9), (2, 0.4), (4, 0.6), (6, 0.6))]
    figure = report_figure(rows, title="run t")
    try:
        lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
        assert list(lines["best mAP (round 4)"].get_xydata()) == [pytest.approx([4, 0.6])]
    finally:
        plt.close(figure)


def test_a_nan_score_shows_as_nan_where_a_missing_one_shows_a_dash(tmp_path):
    """A NaN mAP is a result gone wrong; '-' would read as "not evaluated" in the table, report.md and the figure."""
    from matplotlib import pyplot as plt

    from stages.views.report_plot import report_figure
    from stages.views.report_table import format_value, table_rows

    assert (format_value(NAN), format_value(None), format_value(0.5)) == ("NaN", "-", "0.5000")
    rows = [RoundRow(round=1, losses={"total": NAN}), RoundRow(round=2, mAP=NAN, rank1=NAN)]
    assert table_rows(rows, ("round", "mAP", "rank1", "loss")) == [["1", "-", "-", "NaN"], ["2", "NaN", "NaN", "-"]]
    run = tmp_path / "run"
    _round(run, 1, eval_map=0.25)
    _round(run, 2, eval_map=NAN)
    _round(run, 3, clusters=10)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
             if line.startswith("│") and "│" in line[1:]]
    assert cells[:3] == [["1", "0.2500", "0.3500", "-", "-", "-", "-", "-"], ["2", "NaN", "NaN", "-", "-", "-", "-", "-"],
                         ["3", "-", "-", "10", "0.2500", "0.5000", "0.6250", "0.7500"]]
    assert "| 2 | NaN | NaN | - | - | - | - | - | - | - | - | - | - | - | 3.0 |" in (run / "report.md").read_text()
    figure = report_figure(collect_rows(run), title="run t")
    try:
        lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
        assert list(lines["mAP NaN"].get_xydata()) == [pytest.approx([2, 0])]
    finally:
        plt.close(figure)

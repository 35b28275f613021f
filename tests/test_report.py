"""Tests for stages/report.py: per-round rows from a run directory, figure and report.md."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stages.artifacts.h5 import make_provenance, write_artifact
from stages.config import Config
from stages.errors import AuxReidError
from stages.model.checkpoint import save_model
from stages.report import RoundRow, collect_rows, markdown_table, run_report
from stages.artifacts.schemas import CLUSTERS


def _round(run, r, *, eval_map=None, clusters=None, step=None):
    folder = run / f"round_{r:03d}"
    folder.mkdir(parents=True)
    if eval_map is not None:
        (folder / "eval.json").write_text(json.dumps({"mAP": eval_map, "rank1": eval_map + 0.1}))
    if clusters is not None:
        data = {"labels": np.zeros(4, np.int64), "centroids": np.zeros((clusters, 2), np.float32),
                "nearest_clusters": np.zeros((clusters, 1), np.int64), "quality/nmi": np.float64(0.5),
                "quality/purity": np.float64(0.75)}
        write_artifact(folder / "clusters.h5", make_provenance(CLUSTERS, dataset="d", fingerprint="f", round=r), data,
                       attrs={"num_clusters": clusters, "noise_ratio": 0.25, "eps": 0.5})
    if step is not None:
        state = {"w": torch.zeros(3)}
        save_model(folder / "model.pt", student=state, teacher=state, config=Config(), round=r, step=step)


def test_collect_rows_reads_each_artifact(tmp_path):
    run = tmp_path / "run"
    _round(run, 0, step=0)
    _round(run, 1, clusters=12, step=40)
    _round(run, 2, eval_map=0.5, clusters=15, step=100)
    rows = collect_rows(run)
    assert rows == [
        RoundRow(round=0, step=0),
        RoundRow(round=1, clusters=12, noise_ratio=0.25, nmi=0.5, purity=0.75, step=40, iterations=40),
        RoundRow(round=2, mAP=0.5, rank1=0.6, clusters=15, noise_ratio=0.25, nmi=0.5, purity=0.75, step=100,
                 iterations=60),
    ]
    assert markdown_table(rows).splitlines()[3] == "| 1 | - | - | 12 | 0.2500 | 0.5000 | 0.7500 | 40 |"


def test_run_report_writes_figure_and_markdown(tmp_path):
    run = tmp_path / "run"
    _round(run, 1, eval_map=0.3, clusters=10)
    _round(run, 2, eval_map=0.4)
    report = run_report(run, tmp_path / "report.png")
    with Image.open(report.figure) as image:
        assert image.size == (1100, 400)
    text = report.markdown.read_text()
    assert "| 2 | 0.4000 | 0.5000 | - | - | - | - | - |" in text and "![report](../report.png)" in text


def test_run_report_without_rounds_raises(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(AuxReidError, match="has no round_NNN directories yet"):
        run_report(tmp_path / "run", tmp_path / "r.png")
    with pytest.raises(AuxReidError, match="run directory .*missing does not exist"):
        run_report(tmp_path / "missing", tmp_path / "r.png")


def test_run_report_bad_eval_json_raises(tmp_path):
    run = tmp_path / "run"
    (run / "round_001").mkdir(parents=True)
    (run / "round_001" / "eval.json").write_text("{not json")
    with pytest.raises(AuxReidError, match=r"round_001/eval.json is not valid JSON .*re-run `auxreid evaluate`"):
        run_report(run, tmp_path / "r.png")

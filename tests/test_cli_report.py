"""`auxreid report` through the CLI on a real trained run: the two tables and summary checked against the run's
artifacts, report.md and the figure, and every refusal.

A missing run, --out, the default RUN/report.png, the last/best summary lines and --oracle (with a missing oracle
run) on hand-made eval.h5 files are in tests/test_cli_evaluate.py and tests/test_report.py; --out that is a
directory in tests/bad_inputs/test_bad_writes.py; NaN attributes and losses in tests/bad_inputs/test_bad_values.py.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from stages.artifacts.model_file import read_model_file
from stages.artifacts.readers import read_clusters, read_eval
from test_cli_train_round import built_run, invoke, refused, run_copy, snapshot, usage_error


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


def _tables(output: str) -> list[dict[str, list[str]]]:
    """Each printed table (its title wraps at the table's width, so tables are told apart by their frames):
    round -> cells."""
    tables: list[dict[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith("┏"):
            tables.append({})
        elif line.startswith("│") and tables:
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            tables[-1][cells[0]] = cells
    return tables


def test_report_of_a_trained_run_matches_its_artifacts(base, tmp_path):
    run = run_copy(base, tmp_path)
    before = snapshot(run)
    png = tmp_path / "r.png"
    result = invoke("report", run, "--out", png)
    assert result.exit_code == 0, result.output
    evaluation = read_eval(run / "round_001" / "eval.h5")
    clusters = read_clusters(run / "round_001" / "clusters.h5")
    model = read_model_file(run / "round_001" / "model.pt", mmap=True)
    record = next(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                  if json.loads(line)["kind"] == "round")
    mean_ap, rank1 = float(evaluation["metrics/mAP"]), float(evaluation["metrics/cmc"][0])
    quality = [f"{mean_ap:.4f}", f"{rank1:.4f}", str(clusters.attrs["num_clusters"]),
               f"{clusters.attrs['noise_ratio']:.4f}",
               *(f"{float(clusters[f'quality/{key}']):.4f}" for key in ("nmi", "nmi_all", "purity"))]
    text = " ".join(result.output.split())
    assert "retrieval and pseudo labels" in text and "training and stage seconds" in text
    printed, training = _tables(result.output)
    assert printed == {"0": ["0", *["-"] * 7], "1": ["1", *quality]}  # round 0 is neither clustered nor evaluated
    assert training["1"][:3] == ["1", str(model.entries["iterations"]), f"{record['losses']['total']:.4f}"]
    assert "-" not in training["1"] and training["0"] == ["0", *["-"] * 7]
    lines = result.output.splitlines()
    summary = [f"last evaluated round: round 1, mAP {mean_ap:.4f}, rank-1 {rank1:.4f}",
               f"best of evaluated rounds, as the paper reports: round 1, mAP {mean_ap:.4f}, rank-1 {rank1:.4f}"]
    assert lines[-3:] == [*summary, f"wrote {png} and {run / 'report.md'}"]
    markdown = (run / "report.md").read_text()
    assert markdown.startswith(f"# Run {run.name}\n")
    assert f"| 1 | {' | '.join(quality)} | {model.entries['iterations']} | " in markdown
    assert "".join(f"- {line}\n" for line in summary) in markdown
    assert "## Mean losses per round" in markdown and markdown.endswith("![report](../r.png)\n")
    with Image.open(png) as image:
        assert min(image.size) > 100
    after = snapshot(run)
    assert set(after) - set(before) == {"report.md"} and {k: after[k] for k in before} == before


def test_report_of_a_run_without_rounds_writes_nothing(tmp_path):
    run = tmp_path / "exp"
    run.mkdir()
    refused(invoke("report", run, "--out", tmp_path / "r.png"),
            f"error: {run} has no round_NNN directories yet; run `auxreid init` and a round first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"] and not (run / "report.md").exists()


@pytest.mark.parametrize("args", [["bad name"], ["{run}", "--oracle", "bad name"]], ids=["run", "oracle"])
def test_report_refuses_an_unusable_run_name(base, tmp_path, args):
    before = snapshot(base)
    refused(invoke("report", *[a.format(run=base) for a in args], "--out", tmp_path / "r.png"),
            "error: run name 'bad name' is not a usable run name; use letters, digits")
    assert snapshot(base) == before and list(tmp_path.iterdir()) == []


def test_report_refuses_a_metrics_log_with_a_broken_line(base, tmp_path):
    run = run_copy(base, tmp_path)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "round", "round": 2, "loss')
    before = snapshot(run)
    count = len((run / "metrics.jsonl").read_text().splitlines())
    refused(invoke("report", run, "--out", tmp_path / "r.png"),
            f"error: {run / 'metrics.jsonl'} line {count} is not valid JSON (")
    assert snapshot(run) == before and not (tmp_path / "r.png").exists()


def test_report_without_run_is_a_usage_error():
    usage_error(invoke("report"), "Missing argument 'run'")

"""End to end: the demo's synthetic network through `make round N=2` and `make report`, as a user runs them.

Checks the loop's files, their provenance chaining round to round, metrics.jsonl, the report, and that two
rounds of training raise mAP above round 0's. The network is the default one of `auxreid synth`: on a much
smaller one, round 0's random-weight features already score high on a handful of queries and a few rounds do
not reliably beat them. The config is configs/synth.yaml with 16 tracklets a batch instead of 32 (make demo's
100 iterations a round; evaluation at rounds 0 and 2).
"""

import json
import re
import subprocess
from pathlib import Path

from helpers_make import BIN, run_make
from stages.artifacts.h5 import file_sha256, read_provenance
from stages.artifacts.readers import recorded_parents, stale_parents
from stages.config import load_config
from stages.rundir import RunDir, artifacts_root, stage_io

ITERATIONS = 100


def _demo_config(**replace: str) -> str:
    """configs/synth.yaml's text with some `key: value` lines replaced (each must be there exactly once)."""
    text = (Path(__file__).resolve().parents[1] / "configs" / "synth.yaml").read_text()
    for key, value in replace.items():
        line = re.compile(rf"^(\s*{key}:) [^\n#]*", re.MULTILINE)
        assert len(line.findall(text)) == 1, key
        text = line.sub(rf"\1 {value}", text)
    return text


def _synth(out, *args):
    command = [str(BIN / "auxreid"), "synth", "--out", str(out), "--layout", "duke", "--seed", "0", *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)


def _make(*args, timeout=300):
    result = run_make(*args, artifacts=artifacts_root(), timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _check_provenance(run, config, stage, round):
    """Every output of the stage records exactly its stage_io inputs' current hashes and locations."""
    io = stage_io(run, stage, round, config)
    for role, output in io.outputs.items():
        if role in ("checkpoint", "metrics", "eval_json"):
            continue
        parents = recorded_parents(output)
        assert parents, (stage, round, output)
        for parent_role, record in parents.items():
            parent = io.inputs[parent_role]
            assert record.sha256 == file_sha256(parent), (output, parent_role)
            assert record.path is not None and record.path.resolve() == parent.resolve(), (output, parent_role)
        assert stale_parents(output) == []
        if output.suffix == ".h5":
            provenance, _ = read_provenance(output)
            assert provenance.round == round and provenance.dataset == "synth", output


def test_make_round_two_rounds_of_the_demo_raise_map(tmp_path):
    data, config_file = tmp_path / "synth", tmp_path / "demo16.yaml"
    _synth(data)
    config_file.write_text(_demo_config(batch_size="16", every="2"))
    args = ["RUN=e2e", "N=2", f"CONFIG={config_file}", f"DATA={data}", f"BIN={BIN}", f"STAMP={tmp_path / 'stamp'}"]
    (tmp_path / "stamp").write_text("")
    _make("round", *args)
    _make("report", *args)
    run = RunDir.resolve("e2e")
    config = load_config(run.config_path)
    assert config.data.root == str(data) and config.train.fixed_iters == ITERATIONS

    for r in (1, 2):
        for stage in ("extract", "cluster", "train-round"):
            _check_provenance(run, config, stage, r)
    for r in (0, 2):
        _check_provenance(run, config, "evaluate", r)
    _check_provenance(run, config, "mine-aux", 1)
    assert recorded_parents(run.features(2))["model"].sha256 == file_sha256(run.model(1))
    assert recorded_parents(run.model(2))["model"].sha256 == file_sha256(run.model(1))
    assert recorded_parents(run.clusters(2))["eps_from"].sha256 == file_sha256(run.clusters(1))
    assert not run.eval(1).exists() and not run.train_checkpoint(2).exists()

    records = [json.loads(line) for line in run.metrics_log.read_text().splitlines()]
    iterations = [(r["round"], r["iteration"]) for r in records if r["kind"] == "iteration"]
    assert iterations == [(r, i) for r in (1, 2) for i in range(1, ITERATIONS + 1)]
    rounds = [r for r in records if r["kind"] == "round"]
    assert [r["round"] for r in rounds] == [1, 2] and all(r["iterations"] == ITERATIONS for r in rounds)

    report = run.report_md.read_text()
    assert (run.path / "report.png").stat().st_size > 10_000 and "## Mean losses per round" in report
    assert [line.split(" | ")[0] for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:4] \
        == ["| 0", "| 1", "| 2"]
    before, after = (json.loads(run.eval_json(r).read_text())["mAP"] for r in (0, 2))
    print(f"demo network mAP: round 0 {before:.3f}, round 2 {after:.3f}")
    assert after > before + 0.03

    again = _make("round", *args)  # everything is up to date: only the sync with CONFIG runs, and changes nothing
    assert [line for line in again.stdout.splitlines() if "auxreid " in line] == [
        f"{BIN}/auxreid init e2e --config {config_file} --set data.root={data} --sync"]
    assert f"{run.config_path} is up to date" in again.stdout and "Nothing to be done for 'loop'" in again.stdout

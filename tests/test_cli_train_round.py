"""`auxreid train-round` through the CLI: explicit mode's files and printout, and every option combination refused.

Run-mode success, its missing clusters.h5 and explicit mode with only --clusters are in tests/test_train_round.py
(test_cli_train_round_run_mode_and_missing_inputs); stage refusals (zero clusters, NaN loss, another dataset) are
tested on `run_train_round` there, and foreign or NaN inputs in run mode in tests/bad_inputs/test_bad_values.py.

This module also holds what the other test_cli_<command>.py modules share: `built_run`, a tiny run made through
round 1 by the CLI itself (init, extract, mine-aux, cluster, train-round of 1 iteration, evaluate) once per test
session, `run_copy` for a test that writes into a run, and the checks `refused` / `usage_error` / `snapshot`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from auxreid_cli.main import app
from helpers_runs import tiny_config
from stages.artifacts.model_file import read_model_file
from stages.artifacts.readers import read_clusters, recorded_parents

runner = CliRunner()

_BUILT: dict[str, Path] = {}


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def built_run(tmp_path_factory: pytest.TempPathFactory, dataset_root: Path) -> Path:
    """The run `base` through round 1 on the `tiny_synth` dataset, made by the CLI once per session; read-only."""
    if "run" not in _BUILT:
        root = tmp_path_factory.mktemp("cli_run")
        (root / "tiny.yaml").write_text(tiny_config(fixed_iters=1, every=1))
        run = root / "base"
        steps = [("init", run, "--config", root / "tiny.yaml", "--set", f"data.root={dataset_root}"),
                 ("extract", run, "--round", "1"), ("mine-aux", run), ("cluster", run, "--round", "1"),
                 ("train-round", run, "--round", "1"), ("evaluate", run, "--round", "1")]
        for step in steps:
            result = invoke(*step)
            assert result.exit_code == 0, (step, result.output)
        _BUILT["run"] = run
    return _BUILT["run"]


def run_copy(base: Path, folder: Path) -> Path:
    """A copy of `base` in `folder`, for a test that writes into it: artifacts hard-linked (stages replace an
    artifact by renaming a new file into place, never write into it), text files copied (log.txt and
    metrics.jsonl are appended to)."""

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith((".h5", ".pt")):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    return Path(shutil.copytree(base, folder / base.name, copy_function=link_or_copy))


def configure(run: Path, *assignments: str) -> None:
    """Change a run's own settings as a user does, in its config.yaml (a --set on a run writes a variant beside it)."""
    from stages.rundir import RunDir, load_run_config, write_run_config

    run_dir = RunDir(Path(run))
    write_run_config(run_dir, load_run_config(run_dir, list(assignments)))


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of every file under `folder` but the command log: a write, a replacement (a new
    inode) or a new file changes it."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "log.txt"}


def refused(result: Result, *fragments: str, alone: bool = True) -> str:
    """The one `error:` line of a command stopped by the error boundary: exit 1, no crash or traceback, every
    fragment in that line; `alone`: the output is that line and nothing else."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    if alone:
        assert result.output.strip() == errors[0], result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def usage_error(result: Result, text: str) -> None:
    """Typer refused the command line (exit 2) before the command ran, saying `text`."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and text in result.output, result.output


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


def _explicit(base: Path, out: Path) -> list[object]:
    return ["train-round", "--clusters", base / "round_001" / "clusters.h5", "--model", base / "round_000" / "model.pt",
            "--out", out]


def test_explicit_mode_writes_model_and_metrics_and_says_what_it_trained(base, tmp_path):
    before = snapshot(base)
    out, metrics = tmp_path / "m.pt", tmp_path / "metrics.jsonl"
    result = invoke(*_explicit(base, out), "--metrics", metrics, "--set", "train.lr=0.0007")
    assert result.exit_code == 0, result.output
    model = read_model_file(out)
    clusters = read_clusters(base / "round_001" / "clusters.h5")
    entries = model.entries
    assert (model.round, model.step, entries["iterations"]) == (1, 1, 1)  # round from clusters.h5, step 0 + 1
    assert entries["num_clusters"] == clusters.attrs["num_clusters"] > 0
    assert model.config.train.fixed_iters == 1 and model.config.train.lr == 0.0007  # round 0's config, --set on top
    assert set(recorded_parents(out)) == {"clusters", "model"}
    losses = ", ".join(f"{k} {float(v):.3f}" for k, v in entries["mean_losses"].items())
    assert (f"wrote {out} (round 1, step 1, 1 iteration on {entries['num_clusters']} clusters; mean losses {losses})"
            in result.output.splitlines())
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["iteration", "round"] and records[0]["lr"] == 0.0007
    assert (records[1]["round"], records[1]["iterations"], records[1]["clusters"]) == (1, 1, entries["num_clusters"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "metrics.jsonl"]
    assert snapshot(base) == before  # explicit mode reads the run's files, writes none of them


@pytest.mark.parametrize(("iterations", "clusters", "said"), [(1, 1, "1 iteration on 1 cluster"),
                                                               (2, 3, "2 iterations on 3 clusters")])
def test_the_printout_says_iterations_and_clusters_in_the_right_number(tmp_path, capsys, iterations, clusters, said):
    import torch

    from auxreid_cli.cmd_train import _print_model
    from stages.artifacts.model_file import save_model
    from stages.config import Config

    state = {"w": torch.zeros(1)}
    path = save_model(tmp_path / "m.pt", student=state, teacher=state, config=Config(), round=1, step=5,
                      extra={"iterations": iterations, "num_clusters": clusters, "mean_losses": {"ce": 0.5}})
    _print_model(path)
    assert capsys.readouterr().out.splitlines() == [f"wrote {path} (round 1, step 5, {said}; mean losses ce 0.500)"]


@pytest.mark.parametrize("args", [[], ["RUN"], ["--round", "1"], ["RUN", "--resume"]],
                         ids=["nothing", "run-without-round", "round-without-run", "resume-without-round"])
def test_neither_run_round_nor_files_says_how_to_call_it(base, args):
    before = snapshot(base)
    result = invoke("train-round", *[base if a == "RUN" else a for a in args])
    line = refused(result)
    assert line == ("error: give RUN --round R, or --clusters C.h5 --model M.pt --out M2.pt "
                    "(see `auxreid train-round --help`)")
    assert snapshot(base) == before


@pytest.mark.parametrize(("given", "missing"), [
    (("model",), "--clusters, --out"),
    (("out",), "--clusters, --model"),
    (("clusters", "model"), "--out"),
    (("clusters", "out"), "--model"),
])
def test_explicit_mode_names_every_missing_file(base, tmp_path, given, missing):
    files = {"clusters": base / "round_001" / "clusters.h5", "model": base / "round_000" / "model.pt",
             "out": tmp_path / "m.pt"}
    result = invoke("train-round", *[a for role in given for a in (f"--{role}", files[role])])
    refused(result, f"error: explicit mode needs --clusters, --model and --out; {missing} missing")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("round", ["0", "-1"])
def test_round_below_one_is_refused_in_run_and_explicit_mode(base, tmp_path, round):
    before = snapshot(base)
    message = f"--round must be >= 1, got {round} (round 0's model is written by `auxreid init`)"
    refused(invoke("train-round", base, "--round", round), message)
    refused(invoke(*_explicit(base, tmp_path / "m.pt"), "--round", round), message)
    assert snapshot(base) == before and list(tmp_path.iterdir()) == []


def test_explicit_round_that_the_clusters_are_not_from_is_refused(base, tmp_path):
    result = invoke(*_explicit(base, tmp_path / "m.pt"), "--round", "2")
    refused(result, f"{base / 'round_001' / 'clusters.h5'} is from round 1, but round 2 is needed here")
    assert list(tmp_path.iterdir()) == []


def test_unknown_device_is_refused_before_training(base, tmp_path):
    before = snapshot(base)
    message = "error: unknown device 'gpu'; use auto, cpu, cuda or cuda:N"
    assert refused(invoke(*_explicit(base, tmp_path / "m.pt"), "--device", "gpu")) == message
    assert refused(invoke("train-round", base, "--round", "1", "--device", "gpu")) == message
    assert snapshot(base) == before and list(tmp_path.iterdir()) == []


def test_explicit_config_that_is_not_yaml_is_refused(base, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [\n")
    refused(invoke(*_explicit(base, tmp_path / "m.pt"), "--config", bad), f"config file {bad} is not valid YAML")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]


def test_run_mode_without_the_previous_model_names_it_and_logs_the_failure(base, tmp_path):
    run = run_copy(base, tmp_path)
    (run / "round_000" / "model.pt").unlink()
    before = snapshot(run)
    result = invoke("train-round", run, "--round", "1")
    line = refused(result, f"{run / 'round_000' / 'model.pt'} does not exist; train round 0 first "
                           "(round 0 comes from `auxreid init`)")
    assert snapshot(run) == before  # round 1's model.pt from the build is still there, untouched
    last = (run / "log.txt").read_text().splitlines()[-1]
    assert "  exit 1  " in last and last.endswith(f"({line})")

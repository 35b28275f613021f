"""Tests of the Makefile's loop (`make round`): what reruns when, the evaluation schedule, NPROC, DATA, failures.

Dry runs (`make -n`) over fake artifact files with ordered modification times check the rules; a fake
`auxreid` (which only touches each stage's outputs, named by stage_io) checks that a failing stage
stops make with its message and that the next `make round` picks up where it stopped.
"""

import os
import re
import sys

import pytest

from helpers_make import BIN, ROOT, dry_run, make_env, run_make
from stages.config import shipped_configs
from stages.rundir import RunDir, artifacts_root

T0 = 1_700_000_000  # mtime of the sources (config file, synthetic data); artifacts follow, one second apart


def _schedule(rounds: int, every: int) -> str:
    """A config file on the synthetic network that sets only the loop's schedule (the rest: the schema's defaults)."""
    return f"data:\n  dataset: synth\ntrain:\n  rounds: {rounds}\nevaluate:\n  every: {every}\n"


@pytest.fixture
def loop(tmp_path):
    """Make variables for run 'x' with its own config copy, synthetic-data marker and setup stamp (all old)."""
    config = tmp_path / "loop.yaml"
    config.write_text(_schedule(4, 1))
    synth = tmp_path / "synth"
    synth.mkdir()
    (synth / "synth.json").write_text("{}")
    stamp = tmp_path / "installed"  # newer than pyproject.toml: set up
    stamp.write_text("")
    for path in (config, synth / "synth.json"):
        os.utime(path, (T0, T0))
    return ["RUN=x", f"CONFIG={config}", f"SYNTH={synth}", f"STAMP={stamp}", f"BIN={BIN}"]


def _fake_run(rounds: int, *, evaluate: tuple[int, ...] | None = None) -> RunDir:
    """Touch run x's artifacts of rounds 0..`rounds` in the order make would write them (increasing mtimes).

    Its frozen config.yaml asks for 5 rounds, evaluated every round.
    """
    run = RunDir.resolve("x")
    evaluate = tuple(range(rounds + 1)) if evaluate is None else evaluate
    order = [run.config_path, run.model(0)] + ([run.test_features(0)] if 0 in evaluate else [])
    for r in range(1, rounds + 1):
        order += [run.features(r)] + ([run.aux, run.eval(0), run.eval_json(0)] if r == 1 and 0 in evaluate else
                                      [run.aux] if r == 1 else [])
        order += [run.clusters(r), run.model(r)] + ([run.test_features(r), run.eval(r), run.eval_json(r)]
                                                    if r in evaluate else [])
    for i, path in enumerate(order, start=1):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_schedule(5, 1) if path == run.config_path else "fake")
        os.utime(path, (T0 + i, T0 + i))
    return run


def _round_commands(r: int, *, evaluate: bool = True) -> list[str]:
    names = [f"auxreid extract x --round {r}", f"auxreid cluster x --round {r}", f"auxreid train-round x --round {r}"]
    return names + (_evaluate_commands(r) if evaluate else [])


def _evaluate_commands(r: int) -> list[str]:
    """Round r's evaluation: its model's test features (when the model changed), then the ranking."""
    return [f"auxreid evaluate x --round {r} --extract-only", f"auxreid evaluate x --round {r}"]


def _synced(commands: list[str]) -> list[str]:
    """A dry run of `round` on an existing run: first `init --sync` (sync-run), then the loop's commands."""
    assert commands and commands[0].startswith("auxreid init x --config ") and commands[0].endswith(" --sync"), commands
    return commands[1:]


def test_make_round_on_a_new_run_lists_every_stage_in_round_order(loop):
    root = artifacts_root()
    commands = dry_run("round", "N=2", "EVERY=1", *loop, artifacts=root)
    assert commands[0].startswith("auxreid init x --config ") and commands[0].endswith(
        f"--set data.root={loop[2][6:]} --sync")
    assert commands[1] == commands[0]  # a dry run cannot see that init also wrote round_000/model.pt
    assert commands[2:] == [
        "auxreid evaluate x --round 0 --extract-only", "auxreid extract x --round 1",
        f"auxreid mine-aux x --features {root}/x/round_001/features.h5", "auxreid evaluate x --round 0",
        *_round_commands(1)[1:], *_round_commands(2)]


def test_make_round_after_two_rounds_runs_only_round_three(loop):
    _fake_run(2)
    assert _synced(dry_run("round", "N=2", "EVERY=1", *loop, artifacts=artifacts_root())) == []
    assert _synced(dry_run("round", "N=3", "EVERY=1", *loop, artifacts=artifacts_root())) == _round_commands(3)


def test_deleting_round_two_clusters_reruns_exactly_what_depends_on_them(loop):
    run = _fake_run(2)
    run.clusters(2).unlink()
    assert _synced(dry_run("round", "N=3", "EVERY=1", *loop, artifacts=artifacts_root())) == [
        *_round_commands(2)[1:], *_round_commands(3)]


def test_a_newer_aux_reruns_round_zero_evaluation_and_every_round(loop):
    run = _fake_run(2)
    os.utime(run.aux, (T0 + 100, T0 + 100))  # e.g. `auxreid mine-aux x` run again by hand
    assert _synced(dry_run("round", "N=2", "EVERY=1", *loop, artifacts=artifacts_root())) == [
        "auxreid evaluate x --round 0", *_round_commands(1)[1:], *_round_commands(2)]


def test_a_newer_aux_or_config_only_re_ranks_and_a_new_model_re_extracts(loop):
    """Round 0's model does not depend on aux.h5 or config.yaml: its test features are kept, only eval.h5 reruns."""
    run = _fake_run(2)
    target = ["N=2", "EVERY=1", str(run.eval(0)), str(run.eval(2))]
    assert dry_run(*target, *loop, artifacts=artifacts_root()) == []
    os.utime(run.aux, (T0 + 100, T0 + 100))
    assert dry_run(str(run.eval(0)), *target[:2], *loop, artifacts=artifacts_root()) == ["auxreid evaluate x --round 0"]
    _fake_run(2)
    os.utime(run.config_path, (T0 + 100, T0 + 100))  # config.yaml edited by hand: evaluate checks extract settings
    assert dry_run(str(run.eval(0)), *target[:2], *loop, artifacts=artifacts_root()) == [
        "auxreid extract x --round 1", f"auxreid mine-aux x --features {run.features(1)}", "auxreid evaluate x --round 0"]
    _fake_run(2)
    os.utime(run.model(2), (T0 + 100, T0 + 100))  # round 2 trained again
    assert dry_run(*target, *loop, artifacts=artifacts_root()) == _evaluate_commands(2)


def test_every_round_call_syncs_an_existing_run_with_config_data_seed_and_set(loop):
    """`init --sync` decides whether the run changes (tests/test_run_sync.py); make hands it every override, SET's
    words as --set, and an edited CONFIG file alone makes the loop rerun nothing until sync rewrites config.yaml."""
    _fake_run(1)
    os.utime(loop[1][7:], None)  # the CONFIG file is edited now
    commands = dry_run("round", "N=1", "EVERY=1", "SET=cluster.eps=0.5 train.lr=0.0001", "SEED=3", *loop,
                       artifacts=artifacts_root())
    assert commands == [f"auxreid init x --config {loop[1][7:]} --set data.root={loop[2][6:]} --set seed=3 "
                        "--set cluster.eps=0.5 --set train.lr=0.0001 --sync"]


def test_set_reaches_a_new_runs_init_and_its_schedule(loop):
    commands = dry_run("round", "SET=train.rounds=2 evaluate.every=2", *loop, artifacts=artifacts_root())
    assert commands[0] == commands[1] == (f"auxreid init x --config {loop[1][7:]} --set data.root={loop[2][6:]} "
                                          "--set train.rounds=2 --set evaluate.every=2 --sync")
    assert [c for c in commands if c.startswith("auxreid train-round")] == ["auxreid train-round x --round 1",
                                                                            "auxreid train-round x --round 2"]
    assert [c.rsplit(" ", 1)[1] for c in commands if c.startswith("auxreid evaluate") and "--extract" not in c] == [
        "0", "2"]


def test_nproc_trains_with_torchrun(loop):
    _fake_run(2)
    commands = _synced(dry_run("round", "N=3", "EVERY=1", "NPROC=2", *loop, artifacts=artifacts_root()))
    assert commands[2] == "torchrun --standalone --nproc_per_node 2 -m auxreid_cli.main train-round x --round 3"
    assert commands[:2] + commands[3:] == _round_commands(3)[:2] + _round_commands(3)[3:]


def test_evaluation_schedule_is_every_kth_round_and_the_last(loop):
    commands = dry_run("round", "N=5", "EVERY=2", *loop, artifacts=artifacts_root())
    evaluated = [c.rsplit(" ", 1)[1] for c in commands if c.startswith("auxreid evaluate") and "--extract-only" not in c]
    assert [c for c in commands if "--extract-only" in c] == [f"auxreid evaluate x --round {r} --extract-only"
                                                             for r in (0, 2, 4, 5)]
    assert evaluated == ["0", "2", "4", "5"]
    assert commands[-3:] == ["auxreid train-round x --round 5", *_evaluate_commands(5)]


def test_schedule_is_read_from_the_frozen_config_else_the_config_file(loop):
    config = loop[1][7:]
    with open(config, "w") as handle:
        handle.write(_schedule(3, 2))
    os.utime(config, (T0, T0))
    new = dry_run("round", *loop, artifacts=artifacts_root())  # no config.yaml yet: CONFIG is read
    assert [c for c in new if "evaluate" in c] == [c for r in (0, 2, 3) for c in _evaluate_commands(r)]
    assert new[-3] == "auxreid train-round x --round 3"
    run = _fake_run(1, evaluate=(0,))  # the run's config.yaml (5 rounds, every round) is what the run follows
    frozen = _synced(dry_run("round", *loop, artifacts=artifacts_root()))
    assert frozen[:3] == [*_evaluate_commands(1), "auxreid extract x --round 2"]
    assert frozen[-3:] == ["auxreid train-round x --round 5", *_evaluate_commands(5)]
    os.utime(config, None)  # CONFIG edited after init: sync-run brings config.yaml in line before the schedule is read
    edited = _synced(dry_run("round", *loop, artifacts=artifacts_root()))
    assert edited[-1] == "auxreid evaluate x --round 5"  # a dry run does not sync
    assert run.config_path.read_text() == _schedule(5, 1)


def _stopped_with(result, line: str) -> None:
    """make printed exactly auxreid's `line` and its own one-line stop of `round`: no traceback, no N/EVERY blame."""
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert lines[0] == line, result.stderr
    assert len(lines) == 2 and re.fullmatch(r"make: \*\*\* \[Makefile:\d+: round\] Error 1", lines[1]), result.stderr


def test_schedule_refuses_a_config_it_cannot_read(loop):
    config = loop[1][7:]
    with open(config, "w") as handle:
        handle.write(_schedule(0, 1))
    result = run_make("-n", "round", *loop, artifacts=artifacts_root())
    _stopped_with(result, f"error: {config}: 'train.rounds' = 0 is out of range; it must be >= 1")


def test_make_round_with_a_missing_or_folder_config_prints_auxreids_error(loop, tmp_path):
    names = ", ".join(shipped_configs())
    for config, words in ((tmp_path / "nope.yaml", "does not exist"), (tmp_path, "is a folder")):
        args = [f"CONFIG={config}" if arg.startswith("CONFIG=") else arg for arg in loop]
        for dry in (["-n"], []):
            result = run_make(*dry, "round", *args, artifacts=artifacts_root())
            _stopped_with(result, f"error: config file {config} {words}; give a YAML file or a shipped config ({names})")
    assert not RunDir.resolve("x").path.exists()


@pytest.mark.parametrize("assignment", ["RUN=x y", "RUN=x ", "RUN=x\ty", "DATA=/data/my data", "CONFIG=my config.yaml"])
def test_a_name_with_whitespace_is_refused_in_one_line_before_any_rule(loop, assignment):
    name, value = assignment.split("=", 1)
    args = [arg for arg in loop if not arg.startswith(f"{name}=")] + [assignment]
    result = run_make("-n", "round", *args, artifacts=artifacts_root())
    assert result.returncode != 0 and result.stdout == ""
    assert re.fullmatch(rf"Makefile:\d+: \*\*\* {name}='{re.escape(value)}' contains whitespace, which make would split "
                        r"into several names; give a name or path without spaces\.  Stop\.\n", result.stderr), result.stderr


def test_an_empty_run_is_refused(loop):
    result = run_make("-n", "round", *loop, "RUN=", artifacts=artifacts_root())
    assert result.returncode != 0
    assert re.fullmatch(r"Makefile:\d+: \*\*\* RUN is empty; name the run, e\.g\. RUN=demo\.  Stop\.\n", result.stderr)


def test_data_uses_the_configs_dataset_at_that_root(loop, tmp_path):
    commands = dry_run("round", "N=1", "EVERY=1", f"DATA={tmp_path}/mydata", *loop, artifacts=artifacts_root())
    assert commands[0].endswith(f"--set data.root={tmp_path}/mydata --sync") and "data.dataset" not in commands[0]
    absent = [arg.replace("SYNTH=", f"SYNTH={tmp_path}/none") if arg.startswith("SYNTH=") else arg for arg in loop]
    commands = dry_run("round", "N=1", "EVERY=1", *absent, artifacts=artifacts_root())
    assert commands[0].startswith("auxreid synth --out ") and commands[1].startswith("auxreid init x")
    assert commands[3:5] == ["auxreid evaluate x --round 0 --extract-only", "auxreid extract x --round 1"]


def test_a_runs_dataset_is_its_configs_never_the_synthetic_network_unasked(loop, tmp_path):
    """Without DATA, a config that names another dataset trains on that one (or fails saying it is absent); the
    synthetic network is generated and used only for a config that names it."""
    duke = tmp_path / "mine.yaml"
    duke.write_text("data:\n  dataset: duke\ntrain:\n  rounds: 1\nevaluate:\n  every: 1\n")
    mine = [f"CONFIG={duke}" if arg.startswith("CONFIG=") else arg for arg in loop]
    commands = dry_run("round", "N=1", "EVERY=1", *mine, artifacts=artifacts_root())
    assert commands[0] == f"auxreid init x --config {duke} --sync"
    assert not any(command.startswith("auxreid synth") for command in commands)
    result = run_make("round", "N=1", "EVERY=1", f"AUXREID_DATA={tmp_path}", *mine, artifacts=tmp_path / "arts")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors and errors[0].startswith(f"error: no duke dataset at {tmp_path}/DukeMTMC-VideoReID"), result.stderr
    assert not (tmp_path / "arts" / "x" / "config.yaml").exists()


def test_paper_targets_read_data_or_the_datasets_home(loop, tmp_path):
    result = run_make("paper-duke", f"AUXREID_DATA={tmp_path}", *loop, artifacts=artifacts_root())
    assert result.returncode != 0
    assert (f"error: make paper-duke: no dataset at {tmp_path}/DukeMTMC-VideoReID (the default: DukeMTMC-VideoReID/ "
            f"under AUXREID_DATA={tmp_path}); put it there, or point elsewhere with DATA=/path/to/DukeMTMC-VideoReID "
            "or AUXREID_DATA=/folder/holding/it") in result.stderr
    (tmp_path / "MARS").mkdir()
    commands = dry_run("paper-mars", f"AUXREID_DATA={tmp_path}", *loop[1:], artifacts=artifacts_root())
    assert commands[0].endswith(f"--config configs/mars.yaml --set data.root={tmp_path}/MARS --sync")
    commands = dry_run("paper-mars", "DATA=/data/MARS", *loop[1:], artifacts=artifacts_root())
    assert commands[0].endswith("--config configs/mars.yaml --set data.root=/data/MARS --sync")
    assert commands[0].startswith("auxreid init paper-mars") and commands[3] == "auxreid extract paper-mars --round 1"
    assert sum(c.startswith("auxreid train-round") for c in commands) == 40
    assert [c.split()[4] for c in commands if c.startswith("auxreid evaluate")] == [
        str(r) for r in range(0, 41, 2) for _ in ("--extract-only", "")]
    assert commands[-1] == f"auxreid report paper-mars --out {artifacts_root()}/paper-mars/report.png"


#: make paper-duke-noaux's init overrides: TOC, SCP and STS off in clustering and at test time.
NOAUX = ("--set cluster.scp=false --set cluster.sts=false --set cluster.toc=false "
         "--set evaluate.toc=false --set evaluate.scp=false --set evaluate.sts=false")


def test_paper_duke_noaux_is_paper_duke_without_auxiliary_information(loop, tmp_path):
    (tmp_path / "DukeMTMC-VideoReID").mkdir()
    commands = dry_run("paper-duke-noaux", f"AUXREID_DATA={tmp_path}", *loop[1:], artifacts=artifacts_root())
    assert commands[0] == commands[1] == ("auxreid init paper-duke-noaux --config configs/duke.yaml "
                                          f"--set data.root={tmp_path}/DukeMTMC-VideoReID {NOAUX} --sync")
    assert commands[3] == "auxreid extract paper-duke-noaux --round 1"
    assert sum(c.startswith("auxreid train-round paper-duke-noaux") for c in commands) == 50
    assert commands[-1] == f"auxreid report paper-duke-noaux --out {artifacts_root()}/paper-duke-noaux/report.png"
    paper = dry_run("paper-duke", "DATA=/data/Duke", "N=1", *loop[1:], artifacts=artifacts_root())
    assert paper[0] == "auxreid init paper-duke --config configs/duke.yaml --set data.root=/data/Duke --sync"


_FAKE_AUXREID = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
from stages.rundir import RunDir, stage_io
from stages.config import Config
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if args[0] == "init" and "--sync" in args and RunDir.resolve(args[1]).config_path.exists():
    sys.exit(0)  # as `init --sync` with nothing to change: no file written
round = int(args[args.index("--round") + 1]) if "--round" in args else None
if os.environ.get("FAKE_FAIL") == f"{{args[0]}} {{round}}":
    sys.exit(f"error: round {{round}}: fake failure of {{args[0]}}")
io = stage_io(RunDir.resolve(args[1]), args[0], round, Config(), extract_only="--extract-only" in args)
for role, path in io.outputs.items():
    if role not in ("checkpoint", "metrics"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("fake")
"""


def test_a_failing_stage_stops_make_and_the_next_make_resumes_there(loop, tmp_path):
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    (fake_bin / "auxreid").write_text(_FAKE_AUXREID.format(python=sys.executable, root=str(ROOT)))
    (fake_bin / "auxreid").chmod(0o755)
    log = tmp_path / "stages.log"
    args = [arg if not arg.startswith("BIN=") else f"BIN={fake_bin}" for arg in loop] + ["round", "N=3", "EVERY=1"]
    env = make_env(artifacts_root(), FAKE_LOG=str(log), FAKE_FAIL="cluster 2")
    failed = run_make(*args, artifacts=artifacts_root(), env=env)
    assert failed.returncode != 0
    assert "error: round 2: fake failure of cluster" in failed.stderr
    run = RunDir.resolve("x")
    assert run.model(1).is_file() and run.eval(1).is_file() and run.features(2).is_file()
    assert not run.clusters(2).exists() and not run.round_dir(3).exists()
    assert log.read_text().splitlines()[-1] == "cluster x --round 2"
    log.unlink()
    env.pop("FAKE_FAIL")
    resumed = run_make(*args, artifacts=artifacts_root(), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert [c.replace("auxreid ", "") for c in _synced(["auxreid " + line for line in log.read_text().splitlines()])] == [
        c.replace("auxreid ", "") for c in _round_commands(2)[1:] + _round_commands(3)]

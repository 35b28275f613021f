"""Tests of stages/rundir.py: the round wiring (`stage_io`), and the Makefile's paths against it."""

import re
from pathlib import Path

import pytest

from helpers_make import ROOT, rule_database
from stages.config import Config, load_config
from stages.errors import AuxReidError
from stages.rundir import RunDir, artifacts_root, stage_io
from stages.training.hooks import checkpoint_path_for


def _config(**sections):
    config = Config()
    for key, value in sections.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


def test_stage_io_extract_reads_previous_model():
    run = RunDir(Path("runs/x"))
    io = stage_io(run, "extract", 3, Config())
    assert io.inputs == {"config": run.config_path, "model": run.model(2)}
    assert io.outputs == {"features": run.path / "round_003" / "features.h5"}


def test_stage_io_cluster_inputs_follow_the_config():
    run = RunDir(Path("runs/x"))
    first = stage_io(run, "cluster", 1, _config(cluster__toc=False, cluster__sts=False, cluster__scp=False))
    assert set(first.inputs) == {"config", "features", "aux"} and first.optional == {"aux"}
    later = stage_io(run, "cluster", 3, _config(cluster__sts=True, cluster__sts_reestimate=True))
    assert later.inputs["eps_from"] == run.clusters(1) and later.inputs["previous_clusters"] == run.clusters(2)
    assert later.optional == frozenset() and later.outputs == {"clusters": run.clusters(3)}
    fixed = stage_io(run, "cluster", 3, _config(cluster__eps_mode="fixed", cluster__sts=False, cluster__sts_reestimate=True))
    assert "eps_from" not in fixed.inputs and "previous_clusters" not in fixed.inputs
    every_round = stage_io(run, "cluster", 3, _config(cluster__eps_every_round=True))
    assert "eps_from" not in every_round.inputs and stage_io(run, "cluster", 1, _config(cluster__eps_every_round=True))
    oracle = stage_io(run, "cluster", 3, _config(cluster__labels="oracle", cluster__toc=True, cluster__sts_reestimate=True))
    assert set(oracle.inputs) == {"config", "features", "aux"} and oracle.optional == {"aux"}  # no eps, aux unused


def test_stage_io_train_round_evaluate_mine_aux_and_init():
    run = RunDir(Path("runs/x"))
    train = stage_io(run, "train-round", 2, Config())
    assert train.inputs == {"config": run.config_path, "clusters": run.clusters(2), "model": run.model(1)}
    assert train.outputs == {"model": run.model(2), "checkpoint": run.path / "round_002" / "model.checkpoint.pt",
                             "metrics": run.path / "metrics.jsonl"}
    assert run.train_checkpoint(2) == train.outputs["checkpoint"] and run.metrics_log == train.outputs["metrics"]
    assert run.train_checkpoint(2) == checkpoint_path_for(run.model(2))  # where train-round puts it
    evaluate = stage_io(run, "evaluate", 0, _config(evaluate__toc=False, evaluate__sts=False))
    assert evaluate.inputs["model"] == run.model(0) and evaluate.optional == {"aux", "test_features"}
    assert evaluate.outputs == {"test_features": run.test_features(0), "eval": run.eval(0),
                                "eval_json": run.eval_json(0)}
    appearance = stage_io(run, "mine-aux", None, Config())
    assert appearance.inputs["features"] == run.features(1) and appearance.outputs == {"aux": run.aux}
    clusters = stage_io(run, "mine-aux", 4, _config(aux__sts_source="clusters"))
    assert (clusters.inputs["features"], clusters.inputs["clusters"]) == (run.features(4), run.clusters(4))
    assert set(stage_io(run, "mine-aux", None, _config(aux__sts_source="oracle")).inputs) == {"config"}
    assert stage_io(run, "init", None, Config()).outputs == {"config": run.config_path, "model": run.model(0)}


def test_stage_io_evaluate_keeps_test_features_as_a_cache_and_extract_only_makes_them():
    run = RunDir(Path("runs/x"))
    full = stage_io(run, "evaluate", 3, Config())
    assert run.test_features(3) == run.path / "round_003" / "test_features.h5"
    assert full.inputs == {"config": run.config_path, "model": run.model(3), "test_features": run.test_features(3),
                           "aux": run.aux}
    assert full.caches == {"test_features"} and full.optional == {"test_features"}
    assert stage_io(run, "train-round", 3, Config()).caches == frozenset()  # reads model 2, writes model 3
    part = stage_io(run, "evaluate", 3, Config(), extract_only=True)
    assert part.inputs == {"config": run.config_path, "model": run.model(3)}
    assert part.outputs == {"test_features": run.test_features(3)} and part.checked_on_reuse == {"config"}
    assert part.rounds == {"model": 3} and part.optional == frozenset()
    with pytest.raises(ValueError, match="extract_only is a part of evaluate, not of extract"):
        stage_io(run, "extract", 3, Config(), extract_only=True)


def test_stage_io_refuses_rounds_a_stage_does_not_have():
    run = RunDir(Path("runs/x"))
    with pytest.raises(AuxReidError, match=r"^--round must be >= 1 \(round 0 has no previous model\)"):
        stage_io(run, "extract", 0, Config())
    with pytest.raises(AuxReidError, match=r"^--round must be >= 1, got 0 \(round R clusters"):
        stage_io(run, "cluster", 0, Config())
    with pytest.raises(AuxReidError, match=r"^--round must be >= 0, got -1$"):
        stage_io(run, "evaluate", -1, Config())
    with pytest.raises(AuxReidError, match=r"^unknown stage 'train'; choose one of init, mine-aux, extract"):
        stage_io(run, "train", 1, Config())


def test_stage_io_require_names_the_command_that_makes_the_input(tmp_path):
    run = RunDir(tmp_path / "exp")
    run.round_dir(1).mkdir(parents=True)
    run.config_path.write_text("")
    io = stage_io(run, "cluster", 2, _config(cluster__toc=True, cluster__sts=False))
    with pytest.raises(AuxReidError) as info:
        io.require()
    assert str(info.value) == f"{run.features(2)} does not exist; run `auxreid extract {run.path} --round 2` first"
    with pytest.raises(AuxReidError, match=r"aux\.h5 does not exist but cluster\.toc needs it; run `auxreid mine-aux"):
        io.require(skip=("features",))
    with pytest.raises(AuxReidError, match=r"adaptive eps is computed at round 1 and reused"):
        io.require(skip=("features", "aux"))
    assert io.input("features") == run.features(2)  # required inputs are named even when missing


def test_rundir_lists_rounds_and_names_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXREID_ARTIFACTS", str(tmp_path))
    run = RunDir.resolve("exp")
    assert run.name == "exp" and run.rounds() == []
    for name in ("round_002", "round_000", "round_1", "notes"):
        (run.path / name).mkdir(parents=True)
    assert run.rounds() == [0, 2]
    assert RunDir.resolve("./elsewhere/exp").name == "elsewhere/exp"
    assert list(run.round_artifacts(0)) == ["model", "eval"]
    assert list(run.round_artifacts(1)) == ["features", "clusters", "model", "eval"]


# --- the Makefile's rules are the wiring's ----------------------------------------------------------------

_RECIPE = re.compile(r"^\$\((?:AUX|TRAIN)\) (\S+) \$\(RUN\)(.*)$")


def _round_of(args: str) -> int | None:
    found = re.search(r"--round (\d+)", args)
    return int(found.group(1)) if found else None


def _upstream(rules, path: str) -> set[str]:
    """Every file make builds `path` from, through the rules' prerequisites."""
    seen: set[str] = set()
    todo = [path]
    while todo:
        rule = rules.get(todo.pop())
        for parent in rule.prerequisites if rule else ():
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _wiring_configs():
    synth = load_config(ROOT / "configs" / "synth.yaml")
    reestimate = load_config(ROOT / "configs" / "synth.yaml", ["cluster.sts_reestimate=true"])
    fixed = load_config(ROOT / "configs" / "synth.yaml", ["cluster.eps_mode=fixed", "cluster.toc=false",
                                                         "cluster.sts=false", "evaluate.toc=false", "evaluate.sts=false"])
    return [synth, reestimate, fixed] + [load_config(ROOT / "configs" / f"{name}.yaml") for name in ("duke", "mars")]


def test_makefile_rules_are_the_stage_wiring(tmp_path):
    """Make's database (templates expanded, rounds 1..3) against stage_io, for configs that wire cluster differently.

    Every stage_io input is a prerequisite (order-only for those checked on reuse); every prerequisite in
    the run is an input or already upstream of one (cluster R > 1 lists round 1's and round R-1's clusters
    whatever the config); the rule's targets are the stage's outputs (train-round's checkpoint and
    metrics.jsonl are not make targets, nor is evaluate's test_features.h5, a cache it reads and rewrites:
    make has its own rule for it, `evaluate --extract-only`).
    """
    run = RunDir.resolve("x")  # under the conftest's AUXREID_ARTIFACTS, which make is given too
    rules, variables = rule_database("N=3", "RUN=x", artifacts=artifacts_root(), prefix=f"{run.path}/")
    assert variables["R"] == str(run.path) == str(tmp_path / "artifacts" / "x")
    commands = {}
    for target, rule in rules.items():
        assert len(rule.recipe) == 1, (target, rule.recipe)
        found = _RECIPE.match(rule.recipe[0])
        assert found, (target, rule.recipe)
        commands[target] = (found.group(1), found.group(2).replace("$(R)", variables["R"]))
    stages = {(stage, _round_of(args)) for stage, args in commands.values()}
    assert stages == {("init", None), ("mine-aux", None)} | {(s, r) for s in ("extract", "cluster", "train-round")
                                                             for r in (1, 2, 3)} | {("evaluate", r) for r in range(4)}
    caches_seen = set()
    for config in _wiring_configs():
        for target, (stage, args) in commands.items():
            rule = rules[target]
            io = stage_io(run, stage, _round_of(args), config, extract_only="--extract-only" in args.split())
            caches = io.caches
            outputs = {str(p) for role, p in io.outputs.items() if role not in ("checkpoint", "metrics", *caches)}
            made = {t for t, (s, _) in commands.items() if s == "init"} if stage == "init" else {target, *rule.also_makes}
            assert target in outputs and made == outputs, (target, stage)
            for role in caches:
                assert commands[str(io.inputs[role])] == (stage, f"{args} --extract-only"), (target, role)
                caches_seen.add(str(io.inputs[role]))
            on_reuse = {str(io.inputs[role]) for role in io.checked_on_reuse}
            inputs = {str(p) for p in io.inputs.values()} - on_reuse
            listed = {p for p in rule.prerequisites if p.startswith(str(run.path))}
            assert on_reuse <= set(rule.order_only) and not on_reuse & listed, (target, on_reuse)
            assert inputs <= listed, (target, inputs - listed)
            redundant = listed - inputs
            assert all(any(extra in _upstream(rules, p) for p in inputs) for extra in redundant), (target, redundant)
            for option, path in re.findall(r"--(\w+) (\S+)", args):
                if path.startswith(str(run.path)):
                    assert str(io.inputs[option]) == path, (target, option)
    assert caches_seen == {str(run.test_features(r)) for r in range(4)}


def test_makefile_run_paths_follow_rundir_resolve(tmp_path):
    """A bare RUN lives under $AUXREID_ARTIFACTS, a RUN with a '/' is a path: as RunDir.resolve reads them."""
    _, variables = rule_database("RUN=./elsewhere/exp", artifacts=artifacts_root(), prefix="none")
    assert variables["R"] == "./elsewhere/exp" and RunDir.resolve("./elsewhere/exp").path == Path("elsewhere/exp")
    text = (ROOT / "Makefile").read_text()
    others = set(re.findall(r"\$\(R\)/[\w.]+[\w./]*", text))
    named = {f"$(R)/{p.relative_to(Path('r'))}" for stage in ("init", "mine-aux")
             for p in stage_io(RunDir(Path("r")), stage, None, Config()).outputs.values()}
    assert others - named <= {"$(R)/round_001/features.h5", "$(R)/round_001/clusters.h5", "$(R)/report.png"}, others

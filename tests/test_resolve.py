"""stages.resolve: every command's option-combination rules and the files each mode hands to the stage.

The run-mode paths (inputs from the round wiring, checked against the run's dataset) are exercised through
the CLI in tests/test_cli_*.py; here the rules themselves, without datasets.
"""

from pathlib import Path

import pytest

from stages.errors import AuxReidError
from stages.resolve import STAGE_ROLES, resolve

CONFIG = Path("configs/synth.yaml")


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("stage, message", [
    ("extract", "give RUN --round R, or --model M.pt --out F.h5"),
    ("cluster", "give RUN --round R, or --features F.h5 --out C.h5"),
    ("train-round", "give RUN --round R, or --clusters C.h5 --model M.pt --out M2.pt"),
    ("evaluate", "give a run (auxreid evaluate RUN --round R) or --features F.h5 / --model M.pt with --out E.h5"),
    ("mine-aux", "give a run (auxreid mine-aux RUN) or --dataset NAME"),
    ("export", "give RUN --round R, or --clusters C.h5 --out DIR"),
])
def test_nothing_given_names_both_ways_to_call(stage, message):
    with pytest.raises(AuxReidError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(stage)


@pytest.mark.parametrize("stage", ["extract", "cluster", "train-round", "export"])
def test_run_without_round_names_both_ways_to_call(stage):
    with pytest.raises(AuxReidError, match="give RUN --round R"):
        resolve(stage, run="demo")


def test_evaluate_run_without_round_asks_for_the_round():
    with pytest.raises(AuxReidError, match="say which round of demo to evaluate with --round R"):
        resolve("evaluate", run="demo")


@pytest.mark.parametrize("stage, given, options, message", [
    ("extract", {"out": Path("f.h5")}, {}, "RUN --round R always extracts train in cluster mode"),
    ("extract", {}, {"split": ["query"]}, "--split, --mode and --out go with --model"),
    ("mine-aux", {"out": Path("a.h5")}, {}, "give either RUN .* or --dataset/--root/--out, not both"),
    ("mine-aux", {}, {"dataset": "duke"}, "give either RUN .* or --dataset/--root/--out, not both"),
    ("evaluate", {"config_file": CONFIG}, {}, r"give either RUN \(its config.yaml is used\) or --config, not both"),
    ("export", {"clusters": Path("c.h5")}, {}, "give RUN --round R or --clusters C.h5, not both"),
])
def test_options_refused_together_with_a_run(stage, given, options, message):
    with pytest.raises(AuxReidError, match=message):
        resolve(stage, run="demo", round=1, given=given, options=options)


@pytest.mark.parametrize("stage, given, message", [
    ("extract", {"model": Path("m.pt")}, "--model needs --out F.h5"),
    ("cluster", {"features": Path("f.h5")}, "--features needs --out C.h5"),
    ("export", {"clusters": Path("c.h5")}, "--clusters needs --out DIR"),
    ("train-round", {"clusters": Path("c.h5")},
     "explicit mode needs --clusters, --model and --out; --model, --out missing"),
])
def test_explicit_mode_says_what_is_missing(stage, given, message):
    with pytest.raises(AuxReidError, match=message):
        resolve(stage, given=given)


@pytest.mark.parametrize("stage, role, given", [
    ("evaluate", "features", {"out": Path("e.h5")}),
    ("export", "features", {"clusters": None, "out": Path("out")}),
    ("cluster", "aux", {"features": None, "out": Path("c.h5")}),
    ("mine-aux", "features", {}),
    ("train-round", "clusters", {"model": None, "out": Path("m2.pt")}),
])
def test_a_file_given_to_be_read_must_exist(tmp_path, stage, role, given):
    """An optional input given but absent is refused, never dropped for another input or none."""
    given = {key: value if value is not None else _touch(tmp_path / key) for key, value in given.items()}
    options = {"dataset": "synth"} if stage == "mine-aux" else {}
    with pytest.raises(AuxReidError, match=rf"--{role} .*missing.h5 does not exist; give an existing file"):
        resolve(stage, given={**given, role: tmp_path / "missing.h5", "config_file": CONFIG}, options=options)
    with pytest.raises(AuxReidError, match=rf"--{role} {tmp_path} is a folder; give a file, not a folder"):
        resolve(stage, given={**given, role: tmp_path, "config_file": CONFIG}, options=options)


def test_export_features_and_no_features_contradict(tmp_path):
    with pytest.raises(AuxReidError, match="give --features F.h5 .* or --no-features, not both"):
        resolve("export", given={"clusters": _touch(tmp_path / "c.h5"), "features": _touch(tmp_path / "f.h5"),
                                 "out": tmp_path / "out"}, options={"no_features": True})


def test_run_mode_refuses_files_it_would_not_read(tmp_path):
    """RUN --round R reads the run's own files: a file given beside it that the stage cannot use is refused."""
    for stage, role in (("cluster", "aux"), ("cluster", "eps_from"), ("train-round", "metrics")):
        with pytest.raises(AuxReidError, match=f"{'--eps-from' if role == 'eps_from' else '--' + role} goes with files "
                                               "given one by one, not with RUN --round R"):
            resolve(stage, run="demo", round=1, given={role: _touch(tmp_path / "x")})
    with pytest.raises(AuxReidError, match=r"give either RUN \(its config.yaml is used\) or --config, not both"):
        resolve("cluster", run="demo", round=1, given={"features": _touch(tmp_path / "f.h5"), "out": tmp_path / "c.h5",
                                                       "config_file": CONFIG})


def test_evaluate_needs_out_without_a_run(tmp_path):
    with pytest.raises(AuxReidError, match="without RUN, say where to write with --out eval.h5"):
        resolve("evaluate", given={"features": _touch(tmp_path / "f.h5")})


def test_extract_only_goes_with_a_run_round_and_nothing_else(tmp_path):
    with pytest.raises(AuxReidError, match="--extract-only keeps a run's test features: give RUN --round R"):
        resolve("evaluate", options={"extract_only": True})
    with pytest.raises(AuxReidError, match="it takes no --features, --model, --aux or --out"):
        resolve("evaluate", run="demo", round=1, given={"out": tmp_path / "e.h5"}, options={"extract_only": True})


def test_mine_aux_explicit_round_is_refused_and_out_defaults_under_the_artifacts_root(tmp_path, monkeypatch):
    with pytest.raises(AuxReidError, match="--round goes with RUN"):
        resolve("mine-aux", round=2, options={"dataset": "duke"})
    monkeypatch.setenv("AUXREID_ARTIFACTS", str(tmp_path / "arts"))
    config, io = resolve("mine-aux", options={"dataset": "duke", "root": "/data/duke"})
    assert io.outputs == {"aux": tmp_path / "arts" / "duke" / "aux.h5"}
    assert (config.data.dataset, config.data.root) == ("duke", "/data/duke")
    assert io.inputs == {} and io.input("features") is None


def test_explicit_cluster_hands_the_given_files_and_options_to_the_stage(tmp_path):
    features, aux, out = _touch(tmp_path / "f.h5"), _touch(tmp_path / "a.h5"), tmp_path / "c.h5"
    config, io = resolve("cluster", round=3, given={"features": features, "aux": aux, "out": out,
                                                    "config_file": CONFIG, "eps_from": None},
                         options={"device": "cpu"}, overrides=["cluster.k1=20"])
    assert io.inputs == {"features": features, "aux": aux}
    assert io.outputs == {"clusters": out}
    assert (io.round, io.options, config.cluster.k1) == (3, {"device": "cpu"}, 20)
    assert io.input("aux") == aux and io.input("eps_from") is None


def test_explicit_train_round_outputs_the_model_and_the_metrics_log(tmp_path):
    paths = {role: tmp_path / name for role, name in
             (("clusters", "c.h5"), ("model", "m.pt"), ("out", "m2.pt"), ("metrics", "log.jsonl"))}
    _touch(paths["clusters"]), _touch(paths["model"])
    with pytest.raises(AuxReidError, match="--round must be >= 1"):
        resolve("train-round", round=0, given={**paths, "config_file": CONFIG})
    _, io = resolve("train-round", round=2, given={**paths, "config_file": CONFIG}, options={"resume": True})
    assert io.inputs == {"clusters": paths["clusters"], "model": paths["model"]}
    assert io.outputs == {"model": paths["out"], "metrics": paths["metrics"]}
    assert io.options == {"resume": True}


def test_option_values_that_are_config_keys_become_settings(tmp_path):
    config, io = resolve("extract", given={"model": _touch(tmp_path / "m.pt"), "out": tmp_path / "f.h5", "config_file": CONFIG},
                         options={"dataset": "mars", "root": "/d/mars", "skip_bad_frames": True, "split": ["query,gallery"],
                                  "mode": "infer"})
    assert (config.data.dataset, config.data.root, config.extract.skip_bad_frames) == ("mars", "/d/mars", True)
    assert io.options["split"] == ["query,gallery"] and io.options["mode"] == "infer"


def test_every_stage_with_an_explicit_mode_declares_what_selects_it():
    assert set(STAGE_ROLES) == {"extract", "cluster", "train-round", "evaluate", "mine-aux", "export"}
    for stage, roles in STAGE_ROLES.items():
        assert roles.usage.startswith("give"), stage
        assert set(roles.run_replaces) <= {"features", "model", "aux", "out", "clusters"}, stage

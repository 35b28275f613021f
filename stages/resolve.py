"""Every stage command's config and files, from a run's round or from files given one by one.

A stage runs in one of two modes. RUN mode (`auxreid cluster demo --round 2`) takes every path from the
run's wiring (`stages.rundir.stage_io`) and checks that the inputs exist and come from the run's dataset
and the right round. Explicit mode (`auxreid cluster --features F.h5 --out C.h5`) takes the files given,
and the config from RUN, --config, or the one frozen in a given file. Which options go together is
declared once per stage in `STAGE_ROLES`, and every rule about combining them is checked here, so a
command only parses its options, calls `resolve` and runs the stage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from stages.artifacts.h5 import read_provenance
from stages.artifacts.output_guard import guard_output
from stages.artifacts.readers import config_from_artifact, stored_config_yaml
from stages.config import Config, load_config, require_file
from stages.errors import AuxReidError
from stages.export import EXPORT_FILES
from stages.mine_aux import check_sts_sources
from stages.rundir import RunDir, StageIO, artifacts_root, check_inputs, check_round, load_run_config, stage_io
from stages.variants import (
    STAGE_OUTPUT,
    TEST_FEATURE_SETTINGS,
    Difference,
    describe,
    relocate,
    setting_differences,
    variant_folder,
    variant_name,
)

#: How a role is spelled on the command line, where it differs from `--<role>`.
OPTION_NAMES = {"previous_clusters": "--previous", "eps_from": "--eps-from", "config_file": "--config",
                "sts_source": "--sts-source", "extract_only": "--extract-only"}


def option_name(role: str) -> str:
    return OPTION_NAMES.get(role, "--" + role.replace("_", "-"))


@dataclass(frozen=True)
class StageRoles:
    """What one stage command accepts, and which options go together.

    Attributes:
        usage: the two ways to call it, for the message when neither is complete.
        selects_files: giving any of these files selects explicit mode (else RUN --round R is needed).
        needs: files explicit mode cannot do without, each with the message when it is missing (None: the
            stage words one message for all of them).
        run_excludes: options refused together with RUN, with the message.
        run_replaces: files that may stand in for the run's own in RUN mode (evaluate --model, --aux).
        config_from: given files whose frozen config explicit mode uses, tried in order.
        defaults: explicit mode with no config anywhere uses the paper's defaults instead of failing.
        round_from: the given file whose provenance round is the round when no --round is given.
    """

    usage: str
    selects_files: tuple[str, ...]
    needs: Mapping[str, str | None] = field(default_factory=dict)
    run_excludes: tuple[tuple[tuple[str, ...], str], ...] = ()
    run_replaces: tuple[str, ...] = ()
    config_from: tuple[str, ...] = ()
    defaults: bool = False
    round_from: str | None = None


STAGE_ROLES: dict[str, StageRoles] = {
    "extract": StageRoles(
        usage="give RUN --round R, or --model M.pt --out F.h5 (see `auxreid extract --help`)",
        selects_files=("model",),
        needs={"out": "--model needs --out F.h5 to say where to write the features"},
        run_excludes=((("split", "mode", "out"),
                       "RUN --round R always extracts train in cluster mode; --split, --mode and --out go with --model"),),
        config_from=("model",),
    ),
    "cluster": StageRoles(
        usage="give RUN --round R, or --features F.h5 --out C.h5 (see `auxreid cluster --help`)",
        selects_files=("features",),
        needs={"out": "--features needs --out C.h5 to say where to write the clusters"},
        config_from=("features",), round_from="features",
    ),
    "train-round": StageRoles(
        usage="give RUN --round R, or --clusters C.h5 --model M.pt --out M2.pt (see `auxreid train-round --help`)",
        selects_files=("clusters", "model", "out"),
        needs={"clusters": None, "model": None, "out": None},
        config_from=("model",), round_from="clusters",
    ),
    "evaluate": StageRoles(
        usage="give a run (auxreid evaluate RUN --round R) or --features F.h5 / --model M.pt with --out E.h5",
        selects_files=("features", "model"),
        needs={"out": "without RUN, say where to write with --out eval.h5"},
        run_replaces=("features", "model", "aux", "out"),
        config_from=("features", "model"), defaults=True,
    ),
    "mine-aux": StageRoles(
        usage="give a run (auxreid mine-aux RUN) or --dataset NAME (--root DIR and --out FILE.h5 have defaults: the "
              "dataset's home and artifacts/NAME/aux.h5)",
        selects_files=(),
        run_excludes=((("out", "dataset", "root"),
                       "give either RUN (its config.yaml says the dataset; writes RUN/aux.h5) or --dataset/--root/--out, "
                       "not both; use --set to override the run's settings"),),
        run_replaces=("features", "clusters"), defaults=True,
    ),
    "export": StageRoles(
        usage="give RUN --round R, or --clusters C.h5 --out DIR (see `auxreid export --help`)",
        selects_files=("clusters",),
        needs={"out": "--clusters needs --out DIR to say where to write the export"},
        run_excludes=((("clusters",), "give RUN --round R or --clusters C.h5, not both"),),
        run_replaces=("features", "out"), defaults=True,
    ),
}

#: The explicit-mode output role each stage's --out names.
_OUT_ROLE = {"extract": "features", "cluster": "clusters", "train-round": "model", "evaluate": "eval",
             "mine-aux": "aux", "export": "export"}


def resolve(
    stage: str,
    *,
    run: str | None = None,
    round: int | None = None,
    given: Mapping[str, Path | None] | None = None,
    options: Mapping[str, object] | None = None,
    overrides: Sequence[str] | None = None,
) -> tuple[Config, StageIO]:
    """The config (with --set on top) and the files and options of one call of `stage`.

    Args:
        stage: the command name (a key of STAGE_ROLES).
        run: RUN as given on the command line, or None.
        round: --round, or None.
        given: role -> file given on the command line ("out" for --out, "config_file" for --config); None
            values are not given.
        options: the stage's other options (device, split, mode, resume, extract_only, dataset, root,
            sts_source, ...), None values not given; handed to the stage in `StageIO.options`.
        overrides: --set assignments.

    Raises:
        AuxReidError: options that do not go together, a missing input (naming the command that makes it),
            an input from another dataset or round than the run's, or a bad round.
    """
    roles = STAGE_ROLES[stage]
    files = {role: Path(path) for role, path in (given or {}).items() if path is not None}
    chosen = {key: value for key, value in (options or {}).items() if value is not None and value is not False}
    overrides = [*(overrides or []), *_option_overrides(stage, chosen)]
    said = {**files, **chosen}
    explicit = run is None or any(role in files for role in roles.selects_files if role not in roles.run_replaces)
    if stage == "export" and "features" in files and chosen.get("no_features"):
        raise AuxReidError("give --features F.h5 (the features to export) or --no-features, not both")
    if run is not None:
        if "config_file" in files:
            raise AuxReidError("give either RUN (its config.yaml is used) or --config, not both; use --set to override")
        for keys, message in roles.run_excludes:
            if any(key in said for key in keys):
                raise AuxReidError(message)
    if stage == "evaluate" and chosen.get("extract_only"):
        return _evaluate_extract_only(run, round, files, chosen, overrides)
    if run is None and roles.selects_files and not any(role in files for role in roles.selects_files):
        raise AuxReidError(roles.usage)
    if explicit:
        config, io = _explicit(stage, roles, run, round, files, chosen, overrides)
    elif round is None and stage != "mine-aux":
        if stage == "evaluate":
            raise AuxReidError(f"say which round of {run} to evaluate with --round R")
        raise AuxReidError(roles.usage)
    else:
        config, io = _run_mode(stage, roles, run, round, files, chosen, overrides)
    if stage == "mine-aux":
        check_sts_sources(config.aux.sts_source, io.input("features"), io.input("clusters"))
    _guard_outputs(io, files, run_mode=not explicit, force=bool(chosen.get("force")))
    return config, io


#: What each output role holds, for the output guard (a role left out is the stage's own internal file).
_OUTPUT_KINDS = {"features": "features", "clusters": "clusters", "aux": "aux", "eval": "eval", "eval_json": "json",
                 "model": "model", "metrics": "metrics", "export": "folder", "test_features": "features"}


def _guard_outputs(io: StageIO, files: Mapping[str, Path], *, run_mode: bool, force: bool) -> None:
    """Every output obeys `guard_output`'s rules; a run's own files are the command's job to replace in RUN mode.

    metrics.jsonl is appended to, never replaced, so only its kind is checked; export's folder may exist, but
    the export files in it are replaced only with --force.
    """
    given = {path: option for option, path in (("--out", files.get("out")), ("--metrics", files.get("metrics")))
             if path is not None}
    caches = io.caches if run_mode else frozenset()  # a run's test_features.h5 is read and rewritten by design
    inputs = {role: path for role, path in io.inputs.items() if role not in caches and role != "config"}
    for role, path in io.outputs.items():
        if role not in _OUTPUT_KINDS or role in caches:
            continue
        option = given.get(path, "output")
        replace = force or role == "metrics" or (run_mode and path not in given)
        guard_output(path, _OUTPUT_KINDS[role], option=option, inputs=inputs, replace=replace)
        if role == "export" and path.is_dir() and not replace:
            existing = sorted(name for name in EXPORT_FILES.values() if (path / name).exists())
            if existing:
                raise AuxReidError(f"{option} {path} already holds {', '.join(existing)}; pass --force to replace "
                                   "them, or choose another folder")


def _option_overrides(stage: str, chosen: Mapping[str, object]) -> list[str]:
    """Options that are config keys, as --set assignments after the user's (JSON-quoted: YAML reads strings)."""
    keys = {"dataset": "data.dataset", "root": "data.root", "sts_source": "aux.sts_source"}
    if stage == "extract":
        keys["skip_bad_frames"] = "extract.skip_bad_frames"
    if stage == "export":
        return []
    return [f"{key}={json.dumps(chosen[option])}" for option, key in keys.items() if option in chosen]


#: Given paths not checked as inputs here: outputs (written; they need not exist yet) and --config (it may name a
#: shipped config, e.g. synth, and load_config words its own errors).
_NOT_INPUTS = ("out", "metrics", "config_file")


def _check_given_files_exist(files: Mapping[str, Path]) -> None:
    """Every file given to be read must be there: a stage never falls back silently to another input."""
    for role, path in files.items():
        if role not in _NOT_INPUTS:
            require_file(path, option_name(role), missing="give an existing file", folder="give a file, not a folder")


def _run_mode(stage: str, roles: StageRoles, run: str, round: int | None, files: Mapping[str, Path],
              options: Mapping[str, object], overrides: list[str]) -> tuple[Config, StageIO]:
    unused = [role for role in files if role not in roles.run_replaces]
    if unused:
        raise AuxReidError(f"{option_name(unused[0])} goes with files given one by one, not with RUN --round R, which "
                           f"reads the run's own; drop it ({roles.usage})")
    _check_given_files_exist(files)
    replaced = _replaced_roles(stage, files)
    if round is not None:
        check_round(stage, round)
    run_dir = RunDir.resolve(run)
    config = load_run_config(run_dir, overrides)
    io = stage_io(run_dir, stage, round, config)
    io.require(skip=replaced)
    check_inputs(run_dir, io, config, skip=replaced)
    given_inputs = {role: path for role, path in files.items() if role not in _NOT_INPUTS}
    check_inputs(run_dir, StageIO(stage, round, given_inputs, {}), config)  # the run's dataset, any round
    inputs, outputs = dict(io.inputs), dict(io.outputs)
    optional = set(io.optional)
    if stage == "evaluate":
        if "features" in files or "model" in files:
            del inputs["model"]
            inputs.pop("test_features", None)
            outputs.pop("test_features", None)
            inputs.update({role: files[role] for role in ("features", "model") if role in files})
        if "aux" in files:
            inputs["aux"] = files["aux"]
        if "out" in files:
            outputs["eval"], outputs["eval_json"] = files["out"], files["out"].with_suffix(".json")
    if stage == "export":
        inputs.update({role: files[role] for role in ("features",) if role in files})
        optional.add("features")
        if "out" in files:
            outputs["export"] = files["out"]
    if stage == "mine-aux" and ("features" in files or "clusters" in files):
        inputs = {role: path for role, path in inputs.items() if role not in ("features", "clusters")}
        inputs.update({role: files[role] for role in ("features", "clusters") if role in files})
    io = StageIO(stage, io.round, inputs, outputs, optional=frozenset(optional), missing=io.missing,
                 rounds=io.rounds, checked_on_reuse=io.checked_on_reuse, options=dict(options))
    if stage in STAGE_OUTPUT and not (stage == "evaluate" and "out" in files):
        official = load_run_config(run_dir) if overrides else config
        differences = setting_differences(stage, official, config)
        if stage == "evaluate":
            differences += [Difference(role, run_dir.model(round), files[role]) for role in ("features", "model")
                            if role in files and _other_file(files[role], run_dir.model(round))]
            if "aux" in files and _other_file(files["aux"], run_dir.aux):
                differences.append(Difference("aux", run_dir.aux, files["aux"]))
        io = as_variant(io, differences)
    return config, io


def _other_file(given: Path, own: Path) -> bool:
    """Whether a file given in RUN mode is another than the run's own (a path to the very file is no variant)."""
    try:
        return not (own.exists() and given.samefile(own))
    except OSError:
        return True


def as_variant(io: StageIO, differences: list[Difference]) -> StageIO:
    """`io` with its outputs moved into the variant folder `differences` name (unchanged when there are none).

    The main output's folder holds the variant (`round_00R/variants/<name>/`, `RUN/variants/<name>/` for aux.h5),
    train-round's metrics.jsonl and checkpoint included. Evaluate's test_features.h5 is the round's own, shared,
    unless the variant changes a setting that shapes those features (then the variant keeps its own).
    """
    if not differences:
        return io
    name = variant_name(differences)
    main = {"extract": "features", "cluster": "clusters", "train-round": "model", "mine-aux": "aux"}
    main_role = main.get(io.stage, "eval" if "eval" in io.outputs else "test_features")
    folder = variant_folder(io.outputs[main_role], name)
    shared = frozenset()
    if io.stage == "evaluate" and not any(d.key in TEST_FEATURE_SETTINGS for d in differences):
        shared = frozenset({"test_features"})
    outputs = relocate(io.outputs, folder, keep=shared)
    inputs = {role: outputs[role] if role in io.caches and role not in shared else path
              for role, path in io.inputs.items()}
    return replace(io, inputs=inputs, outputs=outputs, variant=name, variant_note=describe(differences))


def _replaced_roles(stage: str, files: Mapping[str, Path]) -> tuple[str, ...]:
    """The run's input roles the command was given files for instead (not required to exist in the run)."""
    if stage == "evaluate":
        return tuple(role for role, given in (("model", "features" in files or "model" in files),
                                              ("aux", "aux" in files)) if given)
    if stage == "mine-aux" and ("features" in files or "clusters" in files):
        return ("features", "clusters")
    return ()


def _explicit(stage: str, roles: StageRoles, run: str | None, round: int | None, files: Mapping[str, Path],
              options: Mapping[str, object], overrides: list[str]) -> tuple[Config, StageIO]:
    if stage == "evaluate" and "out" not in files:
        raise AuxReidError(roles.needs["out"])
    missing = [role for role in roles.needs if role not in files]
    if missing:
        worded = [roles.needs[role] for role in missing if roles.needs[role] is not None]
        if worded:
            raise AuxReidError(worded[0])
        *first, last = map(option_name, roles.needs)
        raise AuxReidError(f"explicit mode needs {', '.join(first)} and {last}; "
                           f"{', '.join(map(option_name, missing))} missing")
    if stage == "mine-aux":
        if "dataset" not in options:
            raise AuxReidError(roles.usage)
        if round is not None:
            raise AuxReidError("--round goes with RUN: it picks the run's features (and clusters) of that round")
    if round is not None and stage in ("train-round",):
        check_round(stage, round)
    _check_given_files_exist(files)
    config = explicit_config(overrides, run=run if stage != "evaluate" else None, config=files.get("config_file"),
                             sources=[files.get(role) for role in roles.config_from], defaults=roles.defaults)
    if round is None and roles.round_from is not None:
        round = read_provenance(files[roles.round_from])[0].round
    out_role = _OUT_ROLE[stage]
    out = files.get("out")
    if stage == "mine-aux" and out is None:
        out = artifacts_root() / str(options["dataset"]) / "aux.h5"
    inputs = {role: path for role, path in files.items() if role not in ("out", "config_file")}
    outputs = {out_role: out}
    if stage == "evaluate":
        outputs["eval_json"] = out.with_suffix(".json")
    if stage == "train-round" and "metrics" in files:
        outputs["metrics"] = inputs.pop("metrics")
    optional = frozenset(inputs) - {role for role in roles.needs if role != "out"}
    return config, StageIO(stage, round, inputs, outputs, optional=optional, options=dict(options))


def _evaluate_extract_only(run: str | None, round: int | None, files: Mapping[str, Path],
                           options: Mapping[str, object], overrides: list[str]) -> tuple[Config, StageIO]:
    """`evaluate RUN --round R --extract-only`: make's rule for the round's test_features.h5 alone."""
    if run is None:
        raise AuxReidError("--extract-only keeps a run's test features: give RUN --round R (for other files use "
                           "`auxreid extract --model M.pt --split query,gallery --mode infer --out F.h5`)")
    if round is None:
        raise AuxReidError(f"say which round of {run} to evaluate with --round R")
    if any(role in files for role in ("features", "model", "aux", "out")):
        raise AuxReidError("--extract-only keeps the features of the round's own model in RUN/round_00R/"
                           "test_features.h5; it takes no --features, --model, --aux or --out")
    check_round("evaluate", round)
    run_dir = RunDir.resolve(run)
    config = load_run_config(run_dir, overrides)
    io = stage_io(run_dir, "evaluate", round, config, extract_only=True)
    io.require()
    check_inputs(run_dir, io, config)
    io = replace(io, options=dict(options))
    official = load_run_config(run_dir) if overrides else config
    return config, as_variant(io, setting_differences("evaluate", official, config, settings=TEST_FEATURE_SETTINGS))


def explicit_config(
    overrides: Sequence[str] | None,
    *,
    run: str | None = None,
    config: Path | None = None,
    sources: Sequence[Path | None] = (),
    defaults: bool = False,
) -> Config:
    """The config of an explicit-mode call: RUN's, else --config, else the one stored in a source file.

    Args:
        overrides: --set assignments, applied on top in every case.
        run: a run whose config.yaml is used.
        config: a YAML config file.
        sources: artifacts or model.pt files, tried in order for a stored config.
        defaults: with nothing else, use the paper defaults instead of failing.

    Raises:
        AuxReidError: no source carries a config and `defaults` is off ("<file> carries no config; pass
            --config CONFIG.yaml").
    """
    overrides = list(overrides or [])
    if run is not None:
        return load_run_config(RunDir.resolve(run), overrides)
    if config is not None:
        return load_config(config, overrides)
    given = [Path(source) for source in sources if source is not None]
    for source in given:
        if stored_config_yaml(source):
            return config_from_artifact(source, overrides=overrides)
    if defaults or not given:
        return load_config(None, overrides)
    return config_from_artifact(given[0], overrides=overrides)

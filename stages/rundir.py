"""Layout of a run directory (`artifacts/<run>/`), its frozen config, and the round wiring.

`stage_io` is the one authority for which files a stage reads and writes at round R (round R's
extract reads model R-1; cluster reads round 1's clusters for the adaptive eps and round R-1's for
STS re-estimation; ...). The CLI's run mode, `report`, `status` and the Makefile (checked by
tests/test_rundir.py) all take their paths from it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stages.artifacts.h5 import atomic_path, read_provenance
from stages.artifacts.schemas import writer_of
from stages.auxinfo.aux_file import missing_aux_message
from stages.config import Config, build_config, config_to_dict, config_to_yaml, file_problem, parse_set, read_yaml
from stages.data import load_dataset
from stages.errors import AuxReidError

ARTIFACTS_ENV = "AUXREID_ARTIFACTS"

#: The stages of a run, in pipeline order (their command names).
STAGES = ("init", "mine-aux", "extract", "cluster", "train-round", "evaluate", "report", "export")

#: The artifact kinds of a round folder, in the order `status` lists them; round 0 has no features/clusters.
ROUND_KINDS = ("features", "clusters", "model", "eval")

#: The input roles that are a file of another kind: the writer of the kind re-creates them.
_ROLE_KINDS = {"eps_from": "clusters", "previous_clusters": "clusters"}


def writer_of_kind(kind: str) -> str:
    """The command that (re)writes a run's file of `kind` ("config", "aux", "features", "clusters", "model",
    "eval", or an input role such as "eps_from"); the artifact schemas say it for everything but config.yaml."""
    return "init" if kind == "config" else writer_of(_ROLE_KINDS.get(kind, kind))


_ROUND_DIR = re.compile(r"round_(\d{3,})$")
#: What the last part of a run's path may look like (no '.', '..', spaces or control characters).
_RUN_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")


def artifacts_root() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV, "artifacts"))


@dataclass(frozen=True)
class RunDir:
    """Paths of one run; round R's files live in `round_00R/`."""

    path: Path

    @classmethod
    def resolve(cls, run: str | Path) -> "RunDir":
        """A bare name lives under the artifacts root; anything with a path separator is taken as is.

        Raises:
            AuxReidError: an empty name, a path ending in '.' or '..', a name with control characters,
                or the artifacts root itself (a run lives inside it, never is it).
        """
        run = str(run)
        path = Path(run) if os.sep in run or run.startswith(".") else artifacts_root() / run
        last = run.rstrip(os.sep).rsplit(os.sep, 1)[-1]
        if not last or last in (".", "..") or not _RUN_NAME.fullmatch(last):
            raise AuxReidError(
                f"run name {run!r} is not a usable run name; use letters, digits, '.', '_', '-' or '+' "
                "(e.g. demo, duke_r5), or a path whose last part is such a name (e.g. runs/demo)"
            )
        if os.path.realpath(path) == os.path.realpath(artifacts_root()):
            raise AuxReidError(f"run {run!r} is the artifacts folder {artifacts_root()} itself; name a run inside it")
        return cls(path)

    @property
    def name(self) -> str:
        """How to name this run on the command line: the bare name under the artifacts root, else its path."""
        return self.path.name if self.path.parent == artifacts_root() else str(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def aux(self) -> Path:
        return self.path / "aux.h5"

    @property
    def dataset_record(self) -> Path:
        """RUN/dataset.json: the dataset's name and split fingerprint, frozen by `auxreid init`."""
        return self.path / "dataset.json"

    @property
    def init_record(self) -> Path:
        """RUN/init.json: what `auxreid init` was asked and the config.yaml it wrote (`stages.run_sync`)."""
        return self.path / "init.json"

    @property
    def metrics_log(self) -> Path:
        """RUN/metrics.jsonl: train-round's per-iteration and per-round records, appended round after round."""
        return self.path / "metrics.jsonl"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def report_png(self) -> Path:
        """`auxreid report`'s figure when no --out is given."""
        return self.path / "report.png"

    def round_dir(self, round: int) -> Path:
        return self.path / f"round_{round:03d}"

    def features(self, round: int) -> Path:
        return self.round_dir(round) / "features.h5"

    def clusters(self, round: int) -> Path:
        return self.round_dir(round) / "clusters.h5"

    def model(self, round: int) -> Path:
        return self.round_dir(round) / "model.pt"

    def train_checkpoint(self, round: int) -> Path:
        """train-round's resumable in-round checkpoint, beside the round's model.pt; gone once model.pt is written."""
        return self.round_dir(round) / "model.checkpoint.pt"

    def eval(self, round: int) -> Path:
        return self.round_dir(round) / "eval.h5"

    def eval_json(self, round: int) -> Path:
        return self.round_dir(round) / "eval.json"

    def test_features(self, round: int) -> Path:
        """Round R's infer-mode query/gallery features: evaluate re-ranks them while model R and the extract
        settings they record stay the same, instead of extracting every test frame again."""
        return self.round_dir(round) / "test_features.h5"

    def round_artifacts(self, round: int) -> dict[str, Path]:
        """The artifact files of one round folder by kind (ROUND_KINDS order; round 0: model and eval)."""
        paths = {"features": self.features(round), "clusters": self.clusters(round), "model": self.model(round),
                 "eval": self.eval(round)}
        return {kind: paths[kind] for kind in ROUND_KINDS if round > 0 or kind in ("model", "eval")}

    def rounds(self) -> list[int]:
        """The rounds that have a `round_NNN` folder, ascending (empty when the run folder does not exist)."""
        if not self.path.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.path.iterdir() if p.is_dir() and (m := _ROUND_DIR.match(p.name)))

    def require(self) -> None:
        if not self.config_path.is_file():
            raise AuxReidError(self.no_config_message())

    def no_config_message(self) -> str:
        return (f"run directory {self.path} has no config.yaml; create it with `auxreid init {self.path.name} "
                "--config configs/synth.yaml`")


@dataclass(frozen=True)
class StageIO:
    """The files one stage reads and writes at one round of a run.

    Attributes:
        stage: the stage (a name in STAGES).
        round: the round (None for report, which reads every round).
        inputs: role -> file read. Roles are the parent roles the stage records in its outputs'
            provenance ("features", "aux", "eps_from", "previous_clusters", "model", "clusters"), plus
            "config" (RUN/config.yaml).
        outputs: role -> file written.
        optional: input roles read only when the file exists.
        missing: role -> the one-line error for a required input that does not exist.
        rounds: role -> the round the input's file must record (checked by `check_inputs`).
        options: the stage's options that are neither files nor config keys (device, split, mode, resume, ...).
        checked_on_reuse: input roles whose relevant part the outputs record and are checked against
            whenever they are reused (test_features.h5 records the extract settings of config.yaml): a
            newer such file alone leaves the outputs valid, so make lists it order-only.

    A file both read and written (under one role) is a cache: the stage reuses it when it is valid and
    rewrites it when not, so `check_inputs` leaves it to the stage.
    """

    stage: str
    round: int | None
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    optional: frozenset[str] = frozenset()
    missing: dict[str, str] = field(default_factory=dict)
    #: role -> the round its file must come from (roles not listed: any round, e.g. aux.h5).
    rounds: dict[str, int] = field(default_factory=dict)
    checked_on_reuse: frozenset[str] = frozenset()
    #: the stage's other options from the command line (device, split, resume, ...), None ones left out.
    options: Mapping[str, object] = field(default_factory=dict)
    #: RUN mode only: the variant the outputs are (`stages.variants`), None for the run's official files.
    variant: str | None = None
    #: how the variant differs from the run's own definition ("evaluate.rerank true here, false in config.yaml").
    variant_note: str = ""

    @property
    def caches(self) -> frozenset[str]:
        """The roles whose file the stage both reads and writes (evaluate's test_features.h5)."""
        return frozenset(role for role, path in self.inputs.items() if self.outputs.get(role) == path)

    def input(self, role: str) -> Path | None:
        """The `role` input when this stage reads it: required ones always, optional ones when present."""
        path = self.inputs.get(role)
        if path is None or (role in self.optional and not path.is_file()):
            return None
        return path

    def require(self, *, skip: tuple[str, ...] = ()) -> None:
        """Refuse to run when a required input (other than those in `skip`) does not exist.

        Raises:
            AuxReidError: the first missing input's message, naming the command that makes it.
        """
        for role, path in self.inputs.items():
            problem = file_problem(path)
            if problem is None or role in skip or (role in self.optional and problem.kind == "missing"):
                continue
            if problem.kind != "missing":
                raise AuxReidError(f"{path} {problem.words}; {problem.advice}")
            raise AuxReidError(self.missing.get(role, f"{path} does not exist; run the stage that writes it first"))


def _previous_model_message(run: RunDir, round: int) -> str:
    return f"{run.model(round - 1)} does not exist; train round {round - 1} first (round 0 comes from `auxreid init`)"


def check_round(stage: str, round: int) -> None:
    """Refuse a round the stage does not have (extract, cluster and train-round start at 1)."""
    if stage == "extract" and round < 1:
        raise AuxReidError(f"--round must be >= 1 (round {round} has no previous model); round 0 is written by `auxreid init`")
    if stage == "export" and round < 1:
        raise AuxReidError(f"--round must be >= 1, got {round} (round 0 has no pseudo labels)")
    if stage == "cluster" and round < 1:
        raise AuxReidError(
            f"--round must be >= 1, got {round} (round R clusters the features extracted with round R-1's model)"
        )
    if stage == "train-round" and round < 1:
        raise AuxReidError(f"--round must be >= 1, got {round} (round 0's model is written by `auxreid init`)")
    if round < 0:
        raise AuxReidError(f"--round must be >= 0, got {round}")


def stage_io(run: RunDir, stage: str, round: int | None, config: Config, *, extract_only: bool = False) -> StageIO:
    """Which files `stage` reads and writes at `round` of `run`, given the run's config.

    - init: writes config.yaml and round_000/model.pt.
    - mine-aux (round R, default 1): writes aux.h5; reads round R's features when aux.sts_source is
      appearance, round R's features and clusters when it is clusters.
    - extract R >= 1: reads model R-1, writes round R's features.h5.
    - cluster R >= 1: reads features R; aux.h5 (required when cluster.toc / cluster.sts, else read
      when present, for the violation counts); round 1's clusters for the adaptive eps when R > 1;
      round R-1's clusters when cluster.sts and cluster.sts_reestimate and R > 1. Writes clusters R.
    - train-round R >= 1: reads clusters R and model R-1; writes model R, its in-round checkpoint and
      appends to RUN/metrics.jsonl (once model R is in place; until then the round's records wait beside
      its checkpoint).
    - evaluate R >= 0: reads model R, round R's test_features.h5 (a cache: reused when it holds model R's
      infer-mode query/gallery features under the config's extract settings, else re-extracted and
      rewritten) and aux.h5 (required when evaluate.toc / evaluate.sts, else read when present); writes
      eval.h5 and its readable copy eval.json. With `extract_only` (`evaluate --extract-only`, make's
      rule for test_features.h5): reads model R and config.yaml (checked on reuse), writes only
      test_features.h5; so make re-extracts when the model changes and only re-ranks when aux.h5 or
      config.yaml does.
    - export R >= 1: reads clusters R (and the features it was made from, found by the stage); writes the
      folder RUN/round_00R/export/.
    - report: reads every round's eval.h5, clusters.h5, features.h5 (its seconds) and model.pt, and
      RUN/metrics.jsonl, those that exist; writes RUN/report.md.

    Raises:
        AuxReidError: unknown stage, or a round the stage does not have (the CLI's --round message).
        ValueError: `extract_only` for another stage than evaluate.
    """
    if extract_only and stage != "evaluate":
        raise ValueError(f"extract_only is a part of evaluate, not of {stage}")
    if stage not in STAGES:
        raise AuxReidError(f"unknown stage '{stage}'; choose one of {', '.join(STAGES)}")
    name = run.name
    config_input = {"config": run.config_path}
    missing = {"config": run.no_config_message()}
    if stage == "init":
        return StageIO(stage, 0, {}, {"config": run.config_path, "model": run.model(0)})
    if stage == "report":
        inputs = {f"round_{r:03d}/{p.name}": p for r in run.rounds()
                  for p in (run.eval(r), run.clusters(r), run.features(r), run.model(r))}
        inputs["metrics"] = run.metrics_log
        return StageIO(stage, None, inputs, {"report": run.report_md}, optional=frozenset(inputs))
    round = 1 if round is None and stage == "mine-aux" else round
    if round is None:
        raise AuxReidError(f"{stage} needs a round (--round R)")
    check_round(stage, round)
    if stage == "mine-aux":
        source = config.aux.sts_source
        reads = {"appearance": ("features",), "clusters": ("features", "clusters")}.get(source, ())
        paths = {"features": run.features(round), "clusters": run.clusters(round)}
        inputs = {**config_input, **{role: paths[role] for role in reads}}
        writers = {"features": "extract", "clusters": "cluster"}
        missing.update({role: (f"{paths[role]} does not exist; aux.sts_source={source} estimates the STS model from "
                               f"round {round}'s {role}: run `auxreid {writers[role]} {name} --round {round}` first, "
                               f"or give --{role} F.h5") for role in reads})
        return StageIO(stage, round, inputs, {"aux": run.aux}, missing=missing, rounds={role: round for role in reads})
    if stage == "extract":
        missing["model"] = _previous_model_message(run, round)
        return StageIO(stage, round, {**config_input, "model": run.model(round - 1)},
                       {"features": run.features(round)}, missing=missing, rounds={"model": round - 1})
    if stage == "cluster":
        cluster = config.cluster
        inputs = {**config_input, "features": run.features(round), "aux": run.aux}
        missing["features"] = f"{run.features(round)} does not exist; run `auxreid extract {name} --round {round}` first"
        clustering = cluster.labels == "clustering"  # oracle labels read neither aux.h5 nor round 1's eps
        needs = [key for key, on in (("cluster.toc", cluster.toc), ("cluster.sts", cluster.sts)) if on and clustering]
        optional = set() if needs else {"aux"}
        if needs:
            missing["aux"] = missing_aux_message(needs, path=run.aux, run=name)
        if round > 1 and cluster.eps_mode == "adaptive" and not cluster.eps_every_round and clustering:
            inputs["eps_from"] = run.clusters(1)
            missing["eps_from"] = (f"{run.clusters(1)} does not exist; adaptive eps is computed at round 1 and reused, "
                                   f"so run `auxreid cluster {name} --round 1` first")
        if round > 1 and cluster.sts and cluster.sts_reestimate and clustering:
            inputs["previous_clusters"] = run.clusters(round - 1)
            missing["previous_clusters"] = (
                f"{run.clusters(round - 1)} does not exist; cluster.sts_reestimate re-estimates the STS model from "
                f"round {round - 1}'s clusters, so run `auxreid cluster {name} --round {round - 1}` first "
                "or set cluster.sts_reestimate=false"
            )
        return StageIO(stage, round, inputs, {"clusters": run.clusters(round)}, optional=frozenset(optional),
                       missing=missing, rounds={"features": round, "eps_from": 1, "previous_clusters": round - 1})
    if stage == "export":
        return StageIO(stage, round, {"clusters": run.clusters(round)}, {"export": run.round_dir(round) / "export"},
                       missing={"clusters": f"{run.clusters(round)} does not exist; run `auxreid cluster {name} --round "
                                            f"{round}` first"}, rounds={"clusters": round})
    if stage == "train-round":
        missing["clusters"] = f"{run.clusters(round)} does not exist; run `auxreid cluster {name} --round {round}` first"
        missing["model"] = _previous_model_message(run, round)
        return StageIO(stage, round, {**config_input, "clusters": run.clusters(round), "model": run.model(round - 1)},
                       {"model": run.model(round), "checkpoint": run.train_checkpoint(round),
                        "metrics": run.metrics_log}, missing=missing, rounds={"clusters": round, "model": round - 1})
    # evaluate
    settings = config.evaluate
    needs = [key for key, on in (("evaluate.toc", settings.toc), ("evaluate.sts", settings.sts)) if on]
    missing["model"] = (f"{run.model(round)} does not exist; train round {round} first, "
                        "or pass --features F.h5 / --model M.pt")
    cached = {"test_features": run.test_features(round)}
    if extract_only:
        missing["model"] = _previous_model_message(run, round + 1)
        return StageIO(stage, round, {**config_input, "model": run.model(round)}, cached, missing=missing,
                       rounds={"model": round}, checked_on_reuse=frozenset({"config"}))
    if needs:
        missing["aux"] = missing_aux_message(needs, path=run.aux, run=name)
    return StageIO(stage, round, {**config_input, "model": run.model(round), **cached, "aux": run.aux},
                   {**cached, "eval": run.eval(round), "eval_json": run.eval_json(round)},
                   optional=frozenset({"test_features"} | (set() if needs else {"aux"})), missing=missing,
                   rounds={"model": round})


def write_dataset_record(run: RunDir, name: str, fingerprint: str) -> Path:
    """Freeze the run's dataset (name, split fingerprint) at init, so no later command parses it to check inputs."""
    run.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.dataset_record) as tmp:
        tmp.write_text(json.dumps({"dataset": name, "fingerprint": fingerprint}) + "\n")
    return run.dataset_record


def run_fingerprint(run: RunDir, config: Config) -> tuple[str, str]:
    """(dataset name, split fingerprint) of the run's dataset: what its artifacts must match.

    Read from RUN/dataset.json, written by `auxreid init`; a run folder put together by hand (a config.yaml and
    no record) has its dataset parsed instead.

    Raises:
        AuxReidError: an unreadable RUN/dataset.json, or the dataset cannot be loaded (the loader's message
            names the folder or file).
    """
    if run.dataset_record.is_file():
        try:
            record = json.loads(run.dataset_record.read_text())
            return str(record["dataset"]), str(record["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError):
            raise AuxReidError(f"{run.dataset_record} is not the dataset record `auxreid init` writes; "
                               f"re-create the run with `auxreid init {run.name} --force`") from None
    dataset = load_dataset(config.data)
    return dataset.name, dataset.fingerprint


def check_inputs(run: RunDir, io: StageIO, config: Config, *, skip: tuple[str, ...] = ()) -> None:
    """Refuse a run input made from another dataset than the run's, or from another round than its place says.

    The truth is the run's own dataset (loaded from its config), never a fingerprint an input carries,
    so a file copied in from another run is named as the wrong one whatever else is present. Only
    provenance is read here (HDF5 attributes; model.pt memory-mapped); the stages' readers check the rest.
    A model.pt without a fingerprint (imported weights) is checked for its round only. A cache (a role the
    stage also writes, e.g. evaluate's test_features.h5) is the stage's to check: it rewrites a stale one.

    Args:
        run: the run.
        io: the stage's wiring (`stage_io`); inputs that do not exist are left to `StageIO.require`.
        config: the run's config (names the dataset).
        skip: input roles the command was given explicitly instead.

    Raises:
        AuxReidError: naming the file, what it was made from, and the command that re-creates it.
    """
    # deferred: model_file imports torch, needed for a model.pt input only; `auxreid status` and `auxreid report`
    # import this module without needing it
    from stages.artifacts.model_file import read_model_file

    present = {role: path for role, path in io.inputs.items()
               if role not in ("config", "metrics", *skip, *io.caches) and path.is_file()}
    if not present:
        return
    name, fingerprint = run_fingerprint(run, config)
    for role, path in present.items():
        if path.suffix == ".pt":
            model = read_model_file(path, mmap=True)
            found_name, found, found_round = model.dataset, model.fingerprint, model.round
        else:
            provenance, _ = read_provenance(path)
            found_name, found, found_round = provenance.dataset, provenance.fingerprint, provenance.round
        writer = writer_of_kind(role)
        expected = io.rounds.get(role)
        again = f"`auxreid {writer} {run.name}" + (f" --round {expected}`" if expected is not None else "`")
        if role == "model" and expected == 0:
            again = f"`auxreid init {run.name} --force`"
        if found and found != fingerprint:
            raise AuxReidError(
                f"{path} was made from dataset '{found_name}' with split fingerprint {found}, but run {run.name}'s "
                f"dataset ({name}, as {run.config_path} names it) has fingerprint {fingerprint}; "
                f"it comes from another run or dataset: re-create it with {again}"
            )
        if expected is not None and found_round != expected:
            raise AuxReidError(
                f"{path} is from round {found_round}, but {io.stage} round {io.round} needs round {expected}'s "
                f"{path.name} there; it was copied from another round: re-create it with {again}"
            )


def ensure_new_run(run: RunDir, *, force: bool = False) -> None:
    """Refuse to overwrite an existing run unless asked to."""
    if run.config_path.exists() and not force:
        raise AuxReidError(f"{run.config_path} already exists; pick another run name or pass --force")


def write_run_config(run: RunDir, config: Config) -> Path:
    """Freeze the fully resolved config into `RUN/config.yaml` (atomically)."""
    run.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.config_path) as tmp:
        tmp.write_text(config_to_yaml(config))
    return run.config_path


def load_run_config(run: RunDir, overrides: list[str] | None = None) -> Config:
    """The run's frozen config with this command's `--set` overrides on top.

    `init` freezes every key, so a key missing from config.yaml means the file was cut short or edited: the
    schema's defaults (the paper's Duke settings) must not fill the gap silently.

    Raises:
        AuxReidError: no config.yaml, a bad one, or one that lacks keys (the first few named).
    """
    run.require()
    frozen = read_yaml(run.config_path)
    missing = _missing_keys(config_to_dict(Config()), frozen if isinstance(frozen, dict) else {})
    if missing and isinstance(frozen, dict):
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise AuxReidError(f"{run.config_path} lacks {shown}; `auxreid init` writes every key, so the file was cut "
                           f"short or edited: restore it, or re-create the run with `auxreid init {run.name} --config "
                           "C.yaml --force`")
    return build_config((frozen, str(run.config_path)), (parse_set(overrides), "--set"))


def _missing_keys(schema: dict, given: dict, prefix: str = "") -> list[str]:
    """The dotted keys of `schema` absent from `given` (a section given as a non-mapping is left to the schema check)."""
    missing = []
    for key, value in schema.items():
        if key not in given:
            missing.append(prefix + key)
        elif isinstance(value, dict) and isinstance(given[key], dict):
            missing += _missing_keys(value, given[key], f"{prefix}{key}.")
    return missing

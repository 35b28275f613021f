"""Typed configuration: one dataclass schema with the paper's defaults, YAML overrides, --set overrides.

The defaults are the DukeMTMC-VideoReID settings of Teng et al. 2022 (arXiv 2205.03124, its
settings table); `configs/*.yaml` override them. Unknown keys and wrongly typed values are errors
that name the key and suggest the nearest valid one, so a misspelt key never silently does nothing. A number
is taken in every spelling people type (1e6, -.5, 1_000, 1e3 for an int), though YAML 1.1 reads some as text.
Each field's allowed range is declared next to it (`setting`), and checks across fields of one section
sit in that section's `_cross_checks`; both are checked after every load.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import hashlib
import math
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Union, get_args, get_origin

import yaml

from stages.errors import AuxReidError

#: Every int key must fit a signed 64-bit integer (numpy, torch and HDF5 store them so).
INT64_RANGE = (-(2**63), 2**63 - 1)
#: The most iterations one round may train: 250 times the paper's rounds (0.6 x ~700 clusters), hours of
#: training, while a round's plan of batches (iterations x batch_size indices) stays tens of MiB. The
#: round plan refuses a round whose train.iters_multiplier x clusters asks for more.
MAX_ROUND_ITERATIONS = 100_000
#: The largest train.iters_multiplier: iterations per cluster (the paper's is 0.6).
MAX_ITERS_MULTIPLIER = 100


@dataclass(frozen=True)
class Range:
    """The allowed values of a number: it checks a value and words the requirement, so the two cannot drift.

    `low`/`high` bound the interval (None: unbounded), `*_open` excludes the bound; `high_text` spells the
    upper bound when its digits would hide its meaning (2**32 - 1); `note` is appended to the wording as
    given (" (0 keeps tracklets whole)", ": Jaccard distances lie in [0, 1]"); `null` also allows None.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    high_text: str = ""
    note: str = ""
    null: bool = False

    def __call__(self, value: Any) -> bool:
        if value is None:
            return self.null
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    @property
    def requirement(self) -> str:
        """Completes "'key' = value is out of range; it must be ..."."""
        high = self.high_text or _number_text(self.high)
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{_number_text(self.low)}, {high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_number_text(self.low)}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {high}"
        else:
            text = "a finite number"
        return ("null or " + text if self.null else text) + self.note


@dataclass(frozen=True)
class Choices:
    """A value that must be one of a few (numbers or words), worded "1 or 2" / "auto, cpu or cuda"."""

    values: tuple[Any, ...]

    def __call__(self, value: Any) -> bool:
        return value in self.values

    @property
    def requirement(self) -> str:
        words = [str(v) for v in self.values]
        return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


@dataclass(frozen=True)
class Pattern:
    """Text that must match a regular expression, worded by `requirement`."""

    regex: str
    requirement: str

    def __call__(self, value: Any) -> bool:
        return re.fullmatch(self.regex, value) is not None


def _number_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def setting(default: Any, check: Range | Choices | Pattern) -> Any:
    """A config field with its default and its allowed values (`check`, which also words the error).

    On top of `check`, a float must be finite (NaN and infinities are refused before `check` runs) and an
    int must fit int64, so every numeric key has a bounded range even when `check` only states one side.
    """
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class CrossCheck:
    """A check across fields of one section: `check(section)` is true when the fields agree.

    `keys` are the fields it reads (the error names the source that set one of them last). `message` is formatted with the section's fields (`{batch_size}`) and `{p}`, the section's prefix
    ("train."), and is appended to the source: "x.yaml: <message>".
    """

    keys: tuple[str, ...]
    check: Callable[[Any], bool]
    message: str


#: Where a stage computes.
_DEVICE = Pattern(r"auto|cpu|cuda(:\d+)?", "auto, cpu, cuda or cuda:N")


@dataclass
class DataConfig:
    """Which dataset, where, and how its frames are read."""

    dataset: Literal["synth", "duke", "mars", "manifest"] = "duke"
    root: str = ""
    manifest: str = ""
    dense_step: int = setting(40, Range(low=0, note=' (0 keeps tracklets whole)'))
    height: int = setting(256, Range(low=16))
    width: int = setting(128, Range(low=8))
    num_workers: int = setting(2, Range(low=0))


@dataclass
class ModelConfig:
    """The ResNet re-id network: backbone, last stride, stem, initial weights."""

    arch: Literal["resnet50", "resnet34", "resnet18"] = "resnet50"
    last_stride: int = setting(2, Choices((1, 2)))
    stem_relu: bool = False
    pretrained: str = "imagenet"


@dataclass
class ExtractConfig:
    """Feature extraction: cluster mode (random run of frames) and infer mode (every frame)."""

    cluster_seq_len: int = setting(32, Range(low=1))
    cluster_batch: int = setting(16, Range(low=1))
    infer_chunk: int = setting(64, Range(low=1))
    device: str = setting("auto", _DEVICE)
    # Mixed precision (autocast) on any device; the paper ran fp32. bf16 trades exactness for throughput on
    # tensor-core GPUs (on most CPUs it is slower than fp32).
    amp: Literal["bf16", "fp16", "off"] = "off"
    # NHWC memory layout on any device: faster convolutions on CUDA tensor cores.
    channels_last: bool = True
    skip_bad_frames: bool = False


@dataclass
class AuxConfig:
    """Mining of auxiliary information: TOC, SCP, STS transit-time model."""

    sts_source: Literal["appearance", "clusters", "oracle"] = "appearance"
    sts_bin_seconds: float = setting(2.0, Range(low=0, low_open=True))
    sts_smooth_sigma_bins: float = setting(2.0, Range(low=0))
    sts_mutual_k: int = setting(5, Range(low=1))
    sts_min_pairs: int = setting(5, Range(low=1))
    sts_max_gap_seconds: float = setting(600.0, Range(low=0, low_open=True))


@dataclass
class ClusterConfig:
    """Pseudo labels: k-reciprocal Jaccard distance, SCP/STS, eps, DBSCAN / cannot-link DBSCAN."""

    # Where the pseudo labels come from: the method's clustering, or the dataset's true train identities (an upper
    # bound for ablations: the same model, data and iterations, trained supervised; refused without train ids).
    labels: Literal["clustering", "oracle"] = "clustering"
    k1: int = setting(30, Range(low=1))
    k2: int = setting(6, Range(low=1))
    normalize: bool = False
    # Standardise each feature dimension with its camera's mean and std before clustering (camera-based
    # normalisation, Zhuang et al. ECCV 2020); off in the paper.
    camera_norm: bool = False
    knn_backend: Literal["auto", "faiss", "torch"] = "auto"
    # The kNN search behind the Jaccard distance: exact, or approximate for city-scale N: a faiss index (IVF,
    # HNSW) or NN-descent (every list at once, on every core, the same lists for any thread count); auto is exact
    # up to knn_exact_max points, so the paper's datasets are always searched exactly.
    knn: Literal["auto", "exact", "ivf", "hnsw", "nndescent"] = "auto"
    knn_exact_max: int = setting(200_000, Range(low=1))
    # An approximate search first reduces the features to this many dimensions by PCA (0: no reduction).
    knn_pca_dim: int = setting(0, Range(low=0))
    # Where the kNN search runs: auto takes CUDA when present (faiss on that GPU only with the gpu extra).
    device: str = setting("auto", _DEVICE)
    eps_mode: Literal["adaptive", "fixed"] = "adaptive"
    # The paper computes the adaptive eps at round 1 and keeps it; true re-estimates it from every round's own
    # distances, so the radius follows the features as training pulls identities together.
    eps_every_round: bool = False
    eps: float = setting(0.6, Range(low=0, high=1, low_open=True, high_open=True, note=': Jaccard distances lie in [0, 1]'))
    rho: float = setting(1.6e-3, Range(low=0, high=1, low_open=True, high_open=True))
    # From this many train tracklets on, the Jaccard distance keeps only the pairs that can fall within eps (the same
    # eps and clusters, with memory that follows the pairs kept instead of ~9,000 pairs a tracklet).
    jaccard_cap_from: int = setting(20_000, Range(low=1))
    # Scale-aware adaptive eps: average the smallest eps_pairs_per_point x N / 2 pairs instead of the rho fraction
    # of all N(N-1)/2 pairs, which grows with N (about 6 pairs a tracklet at Duke's size, 800 at a million). null: rho.
    eps_pairs_per_point: float | None = setting(None, Range(low=0, low_open=True, null=True))
    min_samples: int = setting(4, Range(low=1))
    toc: bool = False
    # None keeps every cannot-link; any finite r, >= 0 or < 0, is meaningful (icdbscan.py).
    relaxed: float | None = setting(None, Range(null=True))
    scp: bool = True
    scp_lambda: float = setting(0.006, Range(low=0))
    sts: bool = True
    sts_lambda: float = setting(0.6, Range(low=0))
    sts_gamma: float = setting(8.0, Range(low=0))
    sts_reestimate: bool = False
    # K of the RLSCE nearest-cluster map stored in clusters.h5; training reads K from that file.
    rlsce_k: int = setting(60, Range(low=1))


@dataclass
class TrainConfig:
    """Mean-teacher training of one round. RLSCE's K is `cluster.rlsce_k` (in clusters.h5)."""

    rounds: int = setting(50, Range(low=1))
    id_loss: Literal["rlsce", "lsce", "ce"] = "rlsce"
    label_smoothing: float = setting(0.1, Range(low=0, high=1, high_open=True))
    triplet: Literal["soft", "watl"] = "watl"
    watl_margin: float = setting(0.5, Range(low=0))
    watl_lambda: float = setting(-0.01, Range(note=" (the paper's value is negative)"))
    weight_id: float = setting(0.5, Range(low=0))
    weight_triplet: float = setting(0.2, Range(low=0))
    weight_soft_id: float = setting(0.5, Range(low=0))
    weight_soft_triplet: float = setting(0.8, Range(low=0))
    # Dynamic iterations: round(iters_multiplier x clusters) per round; <= 0 trains fixed_iters instead. Both
    # are bounded so that a typo (1e9) is refused here, not by a plan of batches too large to allocate.
    iters_multiplier: float = setting(0.6, Range(high=MAX_ITERS_MULTIPLIER, note=' (<= 0 trains fixed_iters)'))
    fixed_iters: int = setting(400, Range(low=1, high=MAX_ROUND_ITERATIONS))
    batch_size: int = setting(64, Range(low=2))
    instances: int = setting(4, Range(low=2, note=' (the triplet loss needs positives)'))
    train_seq_len: int = setting(4, Range(low=1))
    lr: float = setting(3.5e-4, Range(low=0, low_open=True))
    weight_decay: float = setting(5e-4, Range(low=0))
    lr_step_round: int = setting(50, Range(low=1))
    lr_gamma: float = setting(0.1, Range(low=0, high=1, low_open=True))
    ema_max: float = setting(0.999, Range(low=0, high=1, low_open=True, high_open=True))
    # BatchNorm statistics are taken over chunks of this many tracklets; a last smaller chunk is allowed.
    bn_chunk: int = setting(16, Range(low=1))
    # Where the round trains: auto takes CUDA when present, else the CPU.
    device: str = setting("auto", _DEVICE)
    # Mixed precision for the forward pass on any device (fp16 with a gradient scaler). The paper trained fp32.
    amp: Literal["bf16", "fp16", "off"] = "off"
    # NHWC memory layout on any device: faster convolutions on CUDA tensor cores.
    channels_last: bool = True
    # Random horizontal flip (p 0.5).
    flip: bool = True
    # Zero-pad by `pad` pixels and random-crop back to height x width.
    pad_crop: bool = True
    pad: int = setting(10, Range(low=0))
    random_erasing: bool = True
    # Who shares one draw of flip, crop and erasing: every frame its own (the authors'), or one per clip (every
    # frame of an instance alike: a clip stays one consistent video, and T times fewer draws).
    augment_per: Literal["frame", "clip"] = "frame"
    # Save a resumable checkpoint every this many iterations; 0 saves only at the end of the round.
    checkpoint_every: int = setting(100, Range(low=0, note=' (0 = only at the end of the round)'))
    # Log the losses every this many iterations.
    log_every: int = setting(1, Range(low=1))

    _cross_checks: ClassVar[tuple[CrossCheck, ...]] = (
        CrossCheck(
            ("batch_size", "instances"),
            lambda t: t.batch_size % t.instances == 0,
            "'{p}batch_size' = {batch_size} is not a multiple of '{p}instances' = {instances}; a batch is "
            "batch_size / instances identities x instances tracklets, so make batch_size a multiple of instances",
        ),
        CrossCheck(
            ("batch_size", "instances"),
            lambda t: t.batch_size >= 2 * t.instances,
            "'{p}batch_size' = {batch_size} is less than 2 x '{p}instances' = {instances}: a batch then holds one "
            "identity, so the triplet losses have no negatives and stay 0 all round; make batch_size at least 2 x instances",
        ),
    )


@dataclass
class EvaluateConfig:
    """Query x gallery evaluation and the auxiliary information used at test time."""

    # Evaluate round 0, every `every`-th round and the last (the authors evaluate every 2 epochs).
    every: int = setting(2, Range(low=1))
    toc: bool = True
    toc_penalty: float = setting(1000.0, Range(low=0))
    scp: bool = True
    scp_lambda: float = setting(0.03, Range(low=0))
    sts: bool = True
    sts_lambda: float = setting(0.6, Range(low=0))
    sts_gamma: float = setting(8.0, Range(low=0))
    rerank: bool = False
    rerank_k1: int = setting(20, Range(low=1))
    rerank_k2: int = setting(6, Range(low=1))
    rerank_lambda: float = setting(0.3, Range(low=0, high=1))
    top_k: int = setting(100, Range(low=1))


@dataclass
class Config:
    """Every setting of a run; frozen into `RUN/config.yaml` by `auxreid init`."""

    # numpy's and torch's generators take seeds in [0, 2**32 - 1].
    seed: int = setting(0, Range(low=0, high=2**32 - 1, high_text='2**32 - 1'))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            keys.append(name)
            keys.extend(_all_keys(hints[f.name], name + "."))
        else:
            keys.append(name)
    return keys


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


#: A number as people type it: a sign, `_` between digits, digits on either side of the dot (or both), an
#: exponent with or without its sign. YAML 1.1 reads some of these as text (1e6, 1.0e9, -.5: it wants a dot and
#: a signed exponent), and `--set` values are YAML too.
_NUMBER = re.compile(r"[-+]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][-+]?\d(?:_?\d)*)?")
#: An integral number beyond this decimal exponent is refused as too large for an int rather than made one (every
#: int key is bounded far below it; its hundreds of digits would only flood the message).
_INT_EXPONENT_LIMIT = 400


def _number(value: Any) -> Decimal | None:
    """The exact number `value` is (an int, a float or a `_NUMBER` text), else None; booleans are no numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        try:
            return Decimal(value.replace("_", ""))
        except InvalidOperation:
            return None
    return None


def _too_large(key: str, value: Any, source: str, kind: str) -> AuxReidError:
    return AuxReidError(f"{source}: '{key}' = {value} is too large for {kind}; fix the value in the YAML file or --set")


def _coerce(key: str, value: Any, tp: Any, source: str) -> Any:
    """Check `value` against the annotated type; a number in any spelling is taken for a float key, an integral
    one for an int key (1e3, 100.0), so a value is refused for what it is, not for how YAML 1.1 read it."""
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _coerce(key, value, option, source)
            except AuxReidError:
                continue
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if _is_int(value):
            return value
        number = _number(value)
        if number is not None and number.is_finite() and number == number.to_integral_value():
            if number.adjusted() > _INT_EXPONENT_LIMIT:
                raise _too_large(key, value, source, "an int")
            return int(number)
    elif tp is float:
        if isinstance(value, float):
            return value
        number = _number(value)
        if number is not None:
            result = float(number)
            if math.isinf(result) and number.is_finite():
                raise _too_large(key, value, source, "a float")
            return result
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    hint = ""
    if isinstance(value, bool) and origin is Literal:
        hint = " (YAML reads unquoted off/on/no/yes as booleans; quote the word, e.g. 'off')"
    raise AuxReidError(
        f"{source}: '{key}' must be {_type_name(tp)}, got {value!r}{hint}; fix the value in the YAML file or --set"
    )


def _apply(
    obj: Any, data: dict, prefix: str, origin: tuple[int, str], valid: list[str], origins: dict[str, tuple[int, str]]
) -> None:
    """Set each key of `data` on `obj`, recording in `origins` which (layer, source) set it last."""
    source = origin[1]
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in names:
            raise AuxReidError(f"{source}: unknown config key '{key}'{_suggest(key, valid)}")
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise AuxReidError(f"{source}: '{key}' must be a section (a mapping of keys), got {value!r}")
            _apply(getattr(obj, name), value, key + ".", origin, valid, origins)
        else:
            setattr(obj, name, _coerce(key, value, tp, source))
            origins[key] = origin


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numeric_ok(value: Any, check: Callable[[Any], bool]) -> bool:
    """The declared range, after the bounds every number has: floats finite, ints within int64."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if _is_int(value) and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        return False
    return check(value)


def _check_ranges(section: Any, origins: dict[str, tuple[int, str]], default_source: str, prefix: str = "") -> None:
    """Walk the dataclass tree: each field's declared range, then each section's cross-field checks.

    An error names the source that set the offending key (`origins`), else `default_source`.
    """
    for f in dataclasses.fields(section):
        key = f"{prefix}{f.name}"
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            _check_ranges(value, origins, default_source, key + ".")
            continue
        check = f.metadata.get("check")
        if check is not None and not _numeric_ok(value, check):
            source = origins[key][1] if key in origins else default_source
            requirement = check.requirement
            if isinstance(value, float) and not math.isfinite(value) and "finite" not in requirement:
                requirement += " and finite"
            elif _is_int(value) and not INT64_RANGE[0] <= value <= INT64_RANGE[1] and check(value):
                requirement += " and within int64"  # only where the declared range has no bound on that side
            raise AuxReidError(f"{source}: '{key}' = {value!r} is out of range; it must be {requirement}")
    for cross in getattr(type(section), "_cross_checks", ()):
        if not cross.check(section):
            values = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
            setters = [origins[prefix + name] for name in cross.keys if prefix + name in origins]
            source = max(setters)[1] if setters else default_source
            raise AuxReidError(f"{source}: " + cross.message.format(p=prefix, **values))


def parse_set(assignments: list[str] | None) -> dict:
    """Turn `--set a.b=value` strings into a nested dict; values are parsed as YAML scalars."""
    nested: dict = {}
    for item in assignments or []:
        if "=" not in item:
            raise AuxReidError(f"--set '{item}' is not of the form key=value (e.g. --set cluster.eps=0.5)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AuxReidError(f"--set '{item}': '{part}' was already given a value")
        node[parts[-1]] = value
    return nested


def build_config(*layers: tuple[dict, str]) -> Config:
    """Start from the defaults and apply each (mapping, source-name) layer in order."""
    config = Config()
    valid = _all_keys(Config)
    origins: dict[str, tuple[int, str]] = {}
    for layer, (data, source) in enumerate(layers):
        if data is None:
            continue
        if not isinstance(data, dict):
            raise AuxReidError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
        _apply(config, data, "", (layer, source), valid, origins)
    _apply_dataset_defaults(config, origins)
    _check_ranges(config, origins, layers[-1][1] if layers else "config")
    return config


#: Data settings of a dataset that differ from the schema's defaults (the paper's Duke settings); a config
#: or --set that gives the key wins. They equal the dataset's configs/*.yaml, so a standalone command on a
#: dataset reads it as a run of that config does (the same tracklets, hence the same fingerprint).
DATASET_DEFAULTS = {
    "synth": {"dense_step": 8, "height": 64, "width": 32},
    "mars": {"dense_step": 0},
    "manifest": {"dense_step": 0},
}


def _apply_dataset_defaults(config: Config, origins: dict[str, tuple[int, str]]) -> None:
    """The chosen dataset's own data settings (DATASET_DEFAULTS) for the keys no layer set.

    The schema's defaults are Duke's; without this, `--dataset synth` alone would cut the synthetic
    tracklets as Duke's (dense_step 40) and read other tracklets than a run of configs/synth.yaml.
    """
    for key, value in DATASET_DEFAULTS.get(config.data.dataset, {}).items():
        if f"data.{key}" not in origins:
            setattr(config.data, key, value)


#: Special file types, as `stat` tells them, and their names in messages.
_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class FileProblem:
    """Why a path cannot be read as a file, worded for what the path is.

    The one check of every reader of a named file (config YAML, HDF5 artifacts, weight files): asking
    only `is_file()` called a folder, a symlink loop or a FIFO "does not exist", and sent people looking
    for a missing file. It lives here, the bottom layer, because the config reader needs it too.

    Attributes:
        kind: "missing", "folder", "loop", "broken_link", "special" or "unreachable"; a reader gives its own
            advice for the first two (which stage writes the file, which file inside the folder to give).
        words: completes "<what> <path> ...": "does not exist", "is a folder", "is a symlink loop", "is a
            broken symlink (to x.h5)", "is not a regular file (a FIFO)", "cannot be reached (Permission denied)".
        advice: what to do, for the kinds no reader advises on itself.
    """

    kind: str
    words: str
    advice: str


def file_problem(path: str | Path) -> FileProblem | None:
    """What keeps `path` from being read as a regular file (after its symlinks), or None when nothing does.

    Only `stat`s the path: a FIFO must be refused unopened (reading it blocks until a writer comes), and a
    device such as /dev/zero never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return _unreachable(Path(path), exc)
    except ValueError:  # a NUL byte in the name
        return FileProblem("missing", "does not exist", "check the path")
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return FileProblem("folder", "is a folder", "give the path of a file inside it")
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    return FileProblem("special", f"is not a regular file ({kind})", "give the path of a regular file")


def _unreachable(path: Path, exc: OSError) -> FileProblem:
    if exc.errno == errno.ELOOP:
        return FileProblem("loop", "is a symlink loop", "point the link at a file, or remove it")
    if exc.errno == errno.ENOENT and path.is_symlink():
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        return FileProblem("broken_link", f"is a broken symlink{target}", "point the link at a file, or remove it")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileProblem("missing", "does not exist", "check the path")
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return FileProblem("unreachable", f"cannot be reached ({reason})", "check the path and its folders' permissions")


def require_file(path: str | Path, what: str, *, missing: str, folder: str) -> Path:
    """`path` when it is a regular file, else one AuxReidError "<what> <path> <problem>; <advice>".

    `missing` and `folder` are the reader's advice for a path that does not exist or is a folder; the
    other problems (`FileProblem`) have one remedy whoever reads the file.
    """
    problem = file_problem(path)
    if problem is None:
        return Path(path)
    advice = {"missing": missing, "folder": folder}.get(problem.kind, problem.advice)
    raise AuxReidError(f"{what} {path} {problem.words}; {advice}")


def shipped_configs() -> dict[str, Path]:
    """Name -> file of the configs that come with the package (the checkout's configs/, as package data)."""
    folder = Path(__file__).resolve().parent / "configs"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config_path(value: str | Path) -> Path:
    """A config file: the path as given when it exists, else a shipped config by name (`synth`, `synth.yaml`).

    Shipped configs are found from any working directory; a path with a folder in it is only ever a path.
    """
    path = Path(value)
    if file_problem(path) is None:
        return path
    shipped = shipped_configs()
    if path.parent == Path(".") and path.suffix in ("", ".yaml") and path.stem in shipped:
        return shipped[path.stem]
    names = ", ".join(shipped) or "none found"
    close = difflib.get_close_matches(path.stem, list(shipped), n=1, cutoff=0.6)
    advice = f"give a YAML file or a shipped config ({names})" + (f"; did you mean --config {close[0]}?" if close else "")
    return require_file(path, "config file", missing=advice, folder=advice)


def read_yaml(path: str | Path) -> dict:
    """A YAML config file's mapping: UTF-8 text (a BOM is allowed), safe YAML (no tags that build objects)."""
    path = resolve_config_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AuxReidError(f"config file {path} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AuxReidError(
            f"config file {path} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    return parse_yaml_text(text, f"config file {path}")


def parse_yaml_text(text: str, source: str) -> Any:
    """`yaml.safe_load` of config text, its errors as one line naming `source`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AuxReidError(f"{source} is not valid YAML: {_yaml_problem(exc)}") from None
    return data or {}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The first line of a YAML error, plus where it is (python tags are named as such)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    if "python/" in str(exc):
        problem += "; python tags are refused, a config holds only plain values"
    return f"{problem}{where}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file (optional) <- `--set` overrides."""
    layers: list[tuple[dict, str]] = []
    if path is not None:
        path = resolve_config_path(path)
        layers.append((read_yaml(path), str(path)))
    layers.append((parse_set(overrides), "--set"))
    return build_config(*layers)


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def config_hash(config: Config) -> str:
    """Hash of the fully resolved config, so artifacts say exactly which settings made them."""
    return hashlib.sha256(config_to_yaml(config).encode()).hexdigest()[:16]


def config_from_yaml(text: str, source: str, overrides: Mapping | None = None) -> Config:
    """The full Config frozen in a model.pt (or any YAML text), with optional overrides on top."""
    if not isinstance(text, str):
        raise AuxReidError(f"{source}: its stored config is a {type(text).__name__}, not YAML text; re-create the file")
    data = parse_yaml_text(text, f"{source}'s stored config")
    return build_config((data, f"{source} config"), (dict(overrides or {}), "--set"))

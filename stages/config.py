"""Typed configuration: one dataclass schema with the paper's defaults, YAML overrides, --set overrides.

The defaults are the DukeMTMC-VideoReID settings of Teng et al. 2022 (arXiv 2205.03124, table of
DESIGN section 5); `configs/*.yaml` override them. Unknown keys and wrongly typed values are errors
that name the key and suggest the nearest valid one, so a misspelt key never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from stages.errors import AuxReidError


@dataclass
class DataConfig:
    """Which dataset, where, and how its frames are read."""

    dataset: Literal["synth", "duke", "mars", "manifest"] = "duke"
    root: str = ""
    manifest: str = ""
    dense_step: int = 40
    height: int = 256
    width: int = 128
    num_workers: int = 2


@dataclass
class ModelConfig:
    """ResNet backbone of DESIGN 4.2."""

    arch: Literal["resnet50", "resnet34", "resnet18"] = "resnet50"
    last_stride: int = 2
    stem_relu: bool = False
    pretrained: str = "imagenet"


@dataclass
class ExtractConfig:
    """Feature extraction: cluster mode (random run of frames) and infer mode (every frame)."""

    cluster_seq_len: int = 32
    cluster_batch: int = 16
    infer_chunk: int = 64
    device: str = "auto"
    amp: Literal["bf16", "fp16", "off"] = "bf16"
    channels_last: bool = True
    skip_bad_frames: bool = False


@dataclass
class AuxConfig:
    """Mining of auxiliary information (DESIGN 4.1): TOC, SCP, STS transit-time model."""

    sts_source: Literal["appearance", "clusters", "oracle"] = "appearance"
    sts_bin_seconds: float = 2.0
    sts_smooth_sigma_bins: float = 2.0
    sts_mutual_k: int = 5
    sts_min_pairs: int = 5
    sts_max_gap_seconds: float = 600.0


@dataclass
class ClusterConfig:
    """Pseudo labels: k-reciprocal Jaccard distance, SCP/STS, eps, DBSCAN / cannot-link DBSCAN."""

    k1: int = 30
    k2: int = 6
    normalize: bool = False
    knn_backend: Literal["auto", "faiss", "torch"] = "auto"
    eps_mode: Literal["adaptive", "fixed"] = "adaptive"
    eps: float = 0.6
    rho: float = 1.6e-3
    min_samples: int = 4
    toc: bool = False
    relaxed: float | None = None
    scp: bool = True
    scp_lambda: float = 0.006
    sts: bool = True
    sts_lambda: float = 0.6
    sts_gamma: float = 8.0
    sts_reestimate: bool = False
    rlsce_k: int = 60


@dataclass
class TrainConfig:
    """Mean-teacher training of one round (DESIGN 4.4)."""

    rounds: int = 50
    id_loss: Literal["rlsce", "lsce", "ce"] = "rlsce"
    rlsce_k: int = 60
    label_smoothing: float = 0.1
    triplet: Literal["soft", "watl"] = "watl"
    watl_margin: float = 0.5
    watl_lambda: float = -0.01
    weight_id: float = 0.5
    weight_triplet: float = 0.2
    weight_soft_id: float = 0.5
    weight_soft_triplet: float = 0.8
    iters_multiplier: float = 0.6
    fixed_iters: int = 400
    batch_size: int = 64
    instances: int = 4
    train_seq_len: int = 4
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    lr_step_round: int = 50
    lr_gamma: float = 0.1
    ema_max: float = 0.999
    bn_chunk: int = 16
    random_erasing: bool = True


@dataclass
class EvaluateConfig:
    """Query x gallery evaluation (DESIGN 4.5) and the auxiliary information used at test time."""

    every: int = 5
    toc: bool = True
    toc_penalty: float = 1000.0
    scp: bool = True
    scp_lambda: float = 0.03
    sts: bool = True
    sts_lambda: float = 0.6
    sts_gamma: float = 8.0
    rerank: bool = False
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    top_k: int = 100


@dataclass
class Config:
    """Every setting of a run; frozen into `RUN/config.yaml` by `auxreid init`."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


#: Declared ranges, checked after every load: (predicate, requirement text).
_RANGES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "data.dense_step": (lambda v: v >= 0, ">= 0 (0 keeps tracklets whole)"),
    "data.height": (lambda v: v >= 16, ">= 16"),
    "data.width": (lambda v: v >= 8, ">= 8"),
    "data.num_workers": (lambda v: v >= 0, ">= 0"),
    "model.last_stride": (lambda v: v in (1, 2), "1 or 2"),
    "extract.cluster_seq_len": (lambda v: v >= 1, ">= 1"),
    "extract.cluster_batch": (lambda v: v >= 1, ">= 1"),
    "extract.infer_chunk": (lambda v: v >= 1, ">= 1"),
    "aux.sts_bin_seconds": (lambda v: v > 0, "> 0"),
    "aux.sts_smooth_sigma_bins": (lambda v: v >= 0, ">= 0"),
    "aux.sts_mutual_k": (lambda v: v >= 1, ">= 1"),
    "aux.sts_min_pairs": (lambda v: v >= 1, ">= 1"),
    "aux.sts_max_gap_seconds": (lambda v: v > 0, "> 0"),
    "cluster.k1": (lambda v: v >= 1, ">= 1"),
    "cluster.k2": (lambda v: v >= 1, ">= 1"),
    "cluster.eps": (lambda v: 0 < v < 1, "in (0, 1): Jaccard distances lie in [0, 1]"),
    "cluster.rho": (lambda v: 0 < v < 1, "in (0, 1)"),
    "cluster.min_samples": (lambda v: v >= 1, ">= 1"),
    "cluster.scp_lambda": (lambda v: v >= 0, ">= 0"),
    "cluster.sts_lambda": (lambda v: v >= 0, ">= 0"),
    "cluster.sts_gamma": (lambda v: v >= 0, ">= 0"),
    "cluster.rlsce_k": (lambda v: v >= 1, ">= 1"),
    "train.rounds": (lambda v: v >= 1, ">= 1"),
    "train.rlsce_k": (lambda v: v >= 1, ">= 1"),
    "train.label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.batch_size": (lambda v: v >= 2, ">= 2"),
    "train.instances": (lambda v: v >= 2, ">= 2 (the triplet loss needs positives)"),
    "train.train_seq_len": (lambda v: v >= 1, ">= 1"),
    "train.lr": (lambda v: v > 0, "> 0"),
    "train.weight_decay": (lambda v: v >= 0, ">= 0"),
    "train.ema_max": (lambda v: 0 < v < 1, "in (0, 1)"),
    "train.bn_chunk": (lambda v: v >= 1, ">= 1"),
    "evaluate.every": (lambda v: v >= 1, ">= 1"),
    "evaluate.scp_lambda": (lambda v: v >= 0, ">= 0"),
    "evaluate.rerank_k1": (lambda v: v >= 1, ">= 1"),
    "evaluate.rerank_k2": (lambda v: v >= 1, ">= 1"),
    "evaluate.rerank_lambda": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "evaluate.top_k": (lambda v: v >= 1, ">= 1"),
}


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


def _coerce(key: str, value: Any, tp: Any, source: str) -> Any:
    """Check `value` against the annotated type; ints are accepted for floats, nothing else is cast."""
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
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise AuxReidError(
        f"{source}: '{key}' must be {_type_name(tp)}, got {value!r}; fix the value in the YAML file or --set"
    )


def _apply(obj: Any, data: dict, prefix: str, source: str, valid: list[str]) -> None:
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
            _apply(getattr(obj, name), value, key + ".", source, valid)
        else:
            setattr(obj, name, _coerce(key, value, tp, source))


def _check_ranges(config: Config, source: str) -> None:
    for key, (ok, requirement) in _RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not ok(value):
            raise AuxReidError(f"{source}: '{key}' = {value!r} is out of range; it must be {requirement}")


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
    for data, source in layers:
        if data is None:
            continue
        if not isinstance(data, dict):
            raise AuxReidError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
        _apply(config, data, "", source, valid)
    _check_ranges(config, layers[-1][1] if layers else "config")
    return config


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise AuxReidError(f"config file {path} does not exist; pass one of configs/*.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AuxReidError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return data or {}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file (optional) <- `--set` overrides."""
    layers: list[tuple[dict, str]] = []
    if path is not None:
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

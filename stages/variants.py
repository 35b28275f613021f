"""Variants: what a stage writes in RUN mode when told to differ from the run's own definition.

A run's official artifacts (`round_00R/clusters.h5`, `eval.h5`, `RUN/aux.h5`, ...) always follow its config.yaml
and its own inputs, so `report`, `status` and make can trust them. A stage given `--set` values that change what
its output holds (the settings `settings_of` names for it: `cluster.*` for cluster, `evaluate.*` and the
test-feature settings for evaluate, ...), or, for evaluate, other features, model or aux.h5 than the round's own,
writes a variant instead: the same files under `variants/<name>/` beside the official ones (the round folder;
the run folder for mine-aux's aux.h5). The name spells the difference (`evaluate.rerank=true`,
`cluster.eps=0.5,cluster.min_samples=2`, `model=other.pt`), so the same call replaces its own variant and nothing
else. Settings that change where or how fast a stage runs (devices, batch sizes) make no variant. To change the
run itself, edit config.yaml: `status` then names what is stale and `make round` re-makes it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from stages.artifacts.readers import flat_settings, setting_decides, setting_text
from stages.artifacts.schemas import EVAL, MODEL, settings_of
from stages.config import Config

#: The folder, inside a round folder or the run folder, that holds a stage's variants.
VARIANTS_DIR = "variants"

#: The schema of each stage's output: its settings decide whether a --set makes a variant.
STAGE_OUTPUT = {"extract": "features", "cluster": "clusters", "train-round": MODEL, "evaluate": "eval",
                "mine-aux": "aux"}

#: The settings that shape evaluate's query/gallery features (test_features.h5): a variant that changes one
#: keeps its own test features; any other evaluate variant re-ranks the round's official ones.
TEST_FEATURE_SETTINGS = tuple(key for key in EVAL.settings if not key.startswith("evaluate"))

#: Longest variant name kept as spelled; a longer one is cut and ends in a hash of the whole.
_MAX_NAME = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+@-]")


class Difference(NamedTuple):
    """One way a variant differs from the run's own definition.

    Attributes:
        key: a dotted setting ("evaluate.rerank") or an input role ("model").
        official: the run's value (config.yaml's, or the run's own file).
        variant: the value the variant was made with (a setting's value, or the file given).
    """

    key: str
    official: Any
    variant: Any


def setting_differences(stage: str, official: Config, config: Config, *,
                        settings: tuple[str, ...] | None = None) -> list[Difference]:
    """The settings of `config` (config.yaml with this call's --set) that differ from config.yaml's and decide
    what `stage` writes (`settings` instead of its output schema's, when given), in the config's order."""
    decides = settings if settings is not None else settings_of(STAGE_OUTPUT[stage])
    run, asked = flat_settings(official), flat_settings(config)
    return [Difference(key, run[key], value) for key, value in asked.items()
            if setting_decides(key, decides) and run.get(key) != value]


def variant_name(differences: list[Difference]) -> str:
    """The folder name of a variant: `key=value` per difference, joined by ',' ("evaluate.rerank=true").

    Characters a file name should not hold become '_'; a name over 96 characters is cut and ends in 8
    hex digits of the whole name's SHA-256, so two long variants never share a folder.
    """
    parts = []
    for difference in differences:
        value = _file_word(difference.variant) if isinstance(difference.variant, Path) else setting_text(difference.variant)
        parts.append(f"{difference.key}={value}")
    name = _UNSAFE.sub("_", ",".join(parts))
    if len(name) > _MAX_NAME:
        name = f"{name[:_MAX_NAME - 9]}@{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


def _file_word(path: Path) -> str:
    """A given file as a name part: `round_000_model.pt` for a run's round file, else its file name."""
    return "_".join(path.parts[-2:]) if re.fullmatch(r"round_\d{3,}", path.parent.name) else path.name


def describe(differences: list[Difference]) -> str:
    """'evaluate.rerank true here, false in config.yaml; model other.pt instead of round_002/model.pt' text."""
    words = []
    for difference in differences:
        if isinstance(difference.variant, Path):
            words.append(f"{difference.key} {difference.variant} instead of the run's {difference.official}")
        else:
            words.append(f"{difference.key} {setting_text(difference.variant)} here, "
                         f"{setting_text(difference.official)} in config.yaml")
    return "; ".join(words)


def variant_folder(official_output: Path, name: str) -> Path:
    """Where the variant `name` of an official output lives: `<its folder>/variants/<name>/`."""
    return official_output.parent / VARIANTS_DIR / name


def relocate(outputs: Mapping[str, Path], folder: Path, *, keep: frozenset[str] = frozenset()) -> dict[str, Path]:
    """A variant's outputs: each official file under the same name in the variant's `folder`, those in `keep`
    (a cache the variant shares with the run) left where they are."""
    return {role: path if role in keep else folder / path.name for role, path in outputs.items()}


def variants_of(folder: Path) -> list[Path]:
    """The variant folders under a round or run folder, by name (none when it has no variants/ folder)."""
    root = folder / VARIANTS_DIR
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir() if path.is_dir())

"""Allowed values of CLI options, read from the config schema (and the synthesiser), so --help lists
exactly what the config accepts and typer refuses anything else before a stage starts."""

from __future__ import annotations

from typing import Literal, get_type_hints

from stages.config import AuxConfig, DataConfig, ModelConfig

DatasetName = get_type_hints(DataConfig)["dataset"]
Arch = get_type_hints(ModelConfig)["arch"]
StsSource = get_type_hints(AuxConfig)["sts_source"]
#: Feature extraction modes (stages.extract): a random run of frames, or every frame.
ExtractMode = Literal["cluster", "infer"]

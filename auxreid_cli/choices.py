"""Allowed values of CLI options, read from the config schema (and the synthesiser), so --help lists
exactly what the config accepts and typer refuses anything else before a stage starts."""

from __future__ import annotations

from typing import Literal, get_type_hints

from stages.config import AuxConfig, DataConfig, ModelConfig

DatasetName = get_type_hints(DataConfig)["dataset"]
Arch = get_type_hints(ModelConfig)["arch"]
StsSource = get_type_hints(AuxConfig)["sts_source"]
#: How --help shows a device option (a free form, checked against the config's device rule).
DEVICE_METAVAR = "auto|cpu|cuda|cuda:N"
#: Feature extraction modes (stages.extract): a random run of frames, or every frame.
ExtractMode = Literal["cluster", "infer"]


def fixed_value_keys() -> str:
    """The config keys with a fixed set of values and those values (the devices by their forms), for --help."""
    import dataclasses
    import typing

    from stages.config import Config

    entries = []
    for section in dataclasses.fields(Config):
        section_type = get_type_hints(Config)[section.name]
        if not dataclasses.is_dataclass(section_type):
            continue
        for name, hint in get_type_hints(section_type).items():
            if typing.get_origin(hint) is Literal:
                entries.append(f"{section.name}.{name}: {'|'.join(typing.get_args(hint))}")
            elif name == "device":
                entries.append(f"{section.name}.{name}: auto|cpu|cuda|cuda:N")
    return "; ".join(entries)

"""`auxreid mine-aux`: cameras, time spans, TOC pairs and the STS transit model of a dataset -> aux.h5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DatasetName, StsSource
from auxreid_cli.common import RichProgress, SetOption, console, errors_to_exit, print_sections
from auxreid_cli.modes import explicit_config, run_mode
from stages.errors import AuxReidError


def _overrides(set_: list[str] | None, dataset: str | None, root: str | None, sts_source: str | None) -> list[str]:
    """The options as `--set` assignments (JSON-quoted so YAML reads them as strings), after --set."""
    extra = list(set_ or [])
    for key, value in (("data.dataset", dataset), ("data.root", root), ("aux.sts_source", sts_source)):
        if value is not None:
            extra.append(f"{key}={json.dumps(value)}")
    return extra


def _mine_aux(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path: reads RUN/config.yaml, writes RUN/aux.h5.")] = None,
    dataset: Annotated[Optional[DatasetName], typer.Option("--dataset", help="The dataset (without RUN).")] = None,
    root: Annotated[Optional[str], typer.Option("--root", help="Dataset folder (default: its home, e.g. data/DukeMTMC-VideoReID under $AUXREID_DATA or ./data; manifest: the CSV/JSONL file).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="aux.h5 to write (without RUN; default: artifacts/DATASET/aux.h5 under $AUXREID_ARTIFACTS).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (without RUN; default: paper settings).")] = None,
    sts_source: Annotated[Optional[StsSource], typer.Option("--sts-source", help="Confident pairs for STS from appearance, clusters or oracle (ground-truth ids, ablations only).")] = None,
    features: Annotated[Optional[Path], typer.Option("--features", help="features.h5 of any round (appearance / clusters sources).")] = None,
    clusters: Annotated[Optional[Path], typer.Option("--clusters", help="clusters.h5 of the features' round (clusters source).")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="With RUN and neither --features nor --clusters: estimate STS from this round's features (and clusters); default 1.")] = None,
    set_: SetOption = None,
) -> None:
    """Mine TOC cannot-links, query x gallery overlaps, cameras (SCP) and the STS transit model.

    With RUN and neither --features nor --clusters, the STS source's inputs come from the run: round 1's
    features (aux.sts_source=appearance), or round R's features and clusters (clusters, --round R).

    Examples: auxreid mine-aux demo --features artifacts/demo/round_001/features.h5;
    auxreid mine-aux --dataset duke (reads data/DukeMTMC-VideoReID, writes artifacts/duke/aux.h5)
    """
    from stages.artifacts.h5 import read_artifact
    from stages.artifacts.schemas import AUX
    from stages.mine_aux import run_mine_aux
    from stages.views.summaries import summarize_aux as summarize

    overrides = _overrides(set_, dataset, root, sts_source)
    if run is not None:
        if out is not None or config is not None or dataset is not None or root is not None:
            raise AuxReidError(
                "give either RUN (its config.yaml says the dataset; writes RUN/aux.h5) or --dataset/--root/--out, "
                "not both; use --set to override the run's settings"
            )
        _, resolved, io = run_mode(run, "mine-aux", round_, overrides)
        output = io.outputs["aux"]
        if features is None and clusters is None:
            features, clusters = io.input("features"), io.input("clusters")
    else:
        if dataset is None:
            raise AuxReidError("give a run (auxreid mine-aux RUN) or --dataset NAME (--root DIR and --out FILE.h5 "
                               "have defaults: the dataset's home and artifacts/NAME/aux.h5)")
        if round_ is not None:
            raise AuxReidError("--round goes with RUN: it picks the run's features (and clusters) of that round")
        from stages.rundir import artifacts_root

        resolved = explicit_config(overrides, config=config, defaults=True)
        output = out if out is not None else artifacts_root() / dataset / "aux.h5"
    with RichProgress() as progress:
        written = run_mine_aux(resolved, output=output, features=features, clusters=clusters, progress=progress)
    console.print(f"[green]wrote[/] {written}")
    print_sections(summarize(read_artifact(written, AUX)))


def register(app: typer.Typer) -> None:
    app.command("mine-aux")(errors_to_exit(_mine_aux))

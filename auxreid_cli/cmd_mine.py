"""`auxreid mine-aux`: cameras, time spans, TOC pairs and the STS transit model of a dataset -> aux.h5."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DatasetName, StsSource
from auxreid_cli.common import (
    ForceOption,
    RichProgress,
    SetOption,
    announce_variant,
    console,
    errors_to_exit,
    print_sections,
)


def _mine_aux(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path: reads RUN/config.yaml, writes RUN/aux.h5.")] = None,
    dataset: Annotated[Optional[DatasetName], typer.Option("--dataset", help="The dataset (without RUN).")] = None,
    root: Annotated[Optional[str], typer.Option("--root", help="Dataset folder (default: its home, e.g. data/DukeMTMC-VideoReID under $AUXREID_DATA or ./data; manifest: the CSV/JSONL file).")] = None,
    manifest: Annotated[Optional[Path], typer.Option("--manifest", help="The .csv or .jsonl manifest (--dataset manifest).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="aux.h5 to write (without RUN; default: artifacts/DATASET/aux.h5 under $AUXREID_ARTIFACTS).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (without RUN; default: paper settings).")] = None,
    sts_source: Annotated[Optional[StsSource], typer.Option("--sts-source", help="Confident pairs for STS from appearance, clusters or oracle (ground-truth ids, ablations only).")] = None,
    features: Annotated[Optional[Path], typer.Option("--features", help="features.h5 of any round (appearance / clusters sources).")] = None,
    clusters: Annotated[Optional[Path], typer.Option("--clusters", help="clusters.h5 of the features' round (clusters source).")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="With RUN and neither --features nor --clusters: estimate STS from this round's features (and clusters); default 1.")] = None,
    force: ForceOption = False,
    set_: SetOption = None,
) -> None:
    """Mine TOC cannot-links, query x gallery overlaps, cameras (SCP) and the STS transit model.

    With RUN and neither --features nor --clusters, the STS source's inputs come from the run: round 1's
    features (aux.sts_source=appearance), or round R's features and clusters (clusters, --round R).

    Examples: auxreid mine-aux demo --features artifacts/demo/round_001/features.h5;
    auxreid mine-aux --dataset duke (reads data/DukeMTMC-VideoReID, writes artifacts/duke/aux.h5);
    auxreid mine-aux --dataset manifest --manifest cams.csv (writes artifacts/manifest/aux.h5)
    """
    from stages.artifacts.h5 import read_artifact
    from stages.artifacts.schemas import AUX
    from stages.data import check_manifest, manifest_override
    from stages.mine_aux import run_mine_aux
    from stages.resolve import resolve
    from stages.views.summaries import summarize_aux as summarize

    overrides = [*(set_ or []), *manifest_override(manifest, run=run)]
    resolved, io = resolve("mine-aux", run=run, round=round_, overrides=overrides, given={
        "features": features, "clusters": clusters, "out": out, "config_file": config}, options={
        "dataset": dataset, "root": root, "sts_source": sts_source, "force": force})
    if run is None:
        check_manifest(resolved.data, manifest)
    with RichProgress() as progress:
        [written] = run_mine_aux(resolved, io, progress=progress)
    console.print(f"[green]wrote[/] {written}")
    print_sections(summarize(read_artifact(written, AUX)))
    announce_variant(io)


def register(app: typer.Typer) -> None:
    app.command("mine-aux")(errors_to_exit(_mine_aux))

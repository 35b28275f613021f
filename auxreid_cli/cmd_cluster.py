"""`auxreid cluster`: pseudo labels of a run's round, or of any features.h5."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DEVICE_METAVAR
from auxreid_cli.common import (
    ForceOption,
    RichProgress,
    SetOption,
    announce_variant,
    console,
    errors_to_exit,
    print_sections,
)


def _cluster(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path; with --round, clusters that round.")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="Round R (>= 1): clusters round R's features.")] = None,
    features: Annotated[Optional[Path], typer.Option("--features", help="Explicit features.h5 (cluster mode, train split).")] = None,
    aux: Annotated[Optional[Path], typer.Option("--aux", help="aux.h5 for TOC / STS / violation counts (explicit mode).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="clusters.h5 to write (explicit mode).")] = None,
    eps_from: Annotated[Optional[Path], typer.Option("--eps-from", help="Read the adaptive eps back from this clusters.h5 (explicit mode).")] = None,
    previous: Annotated[Optional[Path], typer.Option("--previous", help="Previous round's clusters.h5 for cluster.sts_reestimate (explicit mode).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (explicit mode without RUN; default: the features' own config).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", metavar=DEVICE_METAVAR, help="Where the kNN search runs: auto (CUDA when present), cpu, cuda or cuda:N; default cluster.device.")] = None,
    force: ForceOption = False,
    set_: SetOption = None,
) -> None:
    """Cluster train features into pseudo labels: Jaccard distance, SCP/STS, eps, (cannot-link) DBSCAN.

    Over several processes or machines: torchrun --nproc_per_node R -m auxreid_cli.main cluster ... (each rank
    computes a slice of the kNN lists and Jaccard rows; rank 0 writes).

    Examples: auxreid cluster demo --round 1;
    auxreid cluster --features F.h5 --aux aux.h5 --out C.h5 --set cluster.eps_mode=fixed --set cluster.eps=0.5
    """
    from stages.artifacts.readers import read_clusters
    from stages.cluster import run_cluster
    from stages.resolve import resolve
    from stages.runtime import distributed_from_env
    from stages.views.summaries import summarize_clusters as summarize

    resolved, io = resolve("cluster", run=run, round=round_, overrides=set_, options={"device": device, "force": force}, given={
        "features": features, "aux": aux, "out": out, "eps_from": eps_from, "previous_clusters": previous,
        "config_file": config})
    with RichProgress() as progress:
        [written] = run_cluster(resolved, io, progress=progress)
    if not distributed_from_env().is_main:
        return
    artifact = read_clusters(written)
    console.print(f"[green]wrote[/] {written} (round {artifact.provenance.round})")
    print_sections(summarize(artifact))
    announce_variant(io)


def register(app: typer.Typer) -> None:
    app.command("cluster")(errors_to_exit(_cluster))

"""`auxreid cluster`: pseudo labels of a run's round, or of any features.h5."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DEVICE_METAVAR
from auxreid_cli.common import RichProgress, SetOption, console, errors_to_exit, print_sections
from auxreid_cli.modes import explicit_config, run_mode
from stages.errors import AuxReidError


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
    set_: SetOption = None,
) -> None:
    """Cluster train features into pseudo labels: Jaccard distance, SCP/STS, eps, (cannot-link) DBSCAN.

    Examples: auxreid cluster demo --round 1;
    auxreid cluster --features F.h5 --aux aux.h5 --out C.h5 --set cluster.eps_mode=fixed --set cluster.eps=0.5
    """
    from stages.artifacts.h5 import read_provenance
    from stages.artifacts.readers import read_clusters
    from stages.cluster import run_cluster
    from stages.views.summaries import summarize_clusters as summarize

    if features is None:
        if run is None or round_ is None:
            raise AuxReidError("give RUN --round R, or --features F.h5 --out C.h5 (see `auxreid cluster --help`)")
        _, resolved, io = run_mode(run, "cluster", round_, set_)
        features, aux, out = io.input("features"), io.input("aux"), io.outputs["clusters"]
        eps_from, previous = io.input("eps_from"), io.input("previous_clusters")
    else:
        if out is None:
            raise AuxReidError("--features needs --out C.h5 to say where to write the clusters")
        resolved = explicit_config(set_, run=run, config=config, sources=[features])
        if round_ is None:
            round_ = read_provenance(features)[0].round
    with RichProgress() as progress:
        written = run_cluster(resolved, features_path=features, aux_path=aux, out_path=out, round=round_,
                              eps_from=eps_from, previous_clusters=previous, device=device, progress=progress)
    artifact = read_clusters(written)
    console.print(f"[green]wrote[/] {written} (round {artifact.provenance.round})")
    print_sections(summarize(artifact))


def register(app: typer.Typer) -> None:
    app.command("cluster")(errors_to_exit(_cluster))

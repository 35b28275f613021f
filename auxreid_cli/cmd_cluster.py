"""`auxreid cluster`: pseudo labels of a run's round, or of any features.h5."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml

from auxreid_cli.common import RichProgress, SetOption, console, err_console, errors_to_exit, print_sections
from stages.artifacts.h5 import read_artifact, read_provenance
from stages.config import build_config, load_config, parse_set
from stages.errors import AuxReidError
from stages.artifacts.rundir import RunDir, load_run_config
from stages.artifacts.schemas import CLUSTERS


def _run_paths(run: str, round_: int, overrides: list[str] | None):
    """Config and paths of `auxreid cluster RUN --round R`."""
    if round_ < 1:
        raise AuxReidError(f"--round must be >= 1, got {round_} (round R clusters the features extracted with round R-1's model)")
    run_dir = RunDir.resolve(run)
    config = load_run_config(run_dir, overrides)
    features = run_dir.features(round_)
    if not features.is_file():
        raise AuxReidError(f"{features} does not exist; run `auxreid extract {run} --round {round_}` first")
    needs = [key for key, on in (("cluster.toc", config.cluster.toc), ("cluster.sts", config.cluster.sts)) if on]
    if needs and not run_dir.aux.is_file():
        raise AuxReidError(
            f"{run_dir.aux} does not exist but {' and '.join(needs)} {'needs' if len(needs) == 1 else 'need'} it; run `auxreid mine-aux {run}` first "
            "or set " + " ".join(f"{key}=false" for key in needs)
        )
    aux = run_dir.aux if run_dir.aux.is_file() else None
    eps_from = run_dir.clusters(1) if round_ > 1 and config.cluster.eps_mode == "adaptive" else None
    if eps_from is not None and not eps_from.is_file():
        raise AuxReidError(
            f"{eps_from} does not exist; adaptive eps is computed at round 1 and reused, so run "
            f"`auxreid cluster {run} --round 1` first"
        )
    previous = run_dir.clusters(round_ - 1) if round_ > 1 and config.cluster.sts_reestimate else None
    return config, features, aux, run_dir.clusters(round_), eps_from, previous


def _explicit_config(features: Path, config: Path | None, overrides: list[str] | None):
    """The YAML given, else the config that produced the features, with --set on top."""
    if config is not None:
        return load_config(config, overrides)
    provenance, _ = read_provenance(features)
    if not provenance.config_yaml:
        raise AuxReidError(f"{features} carries no config; pass --config CONFIG.yaml")
    return build_config((yaml.safe_load(provenance.config_yaml), f"{features} config"), (parse_set(overrides), "--set"))


def _cluster(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path; with --round, clusters that round.")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="Round R (>= 1): clusters round R's features.")] = None,
    features: Annotated[Optional[Path], typer.Option("--features", help="Explicit features.h5 (cluster mode, train split).")] = None,
    aux: Annotated[Optional[Path], typer.Option("--aux", help="aux.h5 for TOC / STS / violation counts (explicit mode).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="clusters.h5 to write (explicit mode).")] = None,
    eps_from: Annotated[Optional[Path], typer.Option("--eps-from", help="Read the adaptive eps back from this clusters.h5 (explicit mode).")] = None,
    previous: Annotated[Optional[Path], typer.Option("--previous", help="Previous round's clusters.h5 for cluster.sts_reestimate (explicit mode).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (explicit mode without RUN; default: the features' own config).")] = None,
    set_: SetOption = None,
) -> None:
    """Cluster train features into pseudo labels: Jaccard distance, SCP/STS, eps, (cannot-link) DBSCAN.

    Examples: auxreid cluster demo --round 1;
    auxreid cluster --features F.h5 --aux aux.h5 --out C.h5 --set cluster.eps_mode=fixed --set cluster.eps=0.5
    """
    from stages.cluster import run_cluster, zero_cluster_message
    from stages.views.summaries import summarize_clusters as summarize

    if features is None:
        if run is None or round_ is None:
            raise AuxReidError("give RUN --round R, or --features F.h5 --out C.h5 (see `auxreid cluster --help`)")
        resolved, features, aux, out, eps_from, previous = _run_paths(run, round_, set_)
    else:
        if out is None:
            raise AuxReidError("--features needs --out C.h5 to say where to write the clusters")
        resolved = (load_run_config(RunDir.resolve(run), set_) if run is not None
                    else _explicit_config(features, config, set_))
        if round_ is None:
            round_ = read_provenance(features)[0].round
    with RichProgress() as progress:
        written = run_cluster(resolved, features_path=features, aux_path=aux, out_path=out, round=round_,
                              eps_from=eps_from, previous_clusters=previous, progress=progress)
    artifact = read_artifact(written, CLUSTERS)
    console.print(f"[green]wrote[/] {written} (round {artifact.provenance.round})")
    print_sections(summarize(artifact))
    if int(artifact.attrs["num_clusters"]) == 0:
        err_console.print(f"[bold yellow]warning:[/] {zero_cluster_message(written, float(artifact.attrs['eps']))}",
                          highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("cluster")(errors_to_exit(_cluster))

"""`auxreid init` and `auxreid inspect`: run directories and a look inside any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from auxreid_cli.common import SetOption, console, errors_to_exit, print_sections
from stages.config import load_config

if TYPE_CHECKING:  # the stage modules read HDF5 files: imported when a command needs them
    from stages.inspect_artifact import InspectResult
    from stages.run_sync import Sync
    from stages.rundir import RunDir


def _init(
    run: Annotated[str, typer.Argument(help="Run name (created under artifacts/) or a path.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file overriding the paper defaults.")],
    set_: SetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing run's config.")] = False,
    sync: Annotated[bool, typer.Option("--sync", help="Create the run, or bring an existing one in line with --config and --set (make round's call): re-initialise when they give other settings, refuse when config.yaml was edited by hand since.")] = False,
    manifest: Annotated[Optional[Path], typer.Option("--manifest", help="The .csv or .jsonl manifest of a config with data.dataset manifest (sets data.manifest).")] = None,
) -> None:
    """Create a run directory with its frozen, fully resolved config.

    Example: auxreid init demo --config configs/synth.yaml --set data.root=data/synth;
    auxreid init cams --config configs/manifest.yaml --manifest cams.csv
    """
    from stages.data import check_manifest, manifest_override
    from stages.run_sync import describe_changes, plan_sync, request_digest
    from stages.rundir import RunDir

    overrides = [*(set_ or []), *manifest_override(manifest)]
    resolved = load_config(config, overrides)
    check_manifest(resolved.data, manifest, config=config)
    run_dir = RunDir.resolve(run)
    request = request_digest(config, overrides)
    if sync and not force:
        plan = plan_sync(run_dir, resolved, config_file=config, request=request)
        if plan.action in ("current", "record"):
            _keep(run_dir, plan, request)
            return
        if plan.action == "update":
            console.print(f"[yellow]re-initialising[/] {run_dir.name}: "
                          + describe_changes(plan.changes, before="in config.yaml", after=f"from {config}")
                          + "; what was made with the old settings is stale now (`auxreid status` lists it)",
                          highlight=False, soft_wrap=True)
        force = True
    from stages.init_run import run_init

    written = run_init(run_dir, resolved, force=force, request=request)
    console.print(f"[green]created[/] {written[0]}")
    for extra in written[1:]:
        console.print(f"[green]wrote[/] {extra}")


def _keep(run_dir: RunDir, plan: Sync, request: str) -> None:
    """`init --sync` with nothing to change: the record follows the request; a deleted round_000/model.pt is
    written again from config.yaml as it stands (torch is imported only then)."""
    from stages.run_sync import write_init_record

    if plan.action == "record":
        write_init_record(run_dir, request, run_dir.config_path.read_text(encoding="utf-8"))
    console.print(f"{run_dir.config_path} is up to date", highlight=False)
    if not run_dir.model(0).is_file():
        from stages.init_run import restore_initial_model

        console.print(f"[green]wrote[/] {restore_initial_model(run_dir, plan.config)}")


def _draw(result: InspectResult) -> Path:
    """Draw the picture `inspect_file` checked (its modules load matplotlib or PIL, so only when asked)."""
    drawing, artifact = result.drawing, result.artifact
    if drawing.option == "--plot":
        from stages.views.transit_plot import plot_transit

        return plot_transit(artifact, drawing.out)
    if drawing.option == "--montage":
        from stages.views.montage import montage

        return montage(artifact, drawing.cluster, drawing.out)
    from stages.views.ranklist import ranklist

    return ranklist(artifact, drawing.out, queries=drawing.queries, count=drawing.count)


def _inspect(
    path: Annotated[Path, typer.Argument(help="Any auxreid artifact (.h5), a model.pt or a config .yaml.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="aux.h5: draw the transit-time histograms to this PNG.")] = None,
    montage: Annotated[Optional[int], typer.Option("--montage", help="clusters.h5: draw this cluster's tracklets.")] = None,
    ranklist: Annotated[Optional[str], typer.Option("--ranklist", metavar="worst|Q[,Q...]", help="eval.h5: draw queries with their top-10 gallery: the --count worst-AP ones (worst) or these query rows.")] = None,
    count: Annotated[Optional[int], typer.Option("--count", help="--ranklist worst: how many queries, worst first (default 6).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG written by --montage / --ranklist.")] = None,
) -> None:
    """Print an artifact's provenance, datasets, shapes and summary statistics (also model.pt and config YAML).

    Example: auxreid inspect artifacts/demo/round_001/clusters.h5 --montage 3 --out cluster3.png
    """
    from stages.inspect_artifact import DATASET_COLUMNS, inspect_file

    result = inspect_file(path, plot=plot, montage=montage, ranklist=ranklist, count=count, out=out)
    if result.note:
        console.print(result.note)
    print_sections([result.provenance] if result.provenance is not None else [])
    if result.kind == "hdf5":
        datasets = Table(*DATASET_COLUMNS, title="datasets")
        for row in result.datasets:
            datasets.add_row(*row)
        console.print(datasets)
    print_sections(result.sections)
    if result.drawing is not None:
        console.print(f"[green]wrote[/] {_draw(result)}")


def register(app: typer.Typer) -> None:
    from auxreid_cli.choices import fixed_value_keys

    app.command("init", epilog=f"Keys with a fixed set of values: {fixed_value_keys()}.")(errors_to_exit(_init))
    app.command("inspect")(errors_to_exit(_inspect))

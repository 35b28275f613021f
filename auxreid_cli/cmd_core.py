"""`auxreid init` and `auxreid inspect`: run directories and a look inside any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from auxreid_cli.common import SetOption, console, errors_to_exit, print_sections
from stages.config import load_config

if TYPE_CHECKING:  # the stage module reads HDF5 files: imported when a command needs it
    from stages.inspect_artifact import InspectResult


def _init(
    run: Annotated[str, typer.Argument(help="Run name (created under artifacts/) or a path.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file overriding the paper defaults.")],
    set_: SetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing run's config.")] = False,
) -> None:
    """Create a run directory with its frozen, fully resolved config.

    Example: auxreid init demo --config configs/synth.yaml --set data.root=data/synth
    """
    from stages.init_run import run_init
    from stages.rundir import RunDir

    resolved = load_config(config, set_)
    written = run_init(RunDir.resolve(run), resolved, force=force)
    console.print(f"[green]created[/] {written[0]}")
    for extra in written[1:]:
        console.print(f"[green]wrote[/] {extra}")


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

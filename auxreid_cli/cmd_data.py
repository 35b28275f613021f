"""`auxreid datasets show`: load a dataset from disk and print its per-split statistics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from auxreid_cli.choices import DatasetName
from auxreid_cli.common import console, errors_to_exit

if TYPE_CHECKING:
    from stages.data.base import DatasetSplit


def _show(
    dataset: Annotated[DatasetName, typer.Option("--dataset", "-d", help="The dataset.")],
    root: Annotated[Optional[Path], typer.Option("--root", help="Dataset folder (default: its home, e.g. data/DukeMTMC-VideoReID under $AUXREID_DATA or ./data; not needed for --dataset manifest).")] = None,
    dense_step: Annotated[
        int, typer.Option("--dense-step", min=0, help="Cut train tracklets into pieces of N frames (duke, synth); 0 keeps them whole.")
    ] = 0,
    manifest: Annotated[Optional[Path], typer.Option("--manifest", help="The .csv or .jsonl manifest (--dataset manifest).")] = None,
) -> None:
    """Load a dataset and print ids, tracklets, frames, cameras and frames per tracklet of each split.

    Example: auxreid datasets show --dataset duke --dense-step 40 (reads data/DukeMTMC-VideoReID)
    """
    from stages.data.stats import load_to_show

    loaded, seconds = load_to_show(dataset, root=root, manifest=manifest, dense_step=dense_step)
    _print_dataset(loaded, seconds)


def _print_dataset(loaded: DatasetSplit, seconds: float) -> None:
    from stages.data.stats import split_stats
    from stages.views.labels import format_span, is_epoch

    rows = split_stats(loaded)
    epoch = any(row.start is not None and is_epoch(row.start) for row in rows)
    table = Table(title=f"{loaded.name} ({loaded.root})", caption="min / mean / max: frames per tracklet")
    for column in ("split", "ids", "tracklets", "frames", "cams", "min", "mean", "max", "time (UTC)" if epoch else "seconds"):
        table.add_column(column, justify="left" if column == "split" else "right", no_wrap=True)
    for row in rows:
        span = "-" if row.start is None else format_span(row.start, row.end) if epoch else f"{row.start:.0f}-{row.end:.0f}"
        table.add_row(
            row.split, f"{row.ids:,}", f"{row.tracklets:,}", f"{row.frames:,}", str(row.cameras),
            str(row.min_frames), f"{row.mean_frames:.1f}", str(row.max_frames), span,
        )
    console.print(table)
    fps = f", {loaded.fps:g} fps" if loaded.fps else ""
    console.print(f"timestamps: {'known' if loaded.has_times else 'not known'}{fps}; cameras: {loaded.num_cameras}")
    console.print(f"camera labels (index order): {', '.join(loaded.camera_labels)}")
    console.print(f"fingerprint: {loaded.fingerprint}; loaded in {seconds:.2f} s")


def register(app: typer.Typer) -> None:
    datasets = typer.Typer(help="Look at datasets before running the pipeline on them.", no_args_is_help=True)
    datasets.command("show")(errors_to_exit(_show))
    app.add_typer(datasets, name="datasets")

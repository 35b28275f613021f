"""`auxreid export`: a round's pseudo labels and features as CSV, npz and a torchreid-style image list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from auxreid_cli.common import ForceOption, RichProgress, console, errors_to_exit

#: How frame paths are written in the image list (stages.export.PATH_STYLES).
PathStyle = Literal["relative", "absolute"]


def _export(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path; with --round, exports that round.")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="Round R (>= 1): exports round R's clusters.h5.")] = None,
    clusters: Annotated[Optional[Path], typer.Option("--clusters", help="Explicit clusters.h5 (instead of RUN --round R).")] = None,
    features: Annotated[Optional[Path], typer.Option("--features", help="Train features.h5 to export; default the one the clusters were made from.")] = None,
    no_features: Annotated[bool, typer.Option("--no-features", help="Export the labels without features.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder to write into; default RUN/round_00R/export (RUN --round R).")] = None,
    format_: Annotated[str, typer.Option("--format", metavar="csv,npz,list", help="Files to write, comma-separated: csv (pseudo_labels.csv), npz (pseudo_labels.npz), list (train_list.txt).")] = "csv,npz,list",
    paths: Annotated[PathStyle, typer.Option("--paths", help="Image-list paths relative to the dataset root, or absolute (joined with the root recorded at extraction, or --root).")] = "relative",
    root: Annotated[Optional[Path], typer.Option("--root", help="Dataset root to join the image-list paths with (implies --paths absolute).")] = None,
    include_noise: Annotated[bool, typer.Option("--include-noise", help="Also list the frames of noise tracklets (pseudo id -1) in train_list.txt.")] = False,
    force: ForceOption = False,
) -> None:
    """Write pseudo labels (noise -1), tracklet names, cameras and features for other tools.

    pseudo_labels.csv / .npz: one row per train tracklet, its camera as index and label; train_list.txt: one `path pseudo_id camera` line per frame, noise left out unless --include-noise.

    Examples: auxreid export demo --round 3;
    auxreid export --clusters C.h5 --out pseudo/ --format list --paths absolute
    """
    from stages.export import parse_formats, run_export
    from stages.resolve import resolve

    resolved, io = resolve("export", run=run, round=round_, given={"clusters": clusters, "features": features, "out": out},
                           options={"formats": parse_formats(format_), "no_features": no_features, "paths": paths,
                                    "root": root, "include_noise": include_noise, "force": force})
    with RichProgress() as progress:
        written = run_export(resolved, io, progress=progress)
    for path in written:
        console.print(f"[green]wrote[/] {path}")


def register(app: typer.Typer) -> None:
    app.command("export")(errors_to_exit(_export))

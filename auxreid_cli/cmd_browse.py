"""`auxreid browse`: a run's clustering rounds as a static web site to open in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.common import RichProgress, console, errors_to_exit


def _browse(
    run: Annotated[str, typer.Argument(help="Run name or path.")],
    rounds: Annotated[Optional[str], typer.Option("--rounds", metavar="R,R", help="Rounds to show, e.g. 1,3,5; default every round with clusters.h5 or eval.h5.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder to write the site into; default RUN/browse (replaced only if `auxreid browse` wrote it).")] = None,
) -> None:
    """Write a static web site of every clustering round: clusters, noise, tracklets and their neighbours, rank lists.

    It opens from disk in any browser (no server, no network): open OUT/index.html. Example: auxreid browse demo --rounds 1,3
    """
    from stages.browse import run_browse

    with RichProgress() as progress:
        site = run_browse(run, rounds=rounds, out=out, progress=progress)
    console.print(f"[green]wrote[/] {site.path / 'index.html'} ({len(site.rounds)} round{'s' if len(site.rounds) != 1 else ''}, "
                  f"{site.files} files, {site.bytes / 1e6:.1f} MB ({site.disk / 1e6:.1f} MB on disk), {site.thumbnails} thumbnails of which {site.made} new)",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("browse")(errors_to_exit(_browse))

"""`auxreid synth`: generate the synthetic camera network (the embedded default dataset)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.table import Table

from auxreid_cli.common import RichProgress, console, errors_to_exit
from stages.data.synth.world import LAYOUTS, SynthSpec, parse_frames, parse_size

_DEFAULT = SynthSpec()


def _synth(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Dataset folder to create (default: synth under $AUXREID_DATA, else data/synth).")] = None,
    layout: Annotated[Literal[LAYOUTS], typer.Option("--layout", help="On-disk layout, as DukeMTMC-VideoReID or MARS.")] = "duke",
    seed: Annotated[int, typer.Option("--seed", help="Fixes everything: the same seed writes identical files.")] = 0,
    ids: Annotated[int, typer.Option("--ids", help="Training identities.")] = _DEFAULT.ids,
    test_ids: Annotated[int, typer.Option("--test-ids", help="Test identities (one query tracklet each).")] = _DEFAULT.test_ids,
    distractors: Annotated[
        int, typer.Option("--distractors", help="Gallery-only identities (MARS layout: person id 0).")
    ] = _DEFAULT.distractors,
    cams: Annotated[int, typer.Option("--cams", help="Cameras in the network (2..9).")] = _DEFAULT.cams,
    size: Annotated[str, typer.Option("--size", help="Crop size HEIGHTxWIDTH.")] = f"{_DEFAULT.height}x{_DEFAULT.width}",
    tracklets_per_id: Annotated[
        int, typer.Option("--tracklets-per-id", help="Mean tracklets per identity (each varies by up to 2).")
    ] = _DEFAULT.tracklets_per_id,
    frames: Annotated[
        str, typer.Option("--frames", help="Frames per tracklet, MIN-MAX.")
    ] = f"{_DEFAULT.min_frames}-{_DEFAULT.max_frames}",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing synthetic dataset at --out.")] = False,
) -> None:
    """Simulate people walking through a camera network and write their tracklets as Duke or MARS.

    Example: auxreid synth --out data/synth --layout duke --seed 0
    """
    from stages.data import data_home
    from stages.synth import run_synth

    out = out if out is not None else data_home() / "synth"
    height, width = parse_size(size)
    min_frames, max_frames = parse_frames(frames)
    began = time.perf_counter()
    with RichProgress() as progress:
        root = run_synth(
            out, layout=layout, seed=seed, force=force, progress=progress, ids=ids, test_ids=test_ids,
            distractors=distractors, cams=cams, height=height, width=width, tracklets_per_id=tracklets_per_id,
            min_frames=min_frames, max_frames=max_frames,
        )
    _print_network(root, layout, time.perf_counter() - began)


def _print_network(root: Path, layout: str, seconds: float) -> None:
    """The network's splits, cameras and overlaps, as synth.json records them."""
    info = json.loads((root / "synth.json").read_text())
    table = Table(title=f"synthetic camera network, {layout} layout ({root})")
    for column in ("split", "ids", "tracklets", "frames"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in ("train", "query", "gallery"):
        row = info["counts"][split]
        table.add_row(split, f"{row['ids']:,}", f"{row['tracklets']:,}", f"{row['frames']:,}")
    console.print(table)
    means = [edge["mean_s"] for edge in info["transit"].values()]
    console.print(
        f"{info['cams']} cameras, {len(info['graph_edges'])} camera links (transit {min(means):.0f}-{max(means):.0f} s), "
        f"{info['fps']} fps, a frame every {info['frame_step']} video frames"
    )
    toc = info["toc"]
    console.print(f"same-camera overlaps (TOC): {toc['train_pairs']} train pairs, {toc['query_gallery_pairs']} query-gallery pairs")
    console.print(f"[green]wrote[/] {root} in {seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("synth")(errors_to_exit(_synth))

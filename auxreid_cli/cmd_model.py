"""`auxreid import-weights`: the paper authors' released checkpoint as an auxreid model.pt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auxreid_cli.choices import Arch
from auxreid_cli.common import console, errors_to_exit


def _import_weights(
    checkpoint: Annotated[Path, typer.Argument(help="The reference's checkpoint (.pth / .pth.tar).")],
    out: Annotated[Path, typer.Option("--out", help="model.pt to write.")],
    arch: Annotated[Arch, typer.Option("--arch", help="Backbone of the checkpoint.")] = "resnet50",
    last_stride: Annotated[int, typer.Option("--last-stride", help="layer4 stride the checkpoint was trained with (1 or 2).")] = 2,
) -> None:
    """Convert a released reference checkpoint (state_dict = teacher, student_dict, epoch, best_mAP).

    Example: auxreid import-weights duke_best.pth.tar --out artifacts/duke_ref/model.pt
    """
    from stages.artifacts.model_file import read_model_file
    from stages.import_weights import run_import_weights

    written = run_import_weights(checkpoint, out_path=out, arch=arch, last_stride=last_stride)
    model = read_model_file(written)
    source = model.entries.get("imported_from", {})
    details = ", ".join(f"{k} {v}" for k, v in source.items() if k != "file")
    console.print(
        f"[green]wrote[/] {written}: {model.entries['arch']}, {model.num_classes} classifier outputs"
        + (f", {details}" if details else "")
    )


def register(app: typer.Typer) -> None:
    app.command("import-weights")(errors_to_exit(_import_weights))

"""`auxreid train-round`: mean-teacher training of one round on its pseudo labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DEVICE_METAVAR
from auxreid_cli.common import ForceOption, RichProgress, SetOption, announce_variant, console, errors_to_exit


def _train_round(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path; with --round, trains that round.")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="Round R (>= 1): round R's clusters, round R-1's model.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted round from its last checkpoint.")] = False,
    device: Annotated[Optional[str], typer.Option("--device", metavar=DEVICE_METAVAR, help="auto (CUDA when present), cpu, cuda or cuda:N.")] = None,
    clusters: Annotated[Optional[Path], typer.Option("--clusters", help="Explicit clusters.h5 (pseudo labels).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Explicit model.pt of the previous round.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="model.pt to write (explicit mode).")] = None,
    metrics: Annotated[Optional[Path], typer.Option("--metrics", help="metrics.jsonl to append to (explicit mode; a run uses RUN/metrics.jsonl).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (explicit mode without RUN; default: the model's own config).")] = None,
    force: ForceOption = False,
    set_: SetOption = None,
) -> None:
    """Train one round: P x K batches of pseudo identities, RLSCE/LSCE/CE + WATL/soft triplet, EMA teacher.

    Multi-GPU: torchrun --nproc_per_node 4 -m auxreid_cli.main train-round RUN --round R.

    Examples: auxreid train-round demo --round 1;
    auxreid train-round --clusters C.h5 --model round_000/model.pt --out round_001/model.pt
    """
    from stages.resolve import resolve
    from stages.runtime import distributed_from_env
    from stages.train_round import run_train_round

    resolved, io = resolve("train-round", run=run, round=round_, overrides=set_, given={
        "clusters": clusters, "model": model, "out": out, "metrics": metrics, "config_file": config}, options={
        "resume": resume, "device": device, "force": force})
    with RichProgress() as progress:
        [written] = run_train_round(resolved, io, progress=progress)
    if distributed_from_env().is_main:
        _print_model(written)
        announce_variant(io)


def _print_model(written: Path) -> None:
    from stages.artifacts.model_file import read_model_file

    entries = read_model_file(written, mmap=True).entries
    losses = entries.get("mean_losses", {})
    iterations, clusters = entries.get("iterations", "?"), entries.get("num_clusters", "?")
    console.print(
        f"[green]wrote[/] {written} (round {entries['round']}, step {entries['step']}, "
        f"{iterations} iteration{'' if iterations == 1 else 's'} on {clusters} cluster{'' if clusters == 1 else 's'}; "
        "mean losses "
        + ", ".join(f"{k} {float(v):.3f}" for k, v in losses.items()) + ")"
    )


def register(app: typer.Typer) -> None:
    app.command("train-round")(errors_to_exit(_train_round))

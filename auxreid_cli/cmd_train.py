"""`auxreid train-round`: mean-teacher training of one round on its pseudo labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DEVICE_METAVAR
from auxreid_cli.common import RichProgress, SetOption, console, errors_to_exit
from auxreid_cli.modes import explicit_config, run_mode
from stages.errors import AuxReidError


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
    set_: SetOption = None,
) -> None:
    """Train one round: P x K batches of pseudo identities, RLSCE/LSCE/CE + WATL/soft triplet, EMA teacher.

    Multi-GPU: torchrun --nproc_per_node 4 -m auxreid_cli.main train-round RUN --round R.

    Examples: auxreid train-round demo --round 1;
    auxreid train-round --clusters C.h5 --model round_000/model.pt --out round_001/model.pt
    """
    from stages.artifacts.h5 import read_provenance
    from stages.artifacts.model_file import read_model_file
    from stages.rundir import check_round
    from stages.runtime import distributed_from_env
    from stages.train_round import run_train_round

    if clusters is None and model is None and out is None:
        if run is None or round_ is None:
            raise AuxReidError("give RUN --round R, or --clusters C.h5 --model M.pt --out M2.pt "
                               "(see `auxreid train-round --help`)")
        _, resolved, io = run_mode(run, "train-round", round_, set_)
        clusters, model = io.input("clusters"), io.input("model")
        out, metrics = io.outputs["model"], io.outputs["metrics"]
    else:
        missing = [name for name, value in (("--clusters", clusters), ("--model", model), ("--out", out)) if value is None]
        if missing:
            raise AuxReidError(f"explicit mode needs --clusters, --model and --out; {', '.join(missing)} missing")
        if round_ is not None:
            check_round("train-round", round_)
        resolved = explicit_config(set_, run=run, config=config, sources=[model])
        if round_ is None:
            round_ = read_provenance(clusters)[0].round
    with RichProgress() as progress:
        written = run_train_round(resolved, clusters_path=clusters, model_path=model, out_path=out, round=round_,
                                  metrics_path=metrics, resume=resume, device=device, progress=progress)
    if distributed_from_env().is_main:
        entries = read_model_file(written, mmap=True).entries
        losses = entries.get("mean_losses", {})
        console.print(
            f"[green]wrote[/] {written} (round {entries['round']}, step {entries['step']}, "
            f"{entries.get('iterations', '?')} iterations on {entries.get('num_clusters', '?')} clusters; mean losses "
            + ", ".join(f"{k} {float(v):.3f}" for k, v in losses.items()) + ")"
        )


def register(app: typer.Typer) -> None:
    app.command("train-round")(errors_to_exit(_train_round))

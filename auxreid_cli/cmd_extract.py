"""`auxreid extract`: tracklet features of a run's round (cluster mode) or of any model and split."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DEVICE_METAVAR, DatasetName, ExtractMode
from auxreid_cli.common import RichProgress, SetOption, console, errors_to_exit, print_sections
from auxreid_cli.modes import explicit_config, run_mode
from stages.errors import AuxReidError


class FrameRateProgress(RichProgress):
    """RichProgress that shows frames/s for the extract tasks (they advance by frames)."""

    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def start(self, task: str, total: int | None = None) -> None:
        super().start(task, total)
        self._started[task], self._counts[task] = time.perf_counter(), 0

    def advance(self, task: str, amount: int = 1) -> None:
        super().advance(task, amount)
        self._counts[task] = self._counts.get(task, 0) + amount
        elapsed = time.perf_counter() - self._started.get(task, time.perf_counter())
        if elapsed > 0:
            self.rate(task, f"{self._counts[task] / elapsed:,.0f} frames/s")

    def done(self, task: str, message: str = "") -> None:
        elapsed = time.perf_counter() - self._started.get(task, time.perf_counter())
        rate = f"{self._counts.get(task, 0) / elapsed:,.0f} frames/s" if elapsed > 0 else ""
        super().done(task, ", ".join(x for x in (message, rate) if x))


def _overrides(set_: list[str] | None, dataset: str | None, root: str | None, skip_bad_frames: bool) -> list[str]:
    extra = list(set_ or [])
    if dataset is not None:
        extra.append(f"data.dataset={json.dumps(dataset)}")
    if root is not None:
        extra.append(f"data.root={json.dumps(root)}")
    if skip_bad_frames:
        extra.append("extract.skip_bad_frames=true")
    return extra


def _extract(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path; with --round, extracts that round.")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="Round R: uses round R-1's teacher, writes round R's train features.")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Explicit model.pt (its teacher is used).")] = None,
    split: Annotated[Optional[list[str]], typer.Option("--split", metavar="train|query|gallery", help="train, query or gallery; repeat it or join with commas (query,gallery).")] = None,
    mode: Annotated[Optional[ExtractMode], typer.Option("--mode", help="cluster (random run of frames, raw f; default) or infer (all frames, normalised bn_f).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="features.h5 to write (explicit mode).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (explicit mode without RUN; default: the model's own config).")] = None,
    dataset: Annotated[Optional[DatasetName], typer.Option("--dataset", help="The dataset (default: the model's).")] = None,
    root: Annotated[Optional[str], typer.Option("--root", help="Dataset folder (default: the config's data.root, else the dataset's home under $AUXREID_DATA or ./data).")] = None,
    skip_bad_frames: Annotated[bool, typer.Option("--skip-bad-frames", help="Drop unreadable frames with a warning instead of failing.")] = False,
    device: Annotated[Optional[str], typer.Option("--device", metavar=DEVICE_METAVAR, help="auto (CUDA when present), cpu, cuda or cuda:N.")] = None,
    set_: SetOption = None,
) -> None:
    """Extract tracklet features with a model's teacher into features.h5.

    Examples: auxreid extract demo --round 1;
    auxreid extract --model artifacts/demo/round_005/model.pt --split query --split gallery --mode infer --out qg.h5
    """
    from stages.artifacts.h5 import read_artifact
    from stages.artifacts.schemas import FEATURES
    from stages.extract import run_extract
    from stages.views.summaries import summarize_features as summarize

    overrides = _overrides(set_, dataset, root, skip_bad_frames)
    if model is None:
        if run is None or round_ is None:
            raise AuxReidError("give RUN --round R, or --model M.pt --out F.h5 (see `auxreid extract --help`)")
        if split or mode or out:
            raise AuxReidError("RUN --round R always extracts train in cluster mode; --split, --mode and --out go with --model")
        _, resolved, io = run_mode(run, "extract", round_, overrides)
        model, out, splits, mode = io.input("model"), io.outputs["features"], ["train"], "cluster"
    else:
        if out is None:
            raise AuxReidError("--model needs --out F.h5 to say where to write the features")
        resolved = explicit_config(overrides, run=run, config=config, sources=[model])
        splits = [name for value in split or ["train"] for name in value.split(",") if name]
        mode = mode or "cluster"
    with FrameRateProgress() as progress:
        written = run_extract(resolved, split=splits, mode=mode, model_path=model, out_path=out, round=round_,
                              device=device, progress=progress)
    artifact = read_artifact(written, FEATURES)
    console.print(f"[green]wrote[/] {written} (mode {artifact.attrs['mode']}, round {artifact.provenance.round}, "
                  f"{artifact.attrs['bad_frames_skipped']} bad frames skipped)")
    print_sections(summarize(artifact))


def register(app: typer.Typer) -> None:
    app.command("extract")(errors_to_exit(_extract))

"""`auxreid extract`: tracklet features of a run's round (cluster mode) or of any model and split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from auxreid_cli.choices import DEVICE_METAVAR, DatasetName, ExtractMode
from auxreid_cli.common import (
    ForceOption,
    RichProgress,
    SetOption,
    announce_variant,
    console,
    errors_to_exit,
    print_sections,
)


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
    force: ForceOption = False,
    set_: SetOption = None,
) -> None:
    """Extract tracklet features with a model's teacher into features.h5.

    Examples: auxreid extract demo --round 1;
    auxreid extract --model artifacts/demo/round_005/model.pt --split query --split gallery --mode infer --out qg.h5
    """
    from stages.artifacts.h5 import read_artifact
    from stages.artifacts.schemas import FEATURES
    from stages.extract import run_extract
    from stages.resolve import resolve
    from stages.runtime import distributed_from_env
    from stages.views.summaries import summarize_features as summarize

    resolved, io = resolve("extract", run=run, round=round_, overrides=set_, given={
        "model": model, "out": out, "config_file": config}, options={
        "split": split or None, "mode": mode, "dataset": dataset, "root": root, "skip_bad_frames": skip_bad_frames,
        "device": device, "force": force})
    with FrameRateProgress() as progress:
        [written] = run_extract(resolved, io, progress=progress)
    if not distributed_from_env().is_main:
        return
    artifact = read_artifact(written, FEATURES)
    console.print(f"[green]wrote[/] {written} (mode {artifact.attrs['mode']}, round {artifact.provenance.round}, "
                  f"{artifact.attrs['bad_frames_skipped']} bad frames skipped)")
    print_sections(summarize(artifact))
    announce_variant(io)


def register(app: typer.Typer) -> None:
    app.command("extract")(errors_to_exit(_extract))

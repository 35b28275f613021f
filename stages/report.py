"""report: per round of a run, mAP, rank-1, clusters, noise, NMI/purity and iterations; a figure and RUN/report.md.

Every number is read from the round's own artifacts (eval.json, clusters.h5, model.pt); a round that
lacks one simply shows "-" there, so a report can be drawn at any point of a run.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from stages.artifacts.h5 import atomic_path
from stages.artifacts.readers import read_clusters, read_model
from stages.artifacts.rundir import RunDir
from stages.errors import AuxReidError
from stages.views.report_plot import plot_rows


@dataclass(frozen=True)
class RoundRow:
    """What a run's round directory says about that round; None = not available."""

    round: int
    mAP: float | None = None
    rank1: float | None = None
    clusters: int | None = None
    noise_ratio: float | None = None
    nmi: float | None = None
    purity: float | None = None
    step: int | None = None
    iterations: int | None = None


@dataclass(frozen=True)
class Report:
    """The rows and the files written."""

    rows: list[RoundRow]
    figure: Path
    markdown: Path


COLUMNS = ("round", "mAP", "rank1", "clusters", "noise_ratio", "nmi", "purity", "iterations")


def _present(path: Path) -> Path | None:
    return path if path.is_file() else None


def _eval_numbers(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AuxReidError(f"{path} is not valid JSON ({exc.msg}); re-run `auxreid evaluate` for that round") from None
    return {key: float(record[key]) for key in ("mAP", "rank1") if key in record}


def _cluster_numbers(path: Path | None) -> dict:
    if path is None:
        return {}
    artifact = read_clusters(path)
    attrs = artifact.attrs
    out = {"clusters": int(attrs["num_clusters"])} if "num_clusters" in attrs else {}
    if "noise_ratio" in attrs:
        out["noise_ratio"] = float(attrs["noise_ratio"])
    for key in ("nmi", "purity"):
        if f"quality/{key}" in artifact:
            out[key] = float(artifact[f"quality/{key}"])
    return out


def _model_numbers(path: Path | None) -> dict:
    """step (and iterations, when train-round recorded them) from model.pt, tensors memory-mapped, not read."""
    if path is None:
        return {}
    entries = read_model(path, mmap=True).entries
    out = {"step": int(entries["step"])}
    if "iterations" in entries:
        out["iterations"] = int(entries["iterations"])
    return out


def collect_rows(run: str | Path | RunDir) -> list[RoundRow]:
    """One RoundRow per round directory, in round order; iterations = step difference when not recorded."""
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    rows: list[RoundRow] = []
    previous_step: int | None = None
    for r in run.rounds():
        values = {**_eval_numbers(_present(run.eval_json(r))), **_cluster_numbers(_present(run.clusters(r))),
                  **_model_numbers(_present(run.model(r)))}
        step = values.get("step")
        if "iterations" not in values and step is not None and previous_step is not None:
            values["iterations"] = step - previous_step
        previous_step = step if step is not None else previous_step
        rows.append(RoundRow(round=r, **values))
    return rows


def format_value(value: float | int | None) -> str:
    """Table text: '-' for missing, 4 decimals for fractions, integers as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def table_rows(rows: list[RoundRow]) -> list[list[str]]:
    """The rows as text cells in COLUMNS order (the terminal and report.md tables)."""
    return [[format_value(getattr(row, c)) for c in COLUMNS] for row in rows]


def markdown_table(rows: list[RoundRow]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines) + "\n"


def run_report(run_dir: str | Path | RunDir, out_png: str | Path) -> Report:
    """Collect every round's numbers, draw them to `out_png` and write RUN/report.md.

    Returns:
        Report with the rows (for the terminal table) and the two paths.

    Raises:
        AuxReidError: the run directory does not exist or has no round directories.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    run_dir = run.path
    if not run_dir.is_dir():
        raise AuxReidError(f"run directory {run_dir} does not exist; create it with `auxreid init`")
    rows = collect_rows(run)
    if not rows:
        raise AuxReidError(f"{run_dir} has no round_NNN directories yet; run `auxreid init` and a round first")
    figure = plot_rows(rows, Path(out_png), title=f"run {run_dir.name}")
    markdown = run.report_md
    with atomic_path(markdown) as tmp:
        link = os.path.relpath(Path(out_png).resolve(), run_dir.resolve())
        tmp.write_text(f"# Run {run_dir.name}\n\n{markdown_table(rows)}\n![report]({link})\n")
    return Report(rows=rows, figure=figure, markdown=markdown)

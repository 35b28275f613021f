"""report: per round of a run, mAP, rank-1, clusters, noise, NMI/purity and iterations; a figure and RUN/report.md.

Every number is read from the round's own artifacts (eval.json, clusters.h5, model.pt); a round that
lacks one simply shows "-" there, so a report can be drawn at any point of a run.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py

from stages.artifacts.h5 import atomic_path
from stages.errors import AuxReidError
from stages.views.report_plot import plot_rows

ROUND_DIR = re.compile(r"round_(\d{3,})$")


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


def _eval_numbers(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AuxReidError(f"{path} is not valid JSON ({exc.msg}); re-run `auxreid evaluate` for that round") from None
    return {key: float(record[key]) for key in ("mAP", "rank1") if key in record}


def _cluster_numbers(path: Path) -> dict:
    if not path.is_file():
        return {}
    with h5py.File(path, "r") as handle:
        attrs = handle.attrs
        out = {"clusters": int(attrs["num_clusters"])} if "num_clusters" in attrs else {}
        if "noise_ratio" in attrs:
            out["noise_ratio"] = float(attrs["noise_ratio"])
        for key in ("nmi", "purity"):
            if f"quality/{key}" in handle:
                out[key] = float(handle[f"quality/{key}"][()])
    return out


def _model_numbers(path: Path) -> dict:
    """step (and iterations, when train-round recorded them) from model.pt, tensors memory-mapped, not read."""
    if not path.is_file():
        return {}
    import torch

    entries = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    out = {"step": int(entries["step"])} if "step" in entries else {}
    if "iterations" in entries:
        out["iterations"] = int(entries["iterations"])
    return out


def collect_rows(run_dir: Path) -> list[RoundRow]:
    """One RoundRow per round directory, in round order; iterations = step difference when not recorded."""
    rounds = sorted(int(m.group(1)) for p in run_dir.iterdir() if p.is_dir() and (m := ROUND_DIR.match(p.name)))
    rows: list[RoundRow] = []
    previous_step: int | None = None
    for r in rounds:
        folder = run_dir / f"round_{r:03d}"
        values = {**_eval_numbers(folder / "eval.json"), **_cluster_numbers(folder / "clusters.h5"),
                  **_model_numbers(folder / "model.pt")}
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


def run_report(run_dir: str | Path, out_png: str | Path) -> Report:
    """Collect every round's numbers, draw them to `out_png` and write RUN/report.md.

    Returns:
        Report with the rows (for the terminal table) and the two paths.

    Raises:
        AuxReidError: the run directory does not exist or has no round directories.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuxReidError(f"run directory {run_dir} does not exist; create it with `auxreid init`")
    rows = collect_rows(run_dir)
    if not rows:
        raise AuxReidError(f"{run_dir} has no round_NNN directories yet; run `auxreid init` and a round first")
    figure = plot_rows(rows, Path(out_png), title=f"run {run_dir.name}")
    markdown = run_dir / "report.md"
    with atomic_path(markdown) as tmp:
        link = os.path.relpath(Path(out_png).resolve(), run_dir.resolve())
        tmp.write_text(f"# Run {run_dir.name}\n\n{markdown_table(rows)}\n![report]({link})\n")
    return Report(rows=rows, figure=figure, markdown=markdown)

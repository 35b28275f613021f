"""report: per round of a run, retrieval, pseudo-label quality, training and stage seconds; a figure and RUN/report.md.

Every number is read from the round's own artifacts (eval.h5, clusters.h5, model.pt, features.h5's
`seconds`) and from train-round's round records in RUN/metrics.jsonl (iterations, mean losses,
pseudo-label precision, seconds; the last record of a round wins, so a re-trained round shows its
latest training). A round that lacks a file simply shows "-" there, so a report can be drawn at any
point of a run; a NaN (an evaluation gone wrong) shows "NaN", never "-". Below the table, two lines: the last evaluated round, and the best evaluated round by mAP,
which is what the paper's figures are (its authors keep the checkpoint with the best test mAP).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from stages.artifacts.h5 import atomic_path, read_artifact, read_provenance
from stages.artifacts.lock import writes
from stages.artifacts.output_guard import guard_output
from stages.artifacts.readers import (
    FEATURES_ATTRS,
    RunSettings,
    changed_settings,
    check_number_attrs,
    describe_settings,
    read_clusters,
    read_model,
    run_settings,
)
from stages.artifacts.schemas import EVAL
from stages.errors import AuxReidError
from stages.rundir import RunDir
from stages.variants import variants_of
from stages.views.report_plot import plot_rows
from stages.views.report_table import (
    RoundRow,
    VariantRow,
    losses_table,
    markdown_table,
    other_settings_lines,
    summary_lines,
    variants_markdown,
)


@dataclass(frozen=True)
class Report:
    """The rows and the files written."""

    rows: list[RoundRow]
    figure: Path
    markdown: Path
    #: The labelled lines below the table (last and best evaluated round, the oracle's share when given, the
    #: rounds evaluated with other settings than config.yaml).
    summary: list[str]
    #: The rounds' evaluation variants, beside the run's own rows.
    variants: list[VariantRow] = field(default_factory=list)


def _as_run(run: str | Path | RunDir) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(Path(run))


def _present(path: Path) -> Path | None:
    return path if path.is_file() else None


def _eval_numbers(path: Path | None, settings: RunSettings | None = None) -> dict:
    """mAP, rank-1 and seconds from eval.h5, the one source (eval.json is only its readable copy), and the
    test-time settings it was made with that differ from the run's config.yaml (`settings`)."""
    if path is None:
        return {}
    artifact = read_artifact(path, EVAL)
    out = {"mAP": float(artifact["metrics/mAP"])}
    changes = changed_settings(artifact.provenance, settings)
    if changes:
        out["eval_note"] = describe_settings(changes, shown=len(changes))
    cmc = artifact["metrics/cmc"]
    if len(cmc):
        out["rank1"] = float(cmc[0])
    if "seconds" in artifact.attrs:
        out["evaluate_s"] = float(artifact.attrs["seconds"])
    return out


def _cluster_numbers(path: Path | None) -> dict:
    if path is None:
        return {}
    artifact = read_clusters(path)
    attrs = artifact.attrs
    out = {"clusters": int(attrs["num_clusters"])} if "num_clusters" in attrs else {}
    if "noise_ratio" in attrs:
        out["noise_ratio"] = float(attrs["noise_ratio"])
    if "seconds" in attrs:
        out["cluster_s"] = float(attrs["seconds"])
    for key in ("nmi", "nmi_all", "purity"):
        if f"quality/{key}" in artifact:
            out[key] = float(artifact[f"quality/{key}"])
    return out


def _feature_numbers(path: Path | None) -> dict:
    """extract's seconds from features.h5's root attributes (no dataset is read)."""
    if path is None:
        return {}
    _, attrs = read_provenance(path)
    check_number_attrs((path, attrs), FEATURES_ATTRS)
    return {"extract_s": float(attrs["seconds"])} if "seconds" in attrs else {}


def _model_numbers(path: Path | None) -> dict:
    """step (and iterations, when train-round recorded them) from model.pt, tensors memory-mapped, not read."""
    if path is None:
        return {}
    entries = read_model(path, mmap=True).entries
    out = {"step": int(entries["step"])}
    if "iterations" in entries:
        out["iterations"] = int(entries["iterations"])
    return out


def read_round_records(path: Path) -> dict[int, dict]:
    """train-round's per-round records of a metrics.jsonl, by round; the last record of a round wins.

    Raises:
        AuxReidError: a line that is not a JSON object (naming the file and the line).
    """
    records: dict[int, dict] = {}
    if not path.is_file():
        return records
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AuxReidError(f"{path} line {number} is not valid JSON ({exc.msg}); delete that line (an "
                                   "interrupted train-round can leave half a line) and run the report again") from None
            if not isinstance(record, dict):
                raise AuxReidError(f"{path} line {number} is not a JSON object; delete that line and run the report again")
            if record.get("kind") == "round" and "round" in record:
                _check_round_record(record, f"{path} line {number}")
                records[int(record["round"])] = record
    return records


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_round_record(record: dict, where: str) -> None:
    """A round record's numbers, as `_training_numbers` uses them: round and iterations integers, the rest finite."""
    problems = [key for key in ("round", "iterations") if key in record and not (
        _is_number(record[key]) and float(record[key]).is_integer() and record[key] >= 0)]
    problems += [key for key in ("pseudo_label_precision", "seconds")
                 if record.get(key) is not None and not _is_number(record[key])]
    losses = record.get("losses")
    if losses is not None and not (isinstance(losses, dict) and all(_is_number(v) for v in losses.values())):
        problems.append("losses")
    if problems:
        raise AuxReidError(f"{where}: the round record's {', '.join(problems)} "
                           f"{'is not a' if len(problems) == 1 else 'are not'} valid number{'s' if len(problems) > 1 else ''}; "
                           "delete that line (train-round writes it again when the round is re-run) and run the report again")


def _training_numbers(record: dict | None) -> dict:
    """Iterations, mean losses, pseudo-label precision and seconds of one train-round round record."""
    if record is None:
        return {}
    out: dict = {}
    if "iterations" in record:
        out["iterations"] = int(record["iterations"])
    if isinstance(record.get("losses"), dict):
        out["losses"] = {key: float(value) for key, value in record["losses"].items()}
    if record.get("pseudo_label_precision") is not None:
        out["precision"] = float(record["pseudo_label_precision"])
    if "seconds" in record:
        out["train_s"] = float(record["seconds"])
    return out


def collect_rows(run: str | Path | RunDir) -> list[RoundRow]:
    """One RoundRow per round directory, in round order.

    Iterations come from metrics.jsonl, else model.pt, else the EMA step difference to the previous round.
    """
    run = _as_run(run)
    training = read_round_records(run.metrics_log)
    settings = run_settings(run.config_path)
    rows: list[RoundRow] = []
    previous_step: int | None = None
    for r in run.rounds():
        values = {**_eval_numbers(_present(run.eval(r)), settings), **_cluster_numbers(_present(run.clusters(r))),
                  **_feature_numbers(_present(run.features(r))), **_model_numbers(_present(run.model(r)))}
        values.update(_training_numbers(training.get(r)) if r > 0 else {})
        step = values.get("step")
        if "iterations" not in values and step is not None and previous_step is not None:
            values["iterations"] = step - previous_step
        previous_step = step if step is not None else previous_step
        rows.append(RoundRow(round=r, **values))
    return rows


def collect_variants(run: str | Path | RunDir) -> list[VariantRow]:
    """Every round's evaluation variants (`round_00R/variants/<name>/eval.h5`), by round and name."""
    run = _as_run(run)
    settings = run_settings(run.config_path)
    rows = []
    for r in run.rounds():
        for folder in variants_of(run.round_dir(r)):
            path = folder / run.eval(r).name
            if not path.is_file():
                continue
            artifact = read_artifact(path, EVAL)
            cmc = artifact["metrics/cmc"]
            changes = changed_settings(artifact.provenance, settings)
            note = describe_settings(changes, shown=len(changes)) if changes else "other inputs (see its provenance)"
            rows.append(VariantRow(round=r, name=folder.name, mAP=float(artifact["metrics/mAP"]),
                                   rank1=float(cmc[0]) if len(cmc) else None, note=note))
    return rows


def _report_outputs(run_dir: str | Path | RunDir, out_png: str | Path | None, **_) -> tuple[Path, Path]:
    """The figure and RUN/report.md, once the run is known to exist (so no lock folder is made for a typo)."""
    run = _as_run(run_dir)
    if not run.path.is_dir():
        raise AuxReidError(f"run directory {run.path} does not exist; create it with `auxreid init`")
    return (Path(out_png) if out_png is not None else run.report_png), run.report_md


@writes(_report_outputs)
def run_report(run_dir: str | Path | RunDir, out_png: str | Path | None = None, *,
               oracle: str | Path | RunDir | None = None) -> Report:
    """Collect every round's numbers, draw them to `out_png` and write RUN/report.md.

    Args:
        out_png: the figure; None: RUN/report.png. A figure may replace a figure (it is drawn again at will),
            never a file of another kind.
        oracle: a run of the same config with `cluster.labels: oracle`; its mAP scales this run's.

    Returns:
        Report with the rows (for the terminal table) and the two paths.

    Raises:
        AuxReidError: the run directory does not exist or has no round directories.
    """
    run = _as_run(run_dir)
    run_dir = run.path
    option = "--out" if out_png is not None else "output"
    out_png = Path(out_png) if out_png is not None else run.report_png
    guard_output(out_png, "png", option=option, inputs={}, replace=True)
    guard_output(run.report_md, "markdown", option="output", inputs={}, replace=True)
    rows = collect_rows(run)
    if not rows:
        raise AuxReidError(f"{run_dir} has no round_NNN directories yet; run `auxreid init` and a round first")
    oracle_rows = None
    if oracle is not None:
        oracle_run = _as_run(oracle)
        oracle_rows = (oracle_run.name, collect_rows(oracle_run))
        if not oracle_rows[1]:
            raise AuxReidError(f"--oracle: {oracle_run.path} has no round_NNN directories; train it first with "
                               "--set cluster.labels=oracle (make round RUN=... EXTRA_SET='--set cluster.labels=oracle')")
    variants = collect_variants(run)
    figure = plot_rows(rows, Path(out_png), title=f"run {run_dir.name}")
    markdown = run.report_md
    losses = losses_table(rows)
    notes = ("mAP / rank-1: after the round's training; clusters, noise, NMI, purity: the round's pseudo labels "
             "(nmi_all counts noise tracklets as clusters of their own); loss: mean total training loss; precision: "
             "share of the training batches' positive pairs that show one person; `<stage>_s`: wall seconds inside "
             "each stage (process start-up not included).")
    with atomic_path(markdown) as tmp:
        link = os.path.relpath(Path(out_png).resolve(), run_dir.resolve())
        lines = summary_lines(rows, oracle=oracle_rows) + other_settings_lines(rows, run.name)
        summary = "".join(f"- {line}\n" for line in lines)
        body = f"# Run {run_dir.name}\n\n{markdown_table(rows)}\n{summary}\n{notes}\n\n"
        if losses:
            body += f"## Mean losses per round\n\n{losses}\n"
        if variants:
            body += variants_markdown(variants) + "\n"
        tmp.write_text(body + f"![report]({link})\n")
    return Report(rows=rows, figure=figure, markdown=markdown, summary=lines, variants=variants)

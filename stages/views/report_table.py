"""The report's table half: one RoundRow per round, its text cells, the markdown tables and the labelled summary
lines (the last evaluated round, the best one as the paper reports, and the share of an oracle run's mAP).

Pure: values in, text out. `stages.report` collects the rows from a run's files; `report_plot` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

#: train-round's loss terms, as its metrics.jsonl records name them.
LOSS_TERMS = ("id", "triplet", "soft_id", "soft_triplet", "total")

#: The stages timed per round (RoundRow fields `<stage>_s`), in pipeline order.
TIMED_STAGES = ("extract", "cluster", "train", "evaluate")


@dataclass(frozen=True)
class RoundRow:
    """What a run's round directory and metrics.jsonl say about that round; None = not available.

    `losses` are the round's mean losses by term (LOSS_TERMS); `precision` is the training batches'
    pseudo-label precision; `<stage>_s` are each stage's wall seconds inside the stage.
    """

    round: int
    mAP: float | None = None
    rank1: float | None = None
    clusters: int | None = None
    noise_ratio: float | None = None
    nmi: float | None = None
    nmi_all: float | None = None
    purity: float | None = None
    step: int | None = None
    iterations: int | None = None
    losses: Mapping[str, float] | None = None
    precision: float | None = None
    extract_s: float | None = None
    cluster_s: float | None = None
    train_s: float | None = None
    evaluate_s: float | None = None
    #: the test-time settings eval.h5 was made with that differ from config.yaml ("" when none): the round's
    #: mAP then is not what config.yaml would give, and the tables mark it.
    eval_note: str = ""

    @property
    def loss(self) -> float | None:
        """The round's mean total loss."""
        return None if self.losses is None else self.losses.get("total")


#: The two halves of the table (the terminal prints them as two tables), and the whole (report.md).
QUALITY_COLUMNS = ("round", "mAP", "rank1", "clusters", "noise_ratio", "nmi", "nmi_all", "purity")
TRAINING_COLUMNS = ("round", "iterations", "loss", "precision", "extract_s", "cluster_s", "train_s", "evaluate_s")
COLUMNS = QUALITY_COLUMNS + TRAINING_COLUMNS[1:]


def format_value(value: float | int | None, *, decimals: int = 4) -> str:
    """Table text: '-' for missing, 'NaN' for NaN, `decimals` decimals for floats, integers as they are.

    A NaN is a result (an evaluation that went wrong), so it must not read as "-", "not evaluated".
    """
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)


def _decimals(column: str) -> int:
    return 1 if column.endswith("_s") else 4


#: The mark of a round evaluated with other test-time settings than config.yaml's.
OTHER_SETTINGS_MARK = "*"


def _cell(row: RoundRow, column: str) -> str:
    if column == "round" and row.eval_note:
        return f"{row.round}{OTHER_SETTINGS_MARK}"
    return format_value(getattr(row, column), decimals=_decimals(column))


def table_rows(rows: list[RoundRow], columns: tuple[str, ...] = COLUMNS) -> list[list[str]]:
    """The rows as text cells in `columns` order (the terminal and report.md tables); seconds to 0.1 s; a round
    evaluated with other test-time settings than config.yaml's is marked `*` (`other_settings_lines` says how)."""
    return [[_cell(row, c) for c in columns] for row in rows]


def other_settings_lines(rows: list[RoundRow], run: str) -> list[str]:
    """One line per round marked `*`: the test-time settings its eval.h5 was made with, and how to redo it."""
    return [f"round {row.round}{OTHER_SETTINGS_MARK} was evaluated with other settings than config.yaml "
            f"({row.eval_note}); `auxreid evaluate {run} --round {row.round}` evaluates it as config.yaml says"
            for row in rows if row.eval_note]


@dataclass(frozen=True)
class VariantRow:
    """An evaluation variant of a round (`round_00R/variants/<name>/eval.h5`), beside the run's own rows."""

    round: int
    name: str
    mAP: float | None
    rank1: float | None
    #: how it differs from the run's own evaluation.
    note: str


VARIANT_COLUMNS = ("round", "variant", "mAP", "rank1", "differs in")


def variant_cells(variants: list[VariantRow]) -> list[list[str]]:
    return [[str(v.round), v.name, format_value(v.mAP), format_value(v.rank1), v.note] for v in variants]


def variants_markdown(variants: list[VariantRow]) -> str:
    """report.md's section on variants ('' when there are none)."""
    if not variants:
        return ""
    return ("## Variants (beside the run's own files, not part of the loop)\n\n"
            + _markdown(list(VARIANT_COLUMNS), variant_cells(variants)))


#: The labels of report's two summary lines; the second is the figure to hold against the paper's tables.
LAST_LABEL = "last evaluated round"
BEST_LABEL = "best of evaluated rounds, as the paper reports"
ORACLE_LABEL = "label-free reaches, of the oracle's mAP"


def best_evaluated_round(maps: Mapping[int, float]) -> int | None:
    """The round with the highest mAP among `maps` (round -> mAP of each evaluated round), or None.

    The paper's figures are best-of-evaluated-rounds (the authors evaluate every 2 epochs and test the checkpoint
    with the best mAP), so this is the round to compare with them. Round 0 is the initial model, no result of
    training: it counts only when no other round was evaluated. A NaN mAP is no result either and never wins;
    a tie goes to the earlier round, the first checkpoint that reached that mAP.
    """
    trained = {r: m for r, m in maps.items() if r > 0}
    finite = [(r, m) for r, m in (trained or maps).items() if not math.isnan(m)]
    return min(finite, key=lambda item: (-item[1], item[0]))[0] if finite else None


def _round_numbers(row: RoundRow) -> str:
    mark = OTHER_SETTINGS_MARK if row.eval_note else ""
    return f"round {row.round}{mark}, mAP {format_value(row.mAP)}, rank-1 {format_value(row.rank1)}"


def _no_best_reason(evaluated: list[RoundRow]) -> str:
    if not evaluated:
        return "none (no round has an eval.h5 yet)"
    if any(row.round > 0 for row in evaluated):
        return "none (every evaluated round after round 0 has a NaN mAP)"
    return "none (round 0, the only evaluated round, has a NaN mAP)"


def oracle_line(rows: list[RoundRow], oracle_rows: list[RoundRow], *, oracle_name: str) -> str:
    """How far label-free training gets against the oracle run (true identities as pseudo labels).

    Compared at the last round after round 0 that both runs evaluated with a finite mAP, so the two models
    have trained the same number of rounds.
    """
    ours = {row.round: row.mAP for row in rows if row.mAP is not None and not math.isnan(row.mAP)}
    theirs = {row.round: row.mAP for row in oracle_rows if row.mAP is not None and not math.isnan(row.mAP)}
    common = sorted(r for r in ours.keys() & theirs.keys() if r > 0)
    if not common:
        return f"{ORACLE_LABEL}: none (no round after round 0 has a finite mAP in both this run and {oracle_name})"
    r = common[-1]
    share = f"{ours[r] / theirs[r]:.0%}" if theirs[r] > 0 else "n/a"
    return (f"{ORACLE_LABEL}: {share} at round {r} (mAP {format_value(ours[r])} against {format_value(theirs[r])} "
            f"with true identities as pseudo labels, run {oracle_name})")


def summary_lines(rows: list[RoundRow], *, oracle: tuple[str, list[RoundRow]] | None = None) -> list[str]:
    """The last evaluated round and the best one by mAP (`best_evaluated_round`), one labelled line each;
    then, given an oracle run (name, rows), the share of its mAP this run reaches (`oracle_line`)."""
    evaluated = [row for row in rows if row.mAP is not None]
    last = f"{LAST_LABEL}: {_round_numbers(evaluated[-1]) if evaluated else 'none (no round has an eval.h5 yet)'}"
    best = best_evaluated_round({row.round: row.mAP for row in evaluated})
    extra = [oracle_line(rows, oracle[1], oracle_name=oracle[0])] if oracle is not None else []
    if best is None:
        return [last, f"{BEST_LABEL}: {_no_best_reason(evaluated)}", *extra]
    row = next(row for row in evaluated if row.round == best)
    alone = " (round 0, the initial model before any training, is the only evaluated round)" if best == 0 else ""
    return [last, f"{BEST_LABEL}: {_round_numbers(row)}{alone}", *extra]


def _markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[RoundRow]) -> str:
    return _markdown(list(COLUMNS), table_rows(rows))


def losses_table(rows: list[RoundRow]) -> str:
    """Mean losses per trained round, one column per term ('' when no round has losses)."""
    trained = [row for row in rows if row.losses]
    if not trained:
        return ""
    cells = [[str(row.round), *(format_value(row.losses.get(term)) for term in LOSS_TERMS)] for row in trained]
    return _markdown(["round", *LOSS_TERMS], cells)

"""The report figure per round: retrieval (best round starred, NaN crossed), pseudo labels, quality, losses, iterations,
seconds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from stages.artifacts.h5 import atomic_path
from stages.views.report_table import LOSS_TERMS, TIMED_STAGES, RoundRow, best_evaluated_round

if TYPE_CHECKING:
    from matplotlib.axes import Axes


#: Figure size in inches at 100 dpi: 1500 x 800 pixels.
FIGURE_SIZE = (15, 8)
#: Up to this many rounds every round gets a tick; beyond, integer ticks at matplotlib's spacing.
MAX_ROUND_TICKS = 20
_STAGE_COLOURS = {"extract": "tab:blue", "cluster": "tab:orange", "train": "tab:green", "evaluate": "tab:purple"}


def _series(rows: list[RoundRow], name: str) -> list[tuple[int, float]]:
    return [(row.round, getattr(row, name)) for row in rows if getattr(row, name) is not None]


def _lines(axis: Axes, rows: list[RoundRow], names: tuple[tuple[str, str], ...]) -> None:
    for name, style in names:
        points = _series(rows, name)
        if points:
            axis.plot(*zip(*points), style, label=name)


def _best_round(axis: Axes, rows: list[RoundRow]) -> None:
    """A star on the best evaluated round's mAP: the point that compares with the paper's best-of-rounds figures."""
    maps = {row.round: row.mAP for row in rows if row.mAP is not None}
    best = best_evaluated_round(maps)
    if best is not None:
        axis.plot([best], [maps[best]], "*", color="tab:red", markersize=14, label=f"best mAP (round {best})")


def _nan_scores(axis: Axes, rows: list[RoundRow]) -> None:
    """A cross on the axis where a round's mAP is NaN: a line simply breaks there, as at a round not evaluated."""
    rounds = [row.round for row in rows if row.mAP is not None and math.isnan(row.mAP)]
    if rounds:
        axis.plot(rounds, [0.0] * len(rounds), "x", color="tab:red", markersize=10, clip_on=False, label="mAP NaN")


def _pseudo_labels(axis: Axes, rows: list[RoundRow]) -> None:
    """Clusters (left scale) and noise ratio (right scale)."""
    _lines(axis, rows, (("clusters", "o-"),))
    axis.set(xlabel="round", ylabel="clusters", title="pseudo labels")
    noise = _series(rows, "noise_ratio")
    if noise:
        twin = axis.twinx()
        twin.plot(*zip(*noise), "s--", color="tab:red", label="noise ratio")
        twin.set(ylabel="noise ratio", ylim=(0, 1))
        twin.legend(loc="upper right")


def _losses(axis: Axes, rows: list[RoundRow]) -> None:
    for term in LOSS_TERMS:
        points = [(row.round, row.losses[term]) for row in rows if row.losses and term in row.losses]
        if points:
            axis.plot(*zip(*points), "o-" if term == "total" else ".--", label=term)
    axis.set(xlabel="round", ylabel="mean loss", title="training losses")


def _seconds(axis: Axes, rows: list[RoundRow]) -> None:
    """Stacked bars: each stage's wall seconds per round."""
    rounds = [row.round for row in rows]
    bottom = [0.0] * len(rows)
    for stage in TIMED_STAGES:
        heights = [getattr(row, f"{stage}_s") or 0.0 for row in rows]
        if any(heights):
            axis.bar(rounds, heights, bottom=bottom, color=_STAGE_COLOURS[stage], label=stage)
            bottom = [b + h for b, h in zip(bottom, heights)]
    axis.set(xlabel="round", ylabel="seconds", title="stage seconds")


def _whole_rounds(axis: Axes, rounds: list[int]) -> None:
    """x ticks at whole rounds only: each round when there are few, else integer steps; half a round of margin."""
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib, as in report_figure

    if len(rounds) <= MAX_ROUND_TICKS:
        axis.set_xticks(rounds)
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if rounds:
        axis.set_xlim(min(rounds) - 0.5, max(rounds) + 0.5)


def plot_rows(rows: list[RoundRow], out_png: Path, *, title: str) -> Path:
    """Six panels per round (see the module line), written atomically to `out_png` (1500 x 800 px)."""
    from matplotlib import pyplot as plt  # deferred: matplotlib, as in report_figure

    figure = report_figure(rows, title=title)
    with atomic_path(out_png, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return Path(out_png)


def report_figure(rows: list[RoundRow], *, title: str):
    """The matplotlib Figure `plot_rows` saves (Agg backend)."""
    # deferred: matplotlib (and the switch to Agg) until a figure is drawn; `auxreid report` always draws, but
    # importing stages.report for its rows and tables alone loads neither
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=FIGURE_SIZE)
    rounds = sorted({row.round for row in rows})
    retrieval, pseudo, quality, losses, iterations, seconds = axes.ravel()
    _lines(retrieval, rows, (("mAP", "o-"), ("rank1", "s-")))
    _best_round(retrieval, rows)
    _nan_scores(retrieval, rows)
    retrieval.set(xlabel="round", ylabel="score", ylim=(0, 1), title="retrieval (after the round's training)")
    _pseudo_labels(pseudo, rows)
    _lines(quality, rows, (("nmi", "^-"), ("nmi_all", "o-"), ("purity", "v--"), ("precision", "s:")))
    quality.set(xlabel="round", ylabel="score", ylim=(0, 1), title="pseudo-label quality")
    _losses(losses, rows)
    _lines(iterations, rows, (("iterations", "o-"),))
    iterations.set(xlabel="round", ylabel="iterations", title="training iterations")
    _seconds(seconds, rows)
    for axis in axes.ravel():
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left", fontsize="small")
        _whole_rounds(axis, rounds)
    figure.suptitle(title)
    figure.tight_layout()
    return figure

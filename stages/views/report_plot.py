"""The report figure: mAP, rank-1, clusters and cluster quality per round."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stages.artifacts.h5 import atomic_path

if TYPE_CHECKING:
    from stages.report import RoundRow


def plot_rows(rows: list[RoundRow], out_png: Path, *, title: str) -> Path:
    """Left: mAP / rank-1 / NMI / purity per round; right: clusters and noise ratio. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, style in (("mAP", "o-"), ("rank1", "s-"), ("nmi", "^--"), ("purity", "v--")):
        points = [(row.round, getattr(row, name)) for row in rows if getattr(row, name) is not None]
        if points:
            left.plot(*zip(*points), style, label=name)
    left.set(xlabel="round", ylabel="score", ylim=(0, 1), title="retrieval and cluster quality")
    clusters = [(row.round, row.clusters) for row in rows if row.clusters is not None]
    if clusters:
        right.plot(*zip(*clusters), "o-", color="tab:blue", label="clusters")
    right.set(xlabel="round", ylabel="clusters", title="pseudo labels")
    noise = [(row.round, row.noise_ratio) for row in rows if row.noise_ratio is not None]
    if noise:
        twin = right.twinx()
        twin.plot(*zip(*noise), "s--", color="tab:red", label="noise ratio")
        twin.set(ylabel="noise ratio", ylim=(0, 1))
        twin.legend(loc="upper right")
    for axis in (left, right):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return Path(out_png)

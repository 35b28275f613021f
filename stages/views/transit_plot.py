"""The transit-time model of an aux.h5 drawn as one histogram per camera pair (`inspect aux.h5 --plot`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.artifacts.h5 import Artifact, atomic_path
from stages.auxinfo.transit import FALLBACK_FLAT, FALLBACK_OWN, FALLBACK_POOLED
from stages.errors import AuxReidError
from stages.views.labels import camera_labels_of, camera_text

#: Line style of the p curve per fallback kind, and what the legend calls it.
LINE_STYLES = {FALLBACK_OWN: ("black", "-", "p of STS: own histogram"),
               FALLBACK_POOLED: ("tab:orange", "--", "p of STS: pooled (few gaps)"),
               FALLBACK_FLAT: ("grey", ":", "p = 1: no evidence")}
BAR_LABEL = "gap counts / their peak"


def plot_transit(artifact: Artifact, out: str | Path) -> Path:
    """Draw every ordered camera pair's transit-time distribution as a grid of small plots (PNG).

    Row = camera left, column = camera entered, each named by its label (aux.h5's `camera_labels`; the index in
    a file written before them). Bars: raw gap counts scaled to peak 1; line: the p
    used by STS (solid: own histogram, dashed: pooled fallback, grey: no evidence, p = 1), as the
    figure's legend says.

    Raises:
        AuxReidError: the aux.h5 has no STS model.
    """
    import matplotlib.pyplot as plt  # deferred: matplotlib, as in transit_figure

    fig = transit_figure(artifact)
    out = Path(out)
    with atomic_path(out, suffix=out.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out


def transit_figure(artifact: Artifact):
    """The matplotlib Figure `plot_transit` saves (Agg backend).

    Raises:
        AuxReidError: the aux.h5 has no STS model.
    """
    if "sts/density" not in artifact:
        raise AuxReidError(
            f"{artifact.path} has no STS model to plot; re-run `auxreid mine-aux` with --features F.h5 "
            "(or --sts-source clusters / oracle)"
        )
    # deferred: matplotlib, which `auxreid inspect` (importing this module) needs only with --plot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    edges = np.asarray(artifact["sts/edges"])
    density = np.asarray(artifact["sts/density"])
    counts = np.asarray(artifact["sts/counts"], dtype=np.float64)
    fallback = np.asarray(artifact["sts/fallback"])
    centers = (edges[:-1] + edges[1:]) / 2
    used = np.flatnonzero(counts.sum(axis=(0, 1)) > 0)
    lo, hi = (edges[used[0]], edges[used[-1] + 1]) if used.size else (edges[0], edges[-1])
    cameras = density.shape[0]
    names = [camera_text(camera_labels_of(artifact.data), camera) for camera in range(cameras)]
    columns = 1 if cameras == 1 else 2
    legend = 0.17 * (4 // columns) + 0.1  # inches: the legend, the x label above it and the axes are placed in inches
    inches = 1.4 * cameras + legend + 0.2
    fig, axes = plt.subplots(cameras, cameras, figsize=(1.9 * cameras, inches), sharex=True, sharey=True,
                             squeeze=False)
    for a in range(cameras):
        for b in range(cameras):
            ax = axes[a, b]
            peak = counts[a, b].max()
            if peak > 0:
                ax.stairs(counts[a, b] / peak, edges, fill=True, color="tab:blue", alpha=0.5)
            color, line, _ = LINE_STYLES[int(fallback[a, b])]
            ax.plot(centers, density[a, b], color=color, linestyle=line, linewidth=1)
            ax.set_title(f"{names[a]}->{names[b]} n={int(counts[a, b].sum())}", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xlim(lo, hi)
            ax.set_ylim(0, 1.05)
    handles = [Patch(color="tab:blue", alpha=0.5, label=BAR_LABEL)]
    handles += [Line2D([], [], color=color, linestyle=line, label=label) for color, line, label in LINE_STYLES.values()]
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=7, frameon=False)
    fig.supxlabel("gap: start of the later tracklet - end of the earlier (s)", fontsize=8, y=legend / inches, va="bottom")
    fig.supylabel("p (line) / counts scaled to peak (bars)", fontsize=8)
    fig.suptitle(f"transit-time model, source: {artifact.attrs.get('sts_source', '')}", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=(legend + 0.5) / inches, top=0.93, wspace=0.15, hspace=0.45)
    return fig

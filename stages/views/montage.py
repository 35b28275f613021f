"""A picture of one cluster: a row of frames per member tracklet, so a person can spot a wrong merge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stages.artifacts.h5 import Artifact, atomic_path
from stages.artifacts.readers import config_from_artifact
from stages.errors import AuxReidError

#: Frames drawn per tracklet (evenly spaced over it), tracklets drawn per montage, label width (px).
MONTAGE_FRAMES = 6
MONTAGE_MAX_ROWS = 24
LABEL_WIDTH = 190
FRAME_HEIGHT, FRAME_WIDTH = 96, 48


def montage_rows(labels: np.ndarray, cluster_id: int, *, max_rows: int = MONTAGE_MAX_ROWS) -> np.ndarray:
    """Rows (tracklets of the features file) of one cluster, at most `max_rows`, in index order.

    Raises:
        AuxReidError: the cluster does not exist.
    """
    labels = np.asarray(labels)
    count = int(labels.max()) + 1 if labels.size else 0
    if not 0 <= cluster_id < count:
        raise AuxReidError(f"cluster {cluster_id} does not exist; this file has clusters 0..{count - 1}"
                           if count else f"cluster {cluster_id} does not exist; this file has no clusters")
    return np.flatnonzero(labels == cluster_id)[:max_rows]


def frame_picks(num_frames: int, *, count: int = MONTAGE_FRAMES) -> np.ndarray:
    """Up to `count` evenly spaced frame positions of a tracklet, first and last included."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64))


def row_label(tracklet, row: int) -> str:
    """'#row cam C t=START-ENDs id P' (time only when the dataset has it)."""
    text = f"#{row} cam {tracklet.camera}"
    if tracklet.times is not None:
        text += f" t={tracklet.times[0]:.1f}-{tracklet.times[-1]:.1f}s"
    return text + f" id {tracklet.person_id}"


def montage(artifact: Artifact, cluster_id: int, out: str | Path) -> Path:
    """Draw cluster `cluster_id` of a clusters.h5: one row per tracklet (at most MONTAGE_MAX_ROWS).

    The dataset is found through the config stored in the artifact's provenance, and rows through
    its `tracklet_index` (train split indices).

    Returns:
        The PNG written (atomically).

    Raises:
        AuxReidError: unknown cluster, missing dataset or unreadable frames.
    """
    from stages.data import load_dataset
    from stages.data.frames import read_frame

    rows = montage_rows(artifact["labels"], cluster_id)
    config = config_from_artifact(artifact, hint="its dataset cannot be found; re-run `auxreid cluster`")
    tracklets = load_dataset(config.data).train
    index = artifact["tracklet_index"]
    font = ImageFont.load_default()
    canvas = Image.new("RGB", (LABEL_WIDTH + MONTAGE_FRAMES * FRAME_WIDTH, max(len(rows), 1) * FRAME_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    for position, row in enumerate(rows):
        tracklet = tracklets[int(index[row])]
        top = position * FRAME_HEIGHT
        draw.text((4, top + FRAME_HEIGHT // 2 - 6), row_label(tracklet, int(row)), fill="black", font=font)
        for column, pick in enumerate(frame_picks(len(tracklet.frames))):
            pixels = read_frame(tracklet.frames[pick], height=FRAME_HEIGHT, width=FRAME_WIDTH)
            canvas.paste(Image.fromarray(pixels), (LABEL_WIDTH + column * FRAME_WIDTH, top))
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return out

"""A picture of one cluster: a row of frames per member tracklet, so a person can spot a wrong merge.

The title gives the cluster's size and purity (share of its majority person id, where ids are
known), rows of another id than the majority are marked red, and it says when rows were cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stages.artifacts.h5 import Artifact, atomic_path
from stages.artifacts.readers import config_from_artifact
from stages.data import load_dataset
from stages.data.frames import read_frame
from stages.errors import AuxReidError
from stages.views.labels import camera_text, fit_text, format_time

#: Frames drawn per tracklet (evenly spaced over it), tracklets drawn per montage, label width (px).
MONTAGE_FRAMES = 6
MONTAGE_MAX_ROWS = 24
LABEL_WIDTH = 190
FRAME_HEIGHT, FRAME_WIDTH = 96, 48
#: Height of the title band (two text lines), width of the red mark of an off-majority row, text line height (px).
TITLE_HEIGHT, MARK_WIDTH, LINE = 30, 5, 13
OFF_MAJORITY = (210, 40, 40)


def montage_rows(labels: np.ndarray, cluster_id: int, *, max_rows: int = MONTAGE_MAX_ROWS,
                 source: str = "this file") -> np.ndarray:
    """Rows (tracklets of the features file) of one cluster, at most `max_rows`, in index order.

    Args:
        source: the clusters file as the error names it.

    Raises:
        AuxReidError: the cluster does not exist.
    """
    labels = np.asarray(labels)
    count = int(labels.max()) + 1 if labels.size else 0
    if not 0 <= cluster_id < count:
        raise AuxReidError(f"cluster {cluster_id} does not exist; {source} has clusters 0..{count - 1}"
                           if count else f"cluster {cluster_id} does not exist; {source} has no clusters")
    return np.flatnonzero(labels == cluster_id)[:max_rows]


def frame_picks(num_frames: int, *, count: int = MONTAGE_FRAMES) -> np.ndarray:
    """Up to `count` evenly spaced frame positions of a tracklet, first and last included."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64))


def majority_id(ids: np.ndarray) -> int | None:
    """The most frequent known (>= 0) person id, the smallest on ties; None when no id is known."""
    known = np.asarray(ids)[np.asarray(ids) >= 0]
    if not known.size:
        return None
    values, counts = np.unique(known, return_counts=True)
    return int(values[np.argmax(counts)])


def montage_title(ids: np.ndarray, *, cluster_id: int, shown: int) -> tuple[str, str]:
    """The two title lines: size and purity, then the off-majority count and whether rows were cut.

    Args:
        ids: (size,) person ids of every member (-1 unknown), not only the drawn ones.
        cluster_id: the cluster.
        shown: rows drawn.
    """
    ids = np.asarray(ids)
    size, majority = len(ids), majority_id(ids)
    known = ids[ids >= 0]
    if majority is None:
        first, off = f"cluster {cluster_id}: {size} tracklets, person ids unknown (no purity)", "no id known"
    else:
        same = int((known == majority).sum())
        first = f"cluster {cluster_id}: {size} tracklets, purity {same / known.size:.3f} (majority id {majority})"
        off = f"red: {known.size - same} of other ids" if known.size > same else "every known id is the majority's"
    cut = f"rows cut: {shown} of {size} shown" if shown < size else "all rows shown"
    return first, f"{off}; {cut}"


def row_label(tracklet, row: int, *, camera_labels: tuple[str, ...]) -> tuple[str, ...]:
    """The lines beside a member's frames: its name (and row), camera label and id, then its first and last
    frame's time when the dataset has times, one per line so a long timestamp is never cut off.

    Args:
        tracklet: the member.
        row: its row in the clusters file.
        camera_labels: the dataset's camera labels.
    """
    lines = (f"{tracklet.name} (#{row})", f"cam {camera_text(camera_labels, tracklet.camera)}  id {tracklet.person_id}")
    if tracklet.times is None:
        return lines
    return (*lines, format_time(tracklet.times[0]), f"to {format_time(tracklet.times[-1])}")


def montage(artifact: Artifact, cluster_id: int, out: str | Path) -> Path:
    """Draw cluster `cluster_id` of a clusters.h5 under its `montage_title`: one row per tracklet (at most
    MONTAGE_MAX_ROWS), rows of another id than the majority marked red.

    The dataset is found through the config stored in the artifact's provenance, and rows through
    its `tracklet_index` (train split indices).

    Returns:
        The PNG written (atomically).

    Raises:
        AuxReidError: unknown cluster, missing dataset or unreadable frames.
    """
    labels = artifact["labels"]
    rows = montage_rows(labels, cluster_id)
    config = config_from_artifact(artifact, hint="its dataset cannot be found; re-run `auxreid cluster`")
    dataset = load_dataset(config.data)
    tracklets = dataset.train
    index = artifact["tracklet_index"]
    members = [tracklets[int(index[row])] for row in np.flatnonzero(labels == cluster_id)]
    ids = np.array([t.person_id for t in members], dtype=np.int64)
    majority = majority_id(ids)
    font = ImageFont.load_default()
    height = TITLE_HEIGHT + max(len(rows), 1) * FRAME_HEIGHT
    canvas = Image.new("RGB", (LABEL_WIDTH + MONTAGE_FRAMES * FRAME_WIDTH, height), "white")
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(montage_title(ids, cluster_id=cluster_id, shown=len(rows))):
        draw.text((4, 2 + 13 * number), line, fill="black", font=font)
    for position, row in enumerate(rows):
        tracklet = tracklets[int(index[row])]
        top = TITLE_HEIGHT + position * FRAME_HEIGHT
        off = majority is not None and 0 <= tracklet.person_id != majority
        if off:
            draw.rectangle((0, top, MARK_WIDTH - 1, top + FRAME_HEIGHT - 1), fill=OFF_MAJORITY)
        lines = row_label(tracklet, int(row), camera_labels=dataset.camera_labels)
        for number, line in enumerate(lines):
            draw.text((MARK_WIDTH + 4, top + (FRAME_HEIGHT - LINE * len(lines)) // 2 + LINE * number),
                      fit_text(line, font, LABEL_WIDTH - MARK_WIDTH - 8), fill=OFF_MAJORITY if off else "black",
                      font=font)
        for column, pick in enumerate(frame_picks(len(tracklet.frames))):
            pixels = read_frame(tracklet.frames[pick], height=FRAME_HEIGHT, width=FRAME_WIDTH)
            canvas.paste(Image.fromarray(pixels), (LABEL_WIDTH + column * FRAME_WIDTH, top))
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return out

"""How a camera, a tracklet's time and a time gap read for people: one spelling for every figure, page, export
and summary.

Cameras are shown by the dataset's own label (a manifest's "lobby", Duke's "C6"), never by the 0-based index
the pipeline computes with, so a camera has one name everywhere. Times are shown as a date and clock time when
they look like epoch timestamps (a manifest written from a recording system), else as seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

import numpy as np

#: Times from this many seconds on (2001-09-09 UTC) are read as Unix epoch timestamps; a clock of seconds since
#: the start of a recording (Duke's, the synthetic network's) stays far below it.
EPOCH_FROM = 1e9


def camera_labels_of(data: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """The `camera_labels` dataset of an artifact's datasets (index -> label), () for a file written before
    auxreid stored them."""
    if "camera_labels" not in data:
        return ()
    return tuple(str(label) for label in np.asarray(data["camera_labels"]).tolist())


def camera_text(labels: Sequence[str], camera: int) -> str:
    """Camera `camera`'s label; its index as text when `labels` does not name it (a file without labels)."""
    return labels[camera] if 0 <= camera < len(labels) else str(camera)


def is_epoch(seconds: float) -> bool:
    """Whether a time is an epoch timestamp (see EPOCH_FROM) rather than seconds on a recording's own clock."""
    return math.isfinite(seconds) and seconds >= EPOCH_FROM


def format_time(seconds: float) -> str:
    """'2026-03-01 14:02:07' (UTC, whole seconds) for an epoch timestamp, else '12.4 s'."""
    if is_epoch(seconds):
        return datetime.fromtimestamp(math.floor(seconds), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{seconds:.1f} s"


def format_span(start: float, end: float) -> str:
    """A tracklet's span: '2026-03-01 14:02:07–14:02:11' (the date once when both ends share it), '12.4–15.0 s'."""
    if is_epoch(start) and is_epoch(end):
        first, last = format_time(start), format_time(end)
        return f"{first}–{last[11:] if first[:10] == last[:10] else last}"
    if is_epoch(start) or is_epoch(end):
        return f"{format_time(start)}–{format_time(end)}"
    return f"{start:.1f}–{end:.1f} s"


def format_gap(gap: float | None) -> str:
    """The time from one span to another: '+12.3 s' after, '-4.0 s' before, 'overlap'; '' when times are unknown."""
    if gap is None:
        return ""
    return "overlap" if gap == 0 else f"{gap:+.1f} s"


def fit_text(text: str, font, width: float) -> str:
    """`text`, cut with '…' so that it fits `width` pixels in `font` (anything with PIL's `getlength`): a figure's
    caption then ends at its tile instead of running into the next one."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"

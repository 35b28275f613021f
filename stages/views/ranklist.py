"""Rank-list picture of queries of an eval.h5: per query a row of its frames, then its top gallery tracklets.

By default the queries with the lowest AP, worst first: where the model fails is what a person
wants to see. Each row says the query's row, name, id, camera and AP; each gallery tile its rank, id,
name, camera, distance and time gap to the query (cameras by their labels, as everywhere). Borders say whether a gallery tracklet is right
(green: same person), wrong (red) or ignored by the protocol (grey: same person in the query's
camera). Frames are read through the dataset named in the artifact's config, so the images must be
where that config says.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stages.artifacts.h5 import Artifact, atomic_path
from stages.artifacts.readers import config_from_artifact
from stages.config import Config
from stages.data import load_dataset
from stages.data.base import DatasetSplit, Tracklet
from stages.data.frames import read_frame
from stages.errors import AuxReidError
from stages.views.labels import camera_text, fit_text, format_gap

#: Gallery tracklets drawn per query, query frames shown before them, queries drawn by default.
RANKLIST_TOP, RANKLIST_QUERY_FRAMES, RANKLIST_COUNT = 10, 3, 6
#: Text line height and caption lines under a gallery tile (rank/id, name, camera, distance, time gap).
LINE, CAPTION_LINES = 13, 5

#: Tile size in pixels, border width, gap between tiles.
TILE_HEIGHT, TILE_WIDTH, BORDER, GAP = 128, 64, 4, 6

COLOURS = {"right": (40, 170, 60), "wrong": (210, 40, 40), "ignored": (150, 150, 150), "query": (40, 90, 220)}
LEGEND = ("borders: blue query, green same id, red other id, grey same id and camera (ignored); "
          "d: distance, time gap from the query's span")


def artifact_config(artifact: Artifact) -> Config:
    """The config an artifact was made with (its provenance YAML)."""
    return config_from_artifact(artifact, hint="it cannot locate the dataset's images")


def verdicts(query_id: int, query_cam: int, gallery_ids: np.ndarray, gallery_cams: np.ndarray) -> list[str]:
    """'right' / 'wrong' / 'ignored' per ranked gallery item; 'wrong' everywhere when the query id is unknown."""
    same = (gallery_ids == query_id) & (query_id >= 0)
    ignored = same & (gallery_cams == query_cam)
    return ["ignored" if i else ("right" if s else "wrong") for s, i in zip(same, ignored)]


def worst_queries(ap: np.ndarray, count: int) -> np.ndarray:
    """The `count` evaluated queries of lowest AP, worst first (ties by row); skipped queries (NaN AP) excluded."""
    ap = np.asarray(ap, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(ap))
    return valid[np.argsort(ap[valid], kind="stable")][:count]


def choose_queries(ap: np.ndarray, *, queries: Sequence[int] | None = None, count: int = RANKLIST_COUNT,
                   source: str = "") -> np.ndarray:
    """The query rows to draw: the given ones in order, else the `count` worst by AP.

    Raises:
        AuxReidError: a row out of range, a count below 1, or no evaluated query.
    """
    n = len(ap)
    if queries:
        wrong = [q for q in queries if not 0 <= q < n]
        if wrong:
            raise AuxReidError(f"--ranklist {wrong[0]} is out of range; {source} has queries 0..{n - 1}")
        return np.array(list(dict.fromkeys(queries)), dtype=np.int64)
    if count < 1:
        raise AuxReidError(f"--count must be >= 1, got {count}")
    chosen = worst_queries(ap, count)
    if not chosen.size:
        raise AuxReidError(f"{source} has no evaluated query (every AP is NaN); give query rows with --ranklist Q,Q")
    return chosen


def parse_queries(text: str) -> list[int] | None:
    """`--ranklist` text: 'worst' -> None (the worst-AP queries), '3,17' -> [3, 17].

    Raises:
        AuxReidError: anything else.
    """
    if text.strip().lower() == "worst":
        return None
    try:
        rows = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        rows = []
    if not rows:
        raise AuxReidError(f"--ranklist takes 'worst' or query rows such as 3,17; got '{text}'")
    return rows


def time_gap(query: Tracklet, gallery: Tracklet) -> float | None:
    """Seconds from the query's span to the gallery's: > 0 after it, < 0 before it, 0 overlapping; None without times."""
    if query.times is None or gallery.times is None:
        return None
    if gallery.times[0] > query.times[-1]:
        return gallery.times[0] - query.times[-1]
    if gallery.times[-1] < query.times[0]:
        return gallery.times[-1] - query.times[0]
    return 0.0


def query_caption(row: int, name: str, person_id: int, camera: str, ap: float) -> str:
    """'query 12 (0005/0005C2T0001)  id 5  cam C2  AP 0.314' (AP 'skipped' when the query had no valid match).

    Args:
        camera: the query's camera label.
    """
    shown = f"{ap:.3f}" if np.isfinite(ap) else "skipped"
    return f"query {row} ({name})  id {person_id}  cam {camera}  AP {shown}"


def gallery_caption(rank: int, name: str, person_id: int, camera: str, distance: float,
                    gap: float | None) -> tuple[str, ...]:
    """Lines under a gallery tile: '#rank id P', its name, 'cam LABEL', 'd DIST', and the time gap ('+12.3 s',
    'overlap') when known."""
    lines = (f"#{rank} id {person_id}", name, f"cam {camera}", f"d {distance:.4g}")
    return lines if gap is None else (*lines, format_gap(gap))


def _tile(path: str, colour: tuple[int, int, int]) -> Image.Image:
    inner = Image.fromarray(read_frame(path, height=TILE_HEIGHT, width=TILE_WIDTH))
    framed = Image.new("RGB", (TILE_WIDTH + 2 * BORDER, TILE_HEIGHT + 2 * BORDER), colour)
    framed.paste(inner, (BORDER, BORDER))
    return framed


def _middle(frames: tuple[str, ...]) -> str:
    return frames[len(frames) // 2]


def _load(artifact: Artifact) -> DatasetSplit:
    config = artifact_config(artifact)
    try:
        dataset = load_dataset(config.data)
    except AuxReidError as exc:
        raise AuxReidError(f"the rank list needs the dataset's images, but loading them failed: {exc}") from None
    if dataset.fingerprint != artifact.provenance.fingerprint:
        raise AuxReidError(
            f"the dataset at {config.data.root} (fingerprint {dataset.fingerprint}) is not the one {artifact.path} "
            f"was evaluated on ({artifact.provenance.fingerprint})"
        )
    return dataset


def _query_row(artifact: Artifact, dataset: DatasetSplit, q: int, font: ImageFont.ImageFont) -> Image.Image:
    """One query: caption line, its frames (blue), then its ranked gallery tiles with their captions."""
    query = dataset.query[int(artifact["query/tracklet_index"][q])]
    ranked = artifact["topk_index"][q, :RANKLIST_TOP]
    distances = artifact["topk_distance"][q, :RANKLIST_TOP]
    gallery_rows = artifact["gallery/tracklet_index"][ranked]
    ids, cams = artifact["gallery/person_id"][ranked], artifact["gallery/camera"][ranked]
    q_id, q_cam = int(artifact["query/person_id"][q]), int(artifact["query/camera"][q])
    marks = verdicts(q_id, q_cam, ids, cams)
    labels = dataset.camera_labels
    picks = np.linspace(0, len(query.frames) - 1, min(RANKLIST_QUERY_FRAMES, len(query.frames))).round().astype(int)
    tiles = [(_tile(query.frames[i], COLOURS["query"]), ()) for i in picks]
    for rank, (row, mark) in enumerate(zip(gallery_rows, marks), start=1):
        gallery = dataset.gallery[int(row)]
        caption = gallery_caption(rank, gallery.name, int(ids[rank - 1]), camera_text(labels, int(cams[rank - 1])),
                                  float(distances[rank - 1]), time_gap(query, gallery))
        tiles.append((_tile(_middle(gallery.frames), COLOURS[mark]), caption))
    tile_w, tile_h = tiles[0][0].size
    width = len(tiles) * (tile_w + GAP) + GAP + 3 * GAP
    canvas = Image.new("RGB", (width, LINE + tile_h + CAPTION_LINES * LINE + 2 * GAP), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 2), query_caption(q, query.name, q_id, camera_text(labels, q_cam), float(artifact["ap"][q])),
              fill="black", font=font)
    x = GAP
    for number, (tile, caption) in enumerate(tiles):
        canvas.paste(tile, (x, LINE + GAP))
        for line_number, line in enumerate(caption):
            draw.text((x + 1, LINE + GAP + tile_h + 1 + line_number * LINE), fit_text(line, font, tile.width + GAP - 2),
                      fill="black", font=font)
        x += tile.width + GAP + (3 * GAP if number == len(picks) - 1 else 0)
    return canvas


def ranklist(
    artifact: Artifact,
    out_path: str | Path,
    *,
    queries: Sequence[int] | None = None,
    count: int = RANKLIST_COUNT,
) -> Path:
    """Draw queries of an eval.h5 with their top-10 gallery tracklets, one row per query, to a PNG.

    Args:
        artifact: an eval.h5 (schema eval).
        out_path: PNG to write (atomically).
        queries: rows of `query/` to draw, in this order; default the `count` worst by AP.
        count: how many worst queries to draw when `queries` is not given.

    Returns:
        out_path.

    Raises:
        AuxReidError: a query out of range, dataset not loadable, or frames missing.
    """
    chosen = choose_queries(artifact["ap"], queries=queries, count=count, source=str(artifact.path))
    dataset = _load(artifact)
    font = ImageFont.load_default()
    rows = [_query_row(artifact, dataset, int(q), font) for q in chosen]
    width = max(max(row.width for row in rows), int(font.getlength(LEGEND)) + 2 * GAP)
    canvas = Image.new("RGB", (width, LINE + GAP + sum(row.height for row in rows)), "white")
    ImageDraw.Draw(canvas).text((GAP, 2), LEGEND, fill="black", font=font)
    y = LINE + GAP
    for row in rows:
        canvas.paste(row, (0, y))
        y += row.height
    out_path = Path(out_path)
    with atomic_path(out_path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return out_path

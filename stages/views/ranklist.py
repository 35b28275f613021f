"""Rank-list picture of one query of an eval.h5: its frames, then its top gallery tracklets in a row.

Borders say whether each gallery tracklet is right (green: same person), wrong (red) or ignored by the
protocol (grey: same person in the query's camera). Frames are read through the dataset named in
the artifact's config, so the images must be where that config says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stages.artifacts.h5 import Artifact, atomic_path
from stages.artifacts.readers import config_from_artifact
from stages.config import Config
from stages.errors import AuxReidError
from stages.data.frames import read_frame

#: Gallery tracklets drawn per query, and query frames shown before them.
RANKLIST_TOP, RANKLIST_QUERY_FRAMES = 10, 3

#: Tile size in pixels, border width, gap between tiles.
TILE_HEIGHT, TILE_WIDTH, BORDER, GAP = 128, 64, 4, 6

COLOURS = {"right": (40, 170, 60), "wrong": (210, 40, 40), "ignored": (150, 150, 150), "query": (40, 90, 220)}


def artifact_config(artifact: Artifact) -> Config:
    """The config an artifact was made with (its provenance YAML)."""
    return config_from_artifact(artifact, hint="it cannot locate the dataset's images")


def verdicts(query_id: int, query_cam: int, gallery_ids: np.ndarray, gallery_cams: np.ndarray) -> list[str]:
    """'right' / 'wrong' / 'ignored' per ranked gallery item; 'wrong' everywhere when the query id is unknown."""
    same = (gallery_ids == query_id) & (query_id >= 0)
    ignored = same & (gallery_cams == query_cam)
    return ["ignored" if i else ("right" if s else "wrong") for s, i in zip(same, ignored)]


def _tile(path: str, colour: tuple[int, int, int]) -> Image.Image:
    inner = Image.fromarray(read_frame(path, height=TILE_HEIGHT, width=TILE_WIDTH))
    framed = Image.new("RGB", (TILE_WIDTH + 2 * BORDER, TILE_HEIGHT + 2 * BORDER), colour)
    framed.paste(inner, (BORDER, BORDER))
    return framed


def _middle(frames: tuple[str, ...]) -> str:
    return frames[len(frames) // 2]


def ranklist(artifact: Artifact, query_index: int, out_path: str | Path) -> Path:
    """Draw query `query_index` (a row of the eval.h5) and its top-10 gallery tracklets to a PNG.

    Args:
        artifact: an eval.h5 (schema eval).
        query_index: row of `query/` in the artifact.
        out_path: PNG to write (atomically).

    Returns:
        out_path.

    Raises:
        AuxReidError: query index out of range, dataset not loadable, or frames missing.
    """
    from stages.data import load_dataset

    topk = artifact["topk_index"]
    if not 0 <= query_index < len(topk):
        raise AuxReidError(f"--ranklist {query_index} is out of range; {artifact.path} has queries 0..{len(topk) - 1}")
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
    query = dataset.query[int(artifact["query/tracklet_index"][query_index])]
    ranked = topk[query_index, :RANKLIST_TOP]
    gallery_rows = artifact["gallery/tracklet_index"][ranked]
    marks = verdicts(
        int(artifact["query/person_id"][query_index]), int(artifact["query/camera"][query_index]),
        artifact["gallery/person_id"][ranked], artifact["gallery/camera"][ranked],
    )
    picks = np.linspace(0, len(query.frames) - 1, min(RANKLIST_QUERY_FRAMES, len(query.frames))).round().astype(int)
    tiles = [_tile(query.frames[i], COLOURS["query"]) for i in picks]
    tiles += [_tile(_middle(dataset.gallery[int(row)].frames), COLOURS[mark]) for row, mark in zip(gallery_rows, marks)]
    width = sum(t.width for t in tiles) + GAP * (len(tiles) + 1) + 3 * GAP
    canvas = Image.new("RGB", (width, tiles[0].height + 2 * GAP), (255, 255, 255))
    x = GAP
    for number, tile in enumerate(tiles):
        canvas.paste(tile, (x, GAP))
        x += tile.width + GAP + (3 * GAP if number == len(picks) - 1 else 0)
    out_path = Path(out_path)
    with atomic_path(out_path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return out_path

"""`auxreid synth`: the simulated camera network (`stages.data.synth.world`) drawn and written to disk.

Frames are drawn by `stages.data.synth.render` and written in the exact on-disk layout of
DukeMTMC-VideoReID (frame numbers on per-camera clocks with offsets) or MARS (`info/*.mat`), plus
`synth.json` with the ground truth. The output folder is staged and renamed into place whole.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from stages.auxinfo.spans import Spans
from stages.auxinfo.toc import overlap_pairs, overlap_pairs_between
from stages.data.base import SPLITS
from stages.data.synth import render as synth_render
from stages.data.synth.world import (
    FPS,
    FRAME_STEP,
    GALLERY,
    QUERY,
    TRAIN,
    SynthSpec,
    World,
    _rng,
    simulate,
    validate_spec,
)
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress

#: MATLAB v5 descriptive header text (116 bytes) written in place of scipy's timestamped one.
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by auxreid synth".ljust(116, b" ")
JPEG_QUALITY = 90
#: Frames drawn per vectorised batch (bounds memory; fixed so the output does not depend on it).
RENDER_CHUNK = 512


@dataclass(frozen=True)
class Written:
    """What goes on disk for every tracklet: drawing inputs and the relative path of every frame."""

    ident: np.ndarray  # (t,) appearance row (person index; junk borrows one)
    camera: np.ndarray  # (t,)
    num_frames: np.ndarray  # (t,)
    junk: np.ndarray  # (t,) bool
    paths: list[list[str]]  # per tracklet, relative frame paths in order


def duke_layout(world: World) -> Written:
    """`<split>/<pid>/<tracklet>/<pid>C<cam>F<index>X<local frame>.jpg`, frames every FRAME_STEP."""
    t = world.tracklets
    local = t.start - world.offsets[t.camera] + 1
    paths = []
    for row in range(len(t.person)):
        pid, cam = int(world.pids[t.person[row]]), int(t.camera[row]) + 1
        folder = f"{SPLITS[t.split[row]]}/{pid:04d}/{t.step[row] + 1:04d}"
        paths.append([f"{folder}/{pid:04d}C{cam}F{k + 1:04d}X{local[row] + k * FRAME_STEP:05d}.jpg"
                      for k in range(int(t.num_frames[row]))])
    return Written(ident=t.person, camera=t.camera, num_frames=t.num_frames,
                   junk=np.zeros(len(t.person), dtype=bool), paths=paths)


def _mars_pid(pid: int) -> str:
    return "00-1" if pid < 0 else f"{pid:04d}"


def mars_tables(world: World, rng: np.random.Generator) -> tuple[Written, dict[str, np.ndarray], list[str], list[str]]:
    """MARS layout: bbox_train/ and bbox_test/ frames plus the info/ name lists and track tables.

    Test tracks are the test ids' tracklets, the distractors' (written as person 0) and a few junk
    tracks (person -1, bad detections); every list is sorted by name like the real dataset.

    Returns:
        (written, {"track_train_info", "track_test_info", "query_IDX"} 1-based, train names, test names)
    """
    spec, t = world.spec, world.tracklets
    junk = spec.junk
    pid = world.pids[t.person].copy()
    pid[t.person >= spec.ids + spec.test_ids] = 0
    pid = np.concatenate([pid, np.full(junk, -1)])
    camera = np.concatenate([t.camera, rng.integers(0, spec.cams, junk)])
    frames = np.concatenate([t.num_frames, rng.integers(spec.min_frames, spec.max_frames + 1, junk)])
    split = np.concatenate([t.split, np.full(junk, GALLERY)])
    ident = np.concatenate([t.person, rng.integers(0, len(world.pids), junk)])
    counter: dict[tuple[int, int], int] = {}
    stems = []
    for p, c in zip(pid.tolist(), camera.tolist()):
        counter[p, c] = counter.get((p, c), 0) + 1
        stems.append(f"{_mars_pid(p)}C{c + 1}T{counter[p, c]:04d}")
    order = sorted(range(len(stems)), key=lambda i: (split[i] != TRAIN, stems[i]))
    paths, names = [], {TRAIN: [], GALLERY: []}
    rows: dict[int, list[tuple[int, int, int, int]]] = {TRAIN: [], GALLERY: []}
    query_rows = []
    for i in order:
        part = TRAIN if split[i] == TRAIN else GALLERY
        folder = "bbox_train" if part == TRAIN else "bbox_test"
        frame_names = [f"{stems[i]}F{k + 1:03d}.jpg" for k in range(int(frames[i]))]
        first = len(names[part]) + 1
        names[part].extend(frame_names)
        rows[part].append((first, len(names[part]), int(pid[i]), int(camera[i]) + 1))
        if split[i] == QUERY:
            query_rows.append(len(rows[part]))
        paths.append([f"{folder}/{_mars_pid(int(pid[i]))}/{name}" for name in frame_names])
    order = np.array(order)
    written = Written(ident=ident[order], camera=camera[order], num_frames=frames[order],
                      junk=(pid[order] < 0), paths=paths)
    tables = {
        "track_train_info": np.array(rows[TRAIN], dtype=np.float64).reshape(-1, 4),
        "track_test_info": np.array(rows[GALLERY], dtype=np.float64).reshape(-1, 4),
        "query_IDX": np.array(query_rows, dtype=np.float64)[None, :],
    }
    return written, tables, names[TRAIN], names[GALLERY]


def mat_bytes(key: str, value: np.ndarray) -> bytes:
    """A MATLAB v5 file holding one array, with a fixed header (scipy stamps the time, which would
    make two runs differ)."""
    buffer = io.BytesIO()
    savemat(buffer, {key: value})
    return MAT_HEADER + buffer.getvalue()[len(MAT_HEADER):]


def describe(world: World) -> dict:
    """The ground truth written to synth.json: settings, clocks, transit model, counts, TOC overlaps."""
    spec, t, g = world.spec, world.tracklets, world.graph
    transit = {}
    for (a, b), mean, std in zip(g.edges.tolist(), g.mean_s.tolist(), g.std_s.tolist()):
        transit[f"{a}-{b}"] = transit[f"{b}-{a}"] = {"mean_s": round(mean, 4), "std_s": round(std, 4)}
    counts = {}
    for code, name in enumerate(SPLITS):
        chosen = t.split == code
        counts[name] = {"ids": int(len(np.unique(t.person[chosen]))), "tracklets": int(chosen.sum()),
                        "frames": int(t.num_frames[chosen].sum())}
    train, query, gallery = (t.split == code for code in (TRAIN, QUERY, GALLERY))
    end = t.end
    return {
        "layout": spec.layout,
        "seed": spec.seed,
        "ids": spec.ids,
        "test_ids": spec.test_ids,
        "distractors": spec.distractors,
        "junk": spec.junk,
        "cams": spec.cams,
        "size": [spec.height, spec.width],
        "tracklets_per_id": spec.tracklets_per_id,
        "frames_per_tracklet": [spec.min_frames, spec.max_frames],
        "fps": FPS,
        "frame_step": FRAME_STEP,
        "has_times": spec.layout == "duke",
        "camera_offsets": [int(o) for o in world.offsets],
        "arrival_window_s": round(world.window_s, 3),
        "graph_edges": g.edges.tolist(),
        "transit": transit,
        "transit_gap": "start of the next tracklet minus end of the previous one, seconds on the global clock",
        "counts": counts,
        "toc": {
            "train_pairs": len(overlap_pairs(Spans(t.camera[train], t.start[train], end[train]))),
            "query_gallery_pairs": len(overlap_pairs_between(Spans(t.camera[query], t.start[query], end[query]),
                                                             Spans(t.camera[gallery], t.start[gallery], end[gallery]))),
        },
    }


def render_tracklets(written: Written, spec: SynthSpec, root: Path, progress: Progress) -> None:
    """Draw every frame, RENDER_CHUNK at a time, and save it as a JPEG under `root`."""
    size = {"height": spec.height, "width": spec.width}
    look = synth_render.sample_appearance(spec.ids + spec.test_ids + spec.distractors, _rng(spec.seed, 5))
    cameras = synth_render.sample_cameras(spec.cams, _rng(spec.seed, 6), **size)
    table = synth_render.frame_table(written.ident, written.camera, written.num_frames, cameras,
                                     _rng(spec.seed, 7), junk=written.junk, **size)
    paths = [path for frames in written.paths for path in frames]
    for folder in sorted({str(Path(path).parent) for path in paths}):
        (root / folder).mkdir(parents=True, exist_ok=True)
    progress.start("render", total=len(paths))
    for chunk, first in enumerate(range(0, len(paths), RENDER_CHUNK)):
        rows = slice(first, first + RENDER_CHUNK)
        part = synth_render.FrameTable(**{name: getattr(table, name)[rows] for name in table.__dataclass_fields__})
        images = synth_render.render(part, look, cameras, _rng(spec.seed, 100 + chunk), **size)
        for image, path in zip(images, paths[rows]):
            Image.fromarray(image).save(root / path, format="JPEG", quality=JPEG_QUALITY)
        progress.advance("render", len(images))
    progress.done("render", f"{len(paths)} frames")


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1) + "\n")


def _replace_dir(staging: Path, out: Path) -> None:
    """Move the finished `staging` folder to `out`, removing a previous synthetic dataset there."""
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)


def _check_out(out: Path, force: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not force:
        raise AuxReidError(f"{out} already exists; pass --force to replace it or choose another --out")
    if not (out / "synth.json").is_file():
        raise AuxReidError(f"refusing to replace {out}: it is not a synthetic dataset (no synth.json in it)")


def run_synth(out: str | Path, *, layout: str = "duke", seed: int = 0, force: bool = False,
              progress: Progress | None = None, **settings: int) -> Path:
    """Generate the synthetic camera network into `out` (written beside it, then renamed into place).

    Args:
        out: dataset root to create.
        layout: "duke" or "mars".
        seed: fixes everything; the same seed gives byte-identical files.
        force: replace an existing synthetic dataset at `out`.
        progress: receives per-frame progress.
        **settings: other SynthSpec fields (ids, test_ids, distractors, cams, height, width,
            tracklets_per_id, min_frames, max_frames).

    Returns:
        The dataset root; its `synth.json` holds the settings, clocks, transit model and counts.

    Raises:
        AuxReidError: a setting out of range, or `out` exists (without --force / not synthetic).
    """
    unknown = sorted(set(settings) - set(SynthSpec.__dataclass_fields__))
    if unknown:
        raise AuxReidError(f"synth: unknown setting(s) {', '.join(unknown)}")
    spec = SynthSpec(layout=layout, seed=seed, **settings)
    validate_spec(spec)
    out = Path(out)
    _check_out(out, force)
    progress = progress or NullProgress()
    world = simulate(spec)
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        info = describe(world)
        if layout == "duke":
            written = duke_layout(world)
        else:
            written, tables, train_names, test_names = mars_tables(world, _rng(seed, 8))
            (staging / "info").mkdir()
            (staging / "info" / "train_name.txt").write_text("\n".join(train_names) + "\n")
            (staging / "info" / "test_name.txt").write_text("\n".join(test_names) + "\n")
            for key, value in tables.items():
                name = {"track_train_info": "tracks_train_info", "track_test_info": "tracks_test_info"}.get(key, key)
                (staging / "info" / f"{name}.mat").write_bytes(mat_bytes(key, value))
            info["counts"]["junk_tracklets"] = int(written.junk.sum())
        render_tracklets(written, spec, staging, progress)
        _write_json(staging / "synth.json", info)
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out

"""The synthetic camera network (DESIGN section 3): people walking between cameras, written as Duke or MARS.

Identities start at random times and cameras and walk a random path on a camera graph (a ring with
chords); each edge has its own transit time ~ Normal(mean, std), the gap from the end of one tracklet
to the start of the next. Many people share the time window, so cameras see several people at once
(the cannot-links of TOC) and one person is never in two places at once. Frames are drawn by
`stages.data.synth.render` and written in the exact on-disk layout of DukeMTMC-VideoReID (frame numbers
on per-camera clocks with offsets) or MARS (`info/*.mat`), plus `synth.json` with the ground truth.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from stages.data.synth import render as synth_render
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress

LAYOUTS = ("duke", "mars")
#: MATLAB v5 descriptive header text (116 bytes) written in place of scipy's timestamped one.
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by auxreid synth".ljust(116, b" ")
#: Video frame rate and sampling step of the frames written, as in DukeMTMC-VideoReID.
FPS = 59.94
FRAME_STEP = 12
#: Transit time of a camera-graph edge: mean ~ Uniform(range), std = fraction * mean + floor.
TRANSIT_MEAN_RANGE_S = (10.0, 60.0)
TRANSIT_STD_FRACTION = 0.1
TRANSIT_STD_FLOOR_S = 1.5
#: Shortest possible transit (seconds): a person needs time to leave one view and enter another.
TRANSIT_MIN_S = 1.0
#: People arrive uniformly over (people x this / cameras) seconds, which sets how crowded cameras are.
ARRIVAL_S_PER_PERSON_CAMERA = 16.0
#: Largest per-camera clock offset (frames) and the JPEG quality of the written frames.
MAX_CLOCK_OFFSET = 40000
JPEG_QUALITY = 90
#: Frames drawn per vectorised batch (bounds memory; fixed so the output does not depend on it).
RENDER_CHUNK = 512
#: Split codes of the tracklet table.
TRAIN, QUERY, GALLERY = 0, 1, 2
SPLIT_NAMES = ("train", "query", "gallery")


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. Identity counts are people; every person walks `tracklets_per_id` +- 2 steps.

    Attributes:
        layout: "duke" or "mars" on-disk layout.
        seed: fixes every random draw; the same seed gives byte-identical files.
        ids: training identities.
        test_ids: test identities (one query tracklet each, the rest in the gallery).
        distractors: gallery-only identities (MARS layout: written with person id 0).
        cams: cameras in the network, 2..9.
        height, width: crop size in pixels.
        tracklets_per_id: mean number of tracklets (walk steps) per train/test identity.
        min_frames, max_frames: frames per tracklet, drawn uniformly.
    """

    layout: str = "duke"
    seed: int = 0
    ids: int = 60
    test_ids: int = 40
    distractors: int = 20
    cams: int = 8
    height: int = 64
    width: int = 32
    tracklets_per_id: int = 6
    min_frames: int = 8
    max_frames: int = 24

    @property
    def junk(self) -> int:
        """MARS junk tracklets (person id -1) in the test set, like the real dataset's bad detections."""
        return max(1, self.test_ids // 8) if self.layout == "mars" else 0


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'HxW' (e.g. '64x32') into (height, width).

    Raises:
        AuxReidError: the text is not two positive integers joined by 'x'.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise AuxReidError(f"size '{text}' is not HEIGHTxWIDTH; write it like 64x32")
    return int(match.group(1)), int(match.group(2))


def parse_frames(text: str) -> tuple[int, int]:
    """Parse 'MIN-MAX' (e.g. '8-24') or a single 'N' into the (min, max) frames per tracklet.

    Raises:
        AuxReidError: the text is not one or two positive integers joined by '-'.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not match:
        raise AuxReidError(f"frames '{text}' is not MIN-MAX; write it like 8-24 (or one number)")
    low = int(match.group(1))
    return low, int(match.group(2) or low)


def validate_spec(spec: SynthSpec) -> None:
    """Check every setting once, at the entry; the generator below trusts them.

    Raises:
        AuxReidError: naming the setting, the value found and the allowed range.
    """
    rules = (
        ("layout", spec.layout in LAYOUTS, f"one of {', '.join(LAYOUTS)}"),
        ("cams", 2 <= spec.cams <= 9, "2..9 (a network needs two cameras; names hold one digit)"),
        ("ids", spec.ids >= 1, ">= 1"),
        ("test_ids", spec.test_ids >= 1, ">= 1"),
        ("distractors", spec.distractors >= 0, ">= 0"),
        ("tracklets_per_id", 2 <= spec.tracklets_per_id <= 50, "2..50 (a test id needs a query and a gallery tracklet)"),
        ("height", 16 <= spec.height <= 512, "16..512 pixels"),
        ("width", 8 <= spec.width <= 512, "8..512 pixels"),
        ("min_frames", 1 <= spec.min_frames <= spec.max_frames, f"1..max_frames ({spec.max_frames})"),
        ("max_frames", spec.max_frames <= 999, "<= 999 (MARS names hold three digits)"),
        ("seed", spec.seed >= 0, ">= 0"),
    )
    for name, ok, allowed in rules:
        if not ok:
            raise AuxReidError(f"synth: {name} is {getattr(spec, name)!r}; expected {allowed}")
    people = spec.ids + spec.test_ids + spec.distractors
    if people > 9999:
        raise AuxReidError(f"synth: {people} identities in all, but person ids have four digits (at most 9999)")


@dataclass(frozen=True)
class CameraGraph:
    """Undirected camera graph with one transit-time model per edge."""

    edges: np.ndarray  # (e, 2) camera pairs a < b
    mean_s: np.ndarray  # (e,)
    std_s: np.ndarray  # (e,)

    def neighbours(self, cams: int) -> np.ndarray:
        """(cams, max_degree) neighbour table padded with -1."""
        both = np.concatenate([self.edges, self.edges[:, ::-1]])
        degree = np.bincount(both[:, 0], minlength=cams)
        table = np.full((cams, degree.max()), -1, dtype=np.int64)
        order = np.argsort(both[:, 0], kind="stable")
        src, dst = both[order, 0], both[order, 1]
        slot = np.arange(len(src)) - np.searchsorted(src, src)
        table[src, slot] = dst
        return table

    def edge_index(self, cams: int) -> np.ndarray:
        """(cams, cams) edge row of every ordered camera pair, -1 where there is no edge."""
        index = np.full((cams, cams), -1, dtype=np.int64)
        rows = np.arange(len(self.edges))
        index[self.edges[:, 0], self.edges[:, 1]] = rows
        index[self.edges[:, 1], self.edges[:, 0]] = rows
        return index


def camera_graph(cams: int, rng: np.random.Generator) -> CameraGraph:
    """A ring of cameras plus chords across it (from 6 cameras), with a transit model per edge."""
    ring = [(c, (c + 1) % cams) for c in range(cams if cams > 2 else 1)]
    chords = [(c, c + cams // 2) for c in range(cams // 2)] if cams >= 6 else []
    edges = np.sort(np.array(ring + chords, dtype=np.int64), axis=1)
    edges = np.unique(edges, axis=0)
    mean = rng.uniform(*TRANSIT_MEAN_RANGE_S, len(edges))
    return CameraGraph(edges=edges, mean_s=mean, std_s=TRANSIT_STD_FRACTION * mean + TRANSIT_STD_FLOOR_S)


@dataclass(frozen=True)
class Tracklets:
    """The simulated tracklets, one row each, ordered by person then walk step."""

    person: np.ndarray  # (t,) 0-based person index
    step: np.ndarray  # (t,) 0-based step of that person's walk
    camera: np.ndarray  # (t,) 0-based camera
    start: np.ndarray  # (t,) first frame on the global clock (video frames)
    num_frames: np.ndarray  # (t,) frames written (one every FRAME_STEP video frames)
    split: np.ndarray  # (t,) TRAIN, QUERY or GALLERY

    @property
    def end(self) -> np.ndarray:
        """(t,) last frame on the global clock."""
        return self.start + (self.num_frames - 1) * FRAME_STEP


def walk_lengths(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """(people,) tracklets per person: train/test ids mean-centred on tracklets_per_id, distractors fewer."""
    t = spec.tracklets_per_id
    main = rng.integers(max(2, t - 2), t + 3, spec.ids + spec.test_ids)
    extra = rng.integers(max(1, t - 4), max(1, t - 2) + 1, spec.distractors)
    return np.concatenate([main, extra])


def simulate_walks(spec: SynthSpec, graph: CameraGraph, lengths: np.ndarray, rng: np.random.Generator,
                   *, clock_start: int) -> Tracklets:
    """Walk every person along the camera graph, one step at a time for all people together.

    A step never returns straight to the camera it came from (when it can avoid it); the next
    tracklet starts one transit time (drawn from the edge's model) after the previous one ends.

    Args:
        spec: counts and frame-length range.
        graph: camera graph with transit models.
        lengths: (people,) tracklets of each person.
        rng: source of every draw.
        clock_start: global frame of time zero.

    Returns:
        Tracklets (split set to TRAIN; `assign_splits` fills it).
    """
    people = len(lengths)
    steps = int(lengths.max())
    neighbours = graph.neighbours(spec.cams)
    edge_of = graph.edge_index(spec.cams)
    window = ARRIVAL_S_PER_PERSON_CAMERA * people / spec.cams
    camera = np.empty((people, steps), dtype=np.int64)
    start = np.empty((people, steps), dtype=np.int64)
    frames = rng.integers(spec.min_frames, spec.max_frames + 1, (people, steps))
    camera[:, 0] = rng.integers(0, spec.cams, people)
    start[:, 0] = clock_start + np.round(rng.uniform(0, window, people) * FPS).astype(np.int64)
    previous = np.full(people, -1)
    for s in range(1, steps):
        options = neighbours[camera[:, s - 1]]
        allowed = (options >= 0) & ((options != previous[:, None]) | ((options >= 0).sum(axis=1) == 1)[:, None])
        choice = np.argmax(np.where(allowed, rng.random(options.shape), -1.0), axis=1)
        camera[:, s] = options[np.arange(people), choice]
        edge = edge_of[camera[:, s - 1], camera[:, s]]
        transit = np.maximum(rng.normal(graph.mean_s[edge], graph.std_s[edge]), TRANSIT_MIN_S)
        end = start[:, s - 1] + (frames[:, s - 1] - 1) * FRAME_STEP
        start[:, s] = end + np.round(transit * FPS).astype(np.int64)
        previous = camera[:, s - 1]
    keep = np.arange(steps)[None, :] < lengths[:, None]
    person, step = np.nonzero(keep)
    return Tracklets(person=person, step=step, camera=camera[keep], start=start[keep],
                     num_frames=frames[keep], split=np.zeros(len(person), dtype=np.int64))


def assign_splits(tracklets: Tracklets, spec: SynthSpec, rng: np.random.Generator) -> Tracklets:
    """Train ids -> train; each test id -> one random query tracklet, the rest gallery; distractors -> gallery.

    People are numbered train ids first, then test ids, then distractors.
    """
    person = tracklets.person
    test = (person >= spec.ids) & (person < spec.ids + spec.test_ids)
    key = np.where(test, rng.random(len(person)), np.inf)
    order = np.lexsort((key, person))
    first = order[np.r_[True, person[order][1:] != person[order][:-1]]]
    split = np.where(person < spec.ids, TRAIN, GALLERY)
    query = first[test[first]]
    split[query] = QUERY
    return Tracklets(**{**_columns(tracklets), "split": split})


def _columns(tracklets: Tracklets) -> dict[str, np.ndarray]:
    return {name: getattr(tracklets, name) for name in ("person", "step", "camera", "start", "num_frames", "split")}


def count_overlaps(camera: np.ndarray, start: np.ndarray, end: np.ndarray) -> int:
    """Pairs of tracklets of one set that share a camera and overlap in time (TOC cannot-links)."""
    span = float(max(end.max(), start.max()) + 1) if len(start) else 1.0
    key_start = camera * span + start
    order = np.argsort(key_start, kind="stable")
    sorted_start = key_start[order]
    reach = np.searchsorted(sorted_start, (camera * span + end)[order], side="right")
    return int((reach - np.arange(len(order)) - 1).sum())


def count_cross_overlaps(camera_a: np.ndarray, start_a: np.ndarray, end_a: np.ndarray,
                         camera_b: np.ndarray, start_b: np.ndarray, end_b: np.ndarray) -> int:
    """Pairs (a, b) across two sets with the same camera and overlapping time spans."""
    span = float(max(end_a.max(initial=0), end_b.max(initial=0)) + 1)
    starts_b = np.sort(camera_b * span + start_b)
    ends_b = np.sort(camera_b * span + end_b)
    began = np.searchsorted(starts_b, camera_a * span + end_a, side="right")
    finished = np.searchsorted(ends_b, camera_a * span + start_a, side="left")
    return int((began - finished).sum())


@dataclass(frozen=True)
class World:
    """Everything simulated before drawing: graph, clocks, person ids and the tracklet table."""

    spec: SynthSpec
    graph: CameraGraph
    offsets: np.ndarray  # (cams,) clock offset of every camera: global frame = local + offset - 1
    pids: np.ndarray  # (people,) person id written for each person (1-based, shuffled)
    tracklets: Tracklets
    window_s: float


def _rng(seed: int, purpose: int) -> np.random.Generator:
    """An independent generator per purpose, so changing one part never shifts another's draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose,)))


def simulate(spec: SynthSpec) -> World:
    """Simulate the camera network of a validated spec (no drawing, no files)."""
    graph = camera_graph(spec.cams, _rng(spec.seed, 0))
    clock_rng = _rng(spec.seed, 1)
    offsets = clock_rng.integers(1, MAX_CLOCK_OFFSET, spec.cams)
    offsets[clock_rng.integers(spec.cams)] = 1
    people = spec.ids + spec.test_ids + spec.distractors
    pids = clock_rng.permutation(people) + 1
    lengths = walk_lengths(spec, _rng(spec.seed, 2))
    walks = simulate_walks(spec, graph, lengths, _rng(spec.seed, 3), clock_start=int(offsets.max()))
    tracklets = assign_splits(walks, spec, _rng(spec.seed, 4))
    window = ARRIVAL_S_PER_PERSON_CAMERA * people / spec.cams
    return World(spec=spec, graph=graph, offsets=offsets, pids=pids, tracklets=tracklets, window_s=window)


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
        folder = f"{SPLIT_NAMES[t.split[row]]}/{pid:04d}/{t.step[row] + 1:04d}"
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
    for code, name in enumerate(SPLIT_NAMES):
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
            "train_pairs": count_overlaps(t.camera[train], t.start[train], end[train]),
            "query_gallery_pairs": count_cross_overlaps(t.camera[query], t.start[query], end[query],
                                                        t.camera[gallery], t.start[gallery], end[gallery]),
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

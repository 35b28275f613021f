"""The synthetic camera network, simulated: camera graph, clocks, people walking, tracklets, splits.

Identities start at random times and cameras and walk a random path on a camera graph (a ring with
chords); each edge has its own transit time ~ Normal(mean, std), the gap from the end of one tracklet
to the start of the next. Many people share the time window, so cameras see several people at once
(the cannot-links of TOC) and one person is never in two places at once. Nothing is drawn or written
here (see `stages.data.synth.render` and `stages.synth`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from stages.errors import AuxReidError

#: Split codes of the tracklet table (positions in `stages.data.base.SPLITS`).
TRAIN, QUERY, GALLERY = 0, 1, 2


LAYOUTS = ("duke", "mars")


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


#: Largest per-camera clock offset (frames).
MAX_CLOCK_OFFSET = 40000


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

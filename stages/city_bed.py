"""City-scale test bed: a features.h5 and an aux.h5 of N simulated tracklets (no images) to benchmark `cluster`.

Why: the cluster stage has to be measured at 50,000 to 1,000,000 tracklets, far beyond any dataset at hand, and
rendering frames to extract them would take longer than the clustering under test. This module simulates what
the stage reads and nothing else: people walking a city's camera network (cameras at random places, linked to
their nearest neighbours, transit times from walking distances), so TOC finds realistic cannot-links and the
STS transit model has real peaks; and features that behave like a re-id model's (identity centre + per-camera
offset + noise). The two files are the ones `auxreid cluster --features F.h5 --aux A.h5 --out C.h5` reads:
features.h5 in cluster mode (train split), and aux.h5 made by mine-aux's own functions with the true identities
as the confident STS pairs (as `--sts-source oracle`). Every draw comes from the seed; files are written
atomically by `write_artifact`, the features block by block so a 1M x 2048 float32 file (8 GB) is held once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from stages.artifacts.h5 import RowBlocks, make_provenance, write_artifact
from stages.artifacts.lock import writes
from stages.artifacts.schemas import AUX, FEATURES
from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import group_pairs
from stages.auxinfo.toc import overlap_pairs
from stages.config import AuxConfig, Config, load_config
from stages.data.synth.world import CameraGraph
from stages.errors import AuxReidError
from stages.mine_aux import estimate_from_pairs
from stages.progress import NullProgress, Progress

#: The dataset name both files record, and their names in the output folder.
DATASET = "city"
FEATURES_NAME, AUX_NAME = "features.h5", "aux.h5"
#: Bumped whenever the simulation changes, so the fingerprint of a changed bed changes too.
GENERATOR_VERSION = 1

#: Tracklets per identity: a log-normal (median 5, long tail) rounded and clipped to [2, 30], as re-id train
#: sets are skewed (most people pass a few cameras, a few pass many).
MIN_TRACKLETS, MAX_TRACKLETS = 2, 30
SIZE_MEDIAN, SIZE_SIGMA = 5.0, 0.7
#: Stored frames per second (Duke keeps every 12th frame of 59.94 fps) and the frames of a tracklet: log-normal
#: (median 30, i.e. 6 s), clipped to [4, 300].
FRAME_RATE = 5.0
FRAMES_MEDIAN, FRAMES_SIGMA, FRAMES_RANGE = 30.0, 0.6, (4, 300)
#: Cameras stand at random places in a square of side sqrt(C) x this (metres), each linked to its nearest
#: neighbours (and a spanning tree, so every camera is reachable), like cameras along a street grid.
CAMERA_SPACING_M = 100.0
NEAREST_LINKS = 3
#: Walking: transit = street length / speed, streets being this much longer than the straight line; each person
#: walks at their own pace (log-normal factor), each transit varies by a fraction of its mean plus a floor.
WALK_SPEED_M_S, DETOUR = 1.4, 1.3
PACE_SIGMA = 0.15
TRANSIT_STD_FRACTION, TRANSIT_STD_FLOOR_S, TRANSIT_MIN_S = 0.1, 2.0, 1.0
#: People arrive over an hour at least (see `arrival_window`).
MIN_ARRIVAL_S = 3600.0
#: Largest network: the STS model is dense, (C, C, bins) float64 histograms (600 bins at the default 2 s bins and
#: 600 s range), so 256 cameras already take 315 MB per histogram array.
MAX_CAMERAS = 256
#: Feature rows generated (and written) at once; fixed, so the features do not depend on memory settings.
BLOCK_ROWS = 8192
#: Defaults: the appearance model is set so that the paper's clustering (k1 30, TOC, SCP, STS) is good but not
#: perfect at a few thousand tracklets, as on a trained model's features (5,000 tracklets, 100 cameras, seed 1:
#: purity 0.99, 47% noise; noise 0.75 gives 0.96, camera_bias 0.7 gives 0.82 as cameras clump); crowding 1: a
#: tracklet shares its camera's view with one other on average, a busy street rather than an empty corridor.
NOISE, CAMERA_BIAS, CROWDING = 0.7, 0.5, 1.0
#: Directions the appearance varies along (identity, camera, noise), and the isotropic noise over all dimensions.
INTRINSIC_DIM, SPREAD_NOISE = 32, 0.2
DTYPES = ("float32", "float16")

#: Independent random streams per purpose (`_rng`), so changing one part never shifts another's draws.
_SIZES, _GRAPH, _WALKS, _CENTRES, _BIAS, _NOISE = range(6)


@dataclass(frozen=True)
class CitySpec:
    """What to simulate; the same spec gives identical arrays (the files differ only in their creation time).

    Attributes:
        tracklets: N, the train tracklets (rows of features.h5).
        dim: feature dimension.
        cameras: C, cameras of the network.
        seed: fixes every draw.
        dtype: "float32" (as extract writes) or "float16" (half the file; the cluster stage computes in float32).
        crowding: mean number of other tracklets a tracklet shares its camera's view with (TOC's cannot-links).
        noise: norm of a tracklet's appearance noise, relative to the unit identity centre.
        camera_bias: norm of each camera's offset added to all its tracklets (light, viewpoint, background).
    """

    tracklets: int
    dim: int = 256
    cameras: int = 100
    seed: int = 0
    dtype: str = "float32"
    crowding: float = CROWDING
    noise: float = NOISE
    camera_bias: float = CAMERA_BIAS

    @property
    def fingerprint(self) -> str:
        """The split fingerprint both files record: a hash of the generator version and the spec."""
        text = json.dumps({"generator": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(f"{DATASET}\n{text}".encode()).hexdigest()[:16]


def validate_spec(spec: CitySpec) -> None:
    """Check every setting once, at the entry; the simulation below trusts them.

    Raises:
        AuxReidError: naming the setting, the value found and the allowed values.
    """
    rules = (
        ("tracklets", isinstance(spec.tracklets, int) and spec.tracklets >= MIN_TRACKLETS,
         f"an integer >= {MIN_TRACKLETS} (an identity has at least {MIN_TRACKLETS} tracklets)"),
        ("dim", isinstance(spec.dim, int) and spec.dim >= 1, "an integer >= 1"),
        ("cameras", isinstance(spec.cameras, int) and 2 <= spec.cameras <= MAX_CAMERAS,
         f"an integer in [2, {MAX_CAMERAS}] (the STS model holds C x C histograms)"),
        ("seed", isinstance(spec.seed, int) and 0 <= spec.seed <= 2**32 - 1, "an integer in [0, 2**32 - 1]"),
        ("dtype", spec.dtype in DTYPES, " or ".join(DTYPES)),
        ("crowding", math.isfinite(spec.crowding) and spec.crowding > 0, "a finite number > 0"),
        ("noise", math.isfinite(spec.noise) and spec.noise >= 0, "a finite number >= 0"),
        ("camera_bias", math.isfinite(spec.camera_bias) and spec.camera_bias >= 0, "a finite number >= 0"),
    )
    for name, ok, allowed in rules:
        if not ok:
            raise AuxReidError(f"city bed: {name} is {getattr(spec, name)!r}; expected {allowed}")


@dataclass(frozen=True)
class CityTruth:
    """What the simulation knows and the files partly hide: one row per tracklet, in the files' row order.

    Attributes:
        person: (N,) int64 true identity.
        camera: (N,) int64 camera.
        start, end: (N,) float64 span in seconds on the network's clock.
        num_frames: (N,) int64 stored frames.
        positions: (C, 2) camera places in metres.
        graph: the camera links and their transit-time models (seconds).
    """

    person: np.ndarray
    camera: np.ndarray
    start: np.ndarray
    end: np.ndarray
    num_frames: np.ndarray
    positions: np.ndarray
    graph: CameraGraph

    @property
    def sizes(self) -> np.ndarray:
        """(P,) tracklets of each identity."""
        return np.bincount(self.person)


def _rng(seed: int, purpose: int, *more: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose, *more)))


def identity_sizes(tracklets: int, rng: np.random.Generator) -> np.ndarray:
    """Tracklets per identity, each in [2, 30], summing to exactly `tracklets` (>= 2).

    Identities are drawn until the next would overshoot; the rest (< 30) becomes one more identity, or, when
    it is a single tracklet, joins an identity below the maximum.

    Returns:
        (P,) int64.
    """
    draws = rng.lognormal(math.log(SIZE_MEDIAN), SIZE_SIGMA, tracklets // MIN_TRACKLETS + 1)
    sizes = np.clip(np.rint(draws), MIN_TRACKLETS, MAX_TRACKLETS).astype(np.int64)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), tracklets, side="right"))]
    rest = tracklets - int(sizes.sum())
    if rest == 1:
        below = np.flatnonzero(sizes < MAX_TRACKLETS)
        if below.size:
            sizes[below[0]] += 1
            rest = 0
        else:
            sizes[-1] -= 1
            rest = 2
    return np.concatenate([sizes, [rest]]).astype(np.int64) if rest else sizes


def city_graph(cameras: int, rng: np.random.Generator) -> tuple[np.ndarray, CameraGraph]:
    """Cameras at random places, each linked to its nearest neighbours plus a spanning tree (connected).

    Returns:
        positions (C, 2) metres and the graph, whose transit mean per link is its walking time.
    """
    side = math.sqrt(cameras) * CAMERA_SPACING_M
    positions = rng.uniform(0.0, side, (cameras, 2))
    distance = cdist(positions, positions)
    tree = minimum_spanning_tree(distance).tocoo()
    nearest = np.argsort(distance, axis=1, kind="stable")[:, 1: NEAREST_LINKS + 1]
    links = np.concatenate([
        np.stack([tree.row, tree.col], axis=1),
        np.stack([np.repeat(np.arange(cameras), nearest.shape[1]), nearest.reshape(-1)], axis=1),
    ]).astype(np.int64)
    edges = np.unique(np.sort(links, axis=1), axis=0)
    mean = distance[edges[:, 0], edges[:, 1]] * DETOUR / WALK_SPEED_M_S
    return positions, CameraGraph(edges=edges, mean_s=mean, std_s=TRANSIT_STD_FRACTION * mean + TRANSIT_STD_FLOOR_S)


def arrival_window(offset: np.ndarray, duration: np.ndarray, *, cameras: int, crowding: float) -> float:
    """Seconds over which people arrive so that a tracklet overlaps about `crowding` others on its camera.

    Two tracklets of mean length D starting at random within T seconds overlap with probability 2D / T, so
    a camera's N / C tracklets need T = (N / C) 2D / crowding. The walks themselves last a while (`offset`:
    each tracklet's start after its person's arrival), so arrivals spread over T less their mean length, but
    over MIN_ARRIVAL_S at least: in a shorter burst everyone would be within the STS gap range of everyone
    else and the transit model could tell nobody apart. A small city is therefore less crowded than asked.

    Args:
        offset: (N,) start of each tracklet after its person's first.
        duration: (N,) seconds of each tracklet.
    """
    span = offset.size / cameras * 2.0 * float(duration.mean()) / crowding
    return max(span - float(offset.mean()) * 2.0, MIN_ARRIVAL_S)


def simulate_walks(
    sizes: np.ndarray, graph: CameraGraph, *, cameras: int, crowding: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Walk every identity through the network, one step at a time for all of them together.

    People arrive at random cameras uniformly over `arrival_window`, so that a tracklet overlaps `crowding`
    others on its camera on average; each step goes to a linked camera (not straight back when it can avoid it) and
    starts one transit (the link's time at the person's pace, plus noise) after the previous tracklet ends.

    Returns:
        person, camera, num_frames (N,) int64 and start, end (N,) float64 seconds, rows sorted by start.
    """
    people, steps = sizes.size, int(sizes.max())
    frames = np.clip(np.rint(rng.lognormal(math.log(FRAMES_MEDIAN), FRAMES_SIGMA, (people, steps))),
                     *FRAMES_RANGE).astype(np.int64)
    duration = (frames - 1) / FRAME_RATE
    pace = rng.lognormal(0.0, PACE_SIGMA, people)
    arrival = rng.random(people)
    neighbours, link = graph.neighbours(cameras), graph.edge_index(cameras)
    camera = np.empty((people, steps), dtype=np.int64)
    start = np.zeros((people, steps), dtype=np.float64)
    camera[:, 0] = rng.integers(0, cameras, people)
    previous = np.full(people, -1)
    for step in range(1, steps):
        options = neighbours[camera[:, step - 1]]
        valid = options >= 0
        allowed = valid & ((options != previous[:, None]) | (valid.sum(axis=1) == 1)[:, None])
        choice = np.argmax(np.where(allowed, rng.random(options.shape), -1.0), axis=1)
        camera[:, step] = options[np.arange(people), choice]
        edge = link[camera[:, step - 1], camera[:, step]]
        transit = np.maximum(rng.normal(graph.mean_s[edge] / pace, graph.std_s[edge]), TRANSIT_MIN_S)
        start[:, step] = start[:, step - 1] + duration[:, step - 1] + transit
        previous = camera[:, step - 1]
    person, step = np.nonzero(np.arange(steps)[None, :] < sizes[:, None])
    window = arrival_window(start[person, step], duration[person, step], cameras=cameras, crowding=crowding)
    start += window * arrival[:, None]
    order = np.lexsort((person, camera[person, step], start[person, step]))
    person, step = person[order], step[order]
    return {"person": person.astype(np.int64), "camera": camera[person, step], "start": start[person, step],
            "end": start[person, step] + duration[person, step], "num_frames": frames[person, step]}


def simulate_city(spec: CitySpec) -> CityTruth:
    """The network, the identities and their tracklets of a validated spec (no features, no files)."""
    positions, graph = city_graph(spec.cameras, _rng(spec.seed, _GRAPH))
    sizes = identity_sizes(spec.tracklets, _rng(spec.seed, _SIZES))
    walks = simulate_walks(sizes, graph, cameras=spec.cameras, crowding=spec.crowding, rng=_rng(spec.seed, _WALKS))
    return CityTruth(**walks, positions=positions, graph=graph)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def feature_blocks(truth: CityTruth, spec: CitySpec) -> Iterator[np.ndarray]:
    """The features in blocks of BLOCK_ROWS rows, as `spec.dtype`: a low-dimensional appearance, embedded.

    A trained re-id model's features vary along a few tens of directions (clothing, pose, light), so people
    are drawn in an INTRINSIC_DIM-dimensional space: unit identity centre + the camera's offset (norm
    `camera_bias`) + noise (norm about `noise`), mapped into `dim` dimensions by a random orthonormal
    embedding, plus a small isotropic noise (norm SPREAD_NOISE) so every dimension varies. Isotropic noise
    alone would not do: in 256 or 2048 dimensions distances concentrate and any noise level leaves people
    perfectly separable. Each block has its own random stream, so the features do not depend on how they are
    consumed; nothing of size N x dim is held besides the block.

    Yields:
        (rows, dim) arrays, rows in the files' order.
    """
    dim, inner = spec.dim, min(INTRINSIC_DIM, spec.dim)
    rng = _rng(spec.seed, _CENTRES)
    embed = np.linalg.qr(rng.standard_normal((dim, inner)))[0].T.astype(np.float32)
    centres = _unit_rows(rng.standard_normal((int(truth.person.max()) + 1, inner), np.float32))
    bias = spec.camera_bias * _unit_rows(_rng(spec.seed, _BIAS).standard_normal((spec.cameras, inner), np.float32))
    scale, spread = np.float32(spec.noise / math.sqrt(inner)), np.float32(SPREAD_NOISE / math.sqrt(dim))
    for block, first in enumerate(range(0, spec.tracklets, BLOCK_ROWS)):
        rows = slice(first, min(first + BLOCK_ROWS, spec.tracklets))
        rng = _rng(spec.seed, _NOISE, block)
        appearance = rng.standard_normal((rows.stop - first, inner), np.float32) * scale
        appearance += centres[truth.person[rows]] + bias[truth.camera[rows]]
        features = rng.standard_normal((rows.stop - first, dim), np.float32)
        features *= spread
        features += appearance @ embed
        yield features.astype(spec.dtype, copy=False)


def camera_labels(cameras: int) -> np.ndarray:
    """C1, C2, ... as the synthetic network and Duke name their cameras."""
    return np.array([f"C{c + 1}" for c in range(cameras)], dtype=str)


def aux_records(truth: CityTruth, *, aux: AuxConfig) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """aux.h5's datasets and root attributes, as mine-aux writes them with `--sts-source oracle`.

    TOC and the transit model come from mine-aux's own functions (`overlap_pairs`, `estimate_from_pairs`),
    so the file holds what mining a real dataset of these spans would. There is no query or gallery split,
    so no query x gallery pair.
    """
    columns = {"train/camera": truth.camera, "train/start": truth.start, "train/end": truth.end}
    cameras = truth.positions.shape[0]
    confident = group_pairs(truth.person)
    model = estimate_from_pairs(confident, columns, num_cameras=cameras, aux=aux, source="oracle")
    data = {
        **columns,
        "camera_labels": camera_labels(cameras),
        "toc/train_pairs": overlap_pairs(Spans(truth.camera, truth.start, truth.end)),
        "toc/query_gallery_pairs": np.zeros((0, 2), dtype=np.int64),
        **model.to_arrays(),
    }
    attrs = {"has_times": True, "num_cameras": cameras, "sts_source": "oracle", "sts_pairs": len(confident)}
    return data, attrs


def city_config(overrides: Sequence[str] = ()) -> Config:
    """The config both files record: the paper's defaults with TOC on and the oracle STS source named.

    `auxreid cluster --features F.h5` takes its config from the features file, so this is what a benchmark
    clusters with unless it passes --set or --config. The dataset kind is a manifest's (cameras of one's own,
    tracklets kept whole).
    """
    return load_config(None, ["data.dataset=manifest", "cluster.toc=true", "aux.sts_source=oracle", *overrides])


@writes(lambda folder, **_: (Path(folder) / FEATURES_NAME, Path(folder) / AUX_NAME))
def write_city_bed(
    folder: str | Path,
    *,
    tracklets: int,
    dim: int = 256,
    cameras: int = 100,
    seed: int = 0,
    dtype: str = "float32",
    crowding: float = CROWDING,
    noise: float = NOISE,
    camera_bias: float = CAMERA_BIAS,
    config: Config | None = None,
    progress: Progress | None = None,
) -> tuple[Path, Path, CityTruth]:
    """Simulate a city of `tracklets` tracklets and write folder/features.h5 and folder/aux.h5.

    Args:
        folder: where both files go (created when missing).
        tracklets, dim, cameras, seed, dtype, crowding, noise, camera_bias: see `CitySpec`.
        config: recorded in both files (the cluster stage's default config) and whose aux section shapes the STS
            model; default `city_config()`.
        progress: progress sink ("simulate", "features", "aux").

    Returns:
        (features.h5 path, aux.h5 path, the truth behind them).

    Raises:
        AuxReidError: a setting out of range, or a failed write (naming the file).
    """
    spec = CitySpec(tracklets=tracklets, dim=dim, cameras=cameras, seed=seed, dtype=dtype, crowding=crowding,
                    noise=noise, camera_bias=camera_bias)
    validate_spec(spec)
    progress = progress or NullProgress()
    config = config if config is not None else city_config()
    folder = Path(folder)
    progress.start("simulate")
    truth = simulate_city(spec)
    progress.done("simulate", f"{truth.sizes.size} identities, {len(truth.graph.edges)} camera links")
    attrs = {f"city_{key}": value for key, value in asdict(spec).items()}
    progress.start("features")
    data = {
        "train/features": RowBlocks((spec.tracklets, spec.dim), np.dtype(spec.dtype), lambda: feature_blocks(truth, spec)),
        "train/tracklet_index": np.arange(spec.tracklets, dtype=np.int64),
        "train/camera": truth.camera,
        "train/person_id": truth.person,
        "train/num_frames": truth.num_frames,
        "camera_labels": camera_labels(spec.cameras),
    }
    provenance = make_provenance(FEATURES, dataset=DATASET, fingerprint=spec.fingerprint, round=1, config=config)
    features_path = write_artifact(folder / FEATURES_NAME, provenance, data, attrs={
        **attrs, "mode": "cluster", "bad_frames_skipped": 0})
    progress.done("features", f"{spec.tracklets} x {spec.dim} {spec.dtype}")
    progress.start("aux")
    aux_data, aux_attrs = aux_records(truth, aux=config.aux)
    provenance = make_provenance(AUX, dataset=DATASET, fingerprint=spec.fingerprint, round=0, config=config)
    aux_path = write_artifact(folder / AUX_NAME, provenance, aux_data, attrs={**attrs, **aux_attrs},
                              compression="gzip")
    pairs = len(aux_data["toc/train_pairs"])
    progress.done("aux", f"{pairs} cannot-link pairs ({2 * pairs / spec.tracklets:.2f} a tracklet), "
                         f"{aux_attrs['sts_pairs']} STS pairs, {truth.end.max() / 3600:.1f} h")
    return features_path, aux_path, truth

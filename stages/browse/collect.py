"""What the browse site shows, read from a run's artifacts: the train tracklets, each shown round's clustering with
its per-cluster numbers and nearest neighbours, and each evaluated round's ranked gallery.

Only the run's files are read (clusters.h5, features.h5, aux.h5, eval.h5 through their readers, fingerprints
checked against the run's dataset); nothing is clustered or evaluated again. Train tracklets are kept in the
dataset's train order (clusters.h5's `tracklet_index`), so a tracklet is the same row in every round. The
query and gallery frames of an evaluation are not stored in eval.h5: they are looked up in the run's dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from stages.artifacts.readers import clusters_train_rows, read_clusters, read_eval, read_features
from stages.auxinfo.aux_file import read_aux
from stages.browse.stats import ClusterStats, cluster_stats, l2_normalise, nearest_neighbours
from stages.config import Config
from stages.data import dataset_root, load_dataset
from stages.data.base import DatasetSplit
from stages.data.frame_table import TABLE_COLUMNS, FrameTable
from stages.errors import AuxReidError
from stages.progress import Progress
from stages.rundir import RunDir, load_run_config, run_fingerprint
from stages.views.labels import camera_labels_of

#: Frames shown per tracklet on cluster and tracklet pages (evenly spaced); the middle one stands for it elsewhere.
FRAMES_SHOWN = 4
#: Ranked gallery tracklets shown per query.
EVAL_TOP = 10


def frame_picks(num_frames: int, count: int = FRAMES_SHOWN) -> list[int]:
    """Up to `count` evenly spaced frame positions, first and last included (as montages pick them)."""
    if num_frames <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, min(count, num_frames))})


@dataclass(frozen=True)
class TrainTracklets:
    """The run's train tracklets, row i = dataset train index i.

    Attributes:
        names, camera, person_id: (n,) per tracklet (person_id -1 unknown).
        start, end: (n,) span in seconds from aux.h5, or None when the run has no times.
        frames: per tracklet, the absolute paths of its FRAMES_SHOWN picked frames.
        num_frames: (n,) frames per tracklet.
        root: the dataset root the frames were found under.
    """

    names: np.ndarray
    camera: np.ndarray
    person_id: np.ndarray
    start: np.ndarray | None
    end: np.ndarray | None
    frames: list[tuple[str, ...]]
    num_frames: np.ndarray
    root: str

    def __len__(self) -> int:
        return len(self.names)

    def cover(self, row: int) -> str:
        """The one frame that stands for tracklet `row` (its middle pick)."""
        picks = self.frames[row]
        return picks[len(picks) // 2]


@dataclass(frozen=True)
class RoundView:
    """One clustering round in train order.

    Attributes:
        round: the round.
        labels: (n,) cluster per tracklet, -1 noise.
        count: clusters C.
        stats: per-cluster numbers (`ClusterStats`).
        knn_index, knn_distance: (n, k) nearest neighbours in the round's features.
        attrs: clusters.h5's root attributes (eps, algorithm, cannot_link_violations, ...).
        quality: clusters.h5's quality/* numbers (empty when ids are unknown).
        cannot_link: (m, 2) the cannot-link pairs the violations were counted on, or None.
    """

    round: int
    labels: np.ndarray
    count: int
    stats: ClusterStats
    knn_index: np.ndarray
    knn_distance: np.ndarray
    attrs: dict
    quality: dict[str, float]
    cannot_link: np.ndarray | None

    @property
    def noise(self) -> int:
        return int((self.labels < 0).sum())


@dataclass(frozen=True)
class TestSide:
    """Query or gallery rows of an eval.h5 with their dataset tracklets.

    Attributes:
        names, camera, person_id: (rows,) per row.
        frames: per row, the absolute paths of its picked frames.
        tracklets: per row, the dataset's Tracklet (for time gaps).
    """

    names: list[str]
    camera: np.ndarray
    person_id: np.ndarray
    frames: list[tuple[str, ...]]
    tracklets: list


@dataclass(frozen=True)
class EvalView:
    """One evaluated round: AP per query, the top EVAL_TOP gallery rows, metrics."""

    round: int
    ap: np.ndarray
    topk_index: np.ndarray
    topk_distance: np.ndarray
    query: TestSide
    gallery: TestSide
    metrics: dict[str, float]
    attrs: dict


@dataclass
class RunView:
    """Everything the site renders.

    Attributes:
        camera_labels: camera index -> label (from the round's features.h5 or clusters.h5, else the dataset
            loaded for an evaluation); empty for files written before auxreid stored them (indices are shown).
    """

    run: RunDir
    dataset: str
    fingerprint: str
    train: TrainTracklets
    rounds: dict[int, RoundView]
    evals: dict[int, EvalView] = field(default_factory=dict)
    has_aux: bool = False
    camera_labels: tuple[str, ...] = ()


# --- which rounds ----------------------------------------------------------------------------------------


def parse_rounds(text: str | None) -> list[int] | None:
    """`--rounds 1,3,5` -> [1, 3, 5]; None or '' -> None (every round).

    Raises:
        AuxReidError: anything but comma-separated integers >= 0.
    """
    if text is None or not text.strip():
        return None
    try:
        rounds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        rounds = []
    if not rounds or min(rounds) < 0:
        raise AuxReidError(f"--rounds takes round numbers >= 0 separated by commas, e.g. 1,3,5; got '{text}'")
    return sorted(set(rounds))


def choose_rounds(run: RunDir, wanted: list[int] | None) -> tuple[list[int], list[int]]:
    """(rounds with clusters to show, rounds with an evaluation to show).

    Raises:
        AuxReidError: no run, a wanted round with neither clusters.h5 nor eval.h5, no round with clusters.
    """
    if not run.path.is_dir():
        raise AuxReidError(f"run {run.name} does not exist (no folder {run.path}); create it with `auxreid init "
                           f"{run.path.name} --config CONFIG.yaml`")
    present = run.rounds()
    clustered = [r for r in present if run.clusters(r).is_file()]
    evaluated = [r for r in present if run.eval(r).is_file()]
    if wanted is not None:
        absent = [r for r in wanted if r not in clustered and r not in evaluated]
        if absent:
            raise AuxReidError(f"round {absent[0]} of run {run.name} has neither clusters.h5 nor eval.h5 (rounds with "
                               f"clusters: {', '.join(map(str, clustered)) or 'none'}); leave it out of --rounds")
        clustered = [r for r in clustered if r in wanted]
        evaluated = [r for r in evaluated if r in wanted]
    if not clustered:
        raise AuxReidError(f"run {run.name} has no round with clusters.h5" + (" among --rounds" if wanted else "")
                           + f"; run `auxreid cluster {run.name} --round 1` first")
    return clustered, evaluated


# --- reading ---------------------------------------------------------------------------------------------


def _frame_root(candidates: list[str], first: str) -> str:
    """The first candidate root under which `first` (a relative frame path) exists, else the first candidate."""
    roots = [c for c in dict.fromkeys(candidates) if c]
    for root in roots:
        if os.path.isfile(os.path.join(root, first)):
            return root
    return roots[0] if roots else ""


def _train_table(clusters, features, rows: int) -> tuple[FrameTable, str]:
    """Names and frames of the train rows from clusters.h5, else from features.h5's train group."""
    if all(key in clusters for key in TABLE_COLUMNS):
        columns, source = {key: clusters[key] for key in TABLE_COLUMNS}, clusters.path
        redo = "auxreid cluster"
    else:
        train = features["train"]
        if not all(key in train for key in TABLE_COLUMNS):
            raise AuxReidError(f"neither {clusters.path} nor {features.path} stores the train tracklets' names and "
                               "frames (written before auxreid stored them); re-run `auxreid extract` and "
                               "`auxreid cluster` for this round")
        columns, source, redo = {key: train[key] for key in TABLE_COLUMNS}, features.path, "auxreid extract"
    table = FrameTable.from_columns(columns, rows=rows, source=str(source), redo=redo)
    return table, str(clusters.attrs.get("data_root", "") or features.artifact.attrs.get("data_root", ""))


class RoundFiles(NamedTuple):
    """One round's clusters.h5 and features.h5 as read, every per-row array in train order.

    Attributes:
        in_order: (n,) the files' row of each train row.
        table, root: the files' frame table (in the files' row order) and the dataset root it recorded.
        camera_labels: the labels features.h5 (or clusters.h5) records, () when neither does.
    """

    labels: np.ndarray
    count: int
    attrs: dict
    quality: dict[str, float]
    camera: np.ndarray
    person_id: np.ndarray
    normalised: np.ndarray
    table: FrameTable
    root: str
    in_order: np.ndarray
    camera_labels: tuple[str, ...] = ()


def read_round(run: RunDir, round: int, *, fingerprint: str, dataset: str, progress: Progress) -> RoundFiles:
    """One round's clusters.h5 and features.h5, checked against each other, rows in dataset train order."""
    clusters = read_clusters(run.clusters(round), fingerprint=fingerprint, round=round, progress=progress)
    labels = np.asarray(clusters["labels"], dtype=np.int64)
    index = clusters_train_rows(clusters, train_tracklets=len(labels), dataset=dataset)
    path = run.features(round)
    if not path.is_file():
        raise AuxReidError(f"{path} does not exist, but the site shows round {round}'s distances and neighbours from "
                           f"it; run `auxreid extract {run.name} --round {round}` first")
    features = read_features(path, fingerprint=fingerprint, round=round, split="train", mode=None, progress=progress)
    train = features["train"]
    if not np.array_equal(np.asarray(train["tracklet_index"], dtype=np.int64), index):
        raise AuxReidError(f"{path}: its train rows are not the {len(index)} tracklets {run.clusters(round)} labels, "
                           f"in order; re-run `auxreid cluster {run.name} --round {round}`")
    count = int(clusters.attrs.get("num_clusters", len(clusters["centroids"])))
    attrs = {key: (value.item() if isinstance(value, np.generic) else value) for key, value in clusters.attrs.items()}
    quality = {key.split("/", 1)[1]: float(clusters[key]) for key in clusters.data if key.startswith("quality/")}
    in_order = np.empty_like(index)
    in_order[index] = np.arange(len(index))  # train row -> file row
    table, root = _train_table(clusters, features, len(labels))
    return RoundFiles(labels=labels[in_order], count=count, attrs=attrs, quality=quality,
                      camera=np.asarray(train["camera"], dtype=np.int64)[in_order],
                      person_id=np.asarray(train["person_id"], dtype=np.int64)[in_order],
                      normalised=l2_normalise(np.asarray(train["features"])[in_order]), table=table, root=root,
                      in_order=in_order,
                      camera_labels=camera_labels_of(features.artifact.data) or camera_labels_of(clusters.data))


def collect(run: RunDir, rounds: list[int], evaluated: list[int], *, progress: Progress,
            config: Config | None = None) -> RunView:
    """Read the shown rounds (and evaluations) of `run` into a RunView.

    Raises:
        AuxReidError: an unreadable, foreign or inconsistent artifact (one line naming it).
    """
    config = config or load_run_config(run)
    dataset, fingerprint = run_fingerprint(run, config)
    aux = read_aux(run.aux, fingerprint=fingerprint, progress=progress) if run.aux.is_file() else None
    pairs = aux.train_pairs if aux is not None and aux.has_times else None
    views: dict[int, RoundView] = {}
    train: TrainTracklets | None = None
    labels: tuple[str, ...] = ()
    task = "browse: reading rounds"
    progress.start(task, total=len(rounds))
    for r in rounds:
        files = read_round(run, r, fingerprint=fingerprint, dataset=dataset, progress=progress)
        if train is None:
            train = _train_tracklets(files, config, aux)
        elif len(files.labels) != len(train):
            raise AuxReidError(f"{run.clusters(r)} labels {len(files.labels)} tracklets, round {rounds[0]}'s "
                               f"{len(train)}; the rounds of one run cluster the same train split: re-run its extract "
                               "and cluster")
        labels = labels or files.camera_labels
        stats = cluster_stats(files.labels, count=files.count, camera=files.camera, person_id=files.person_id,
                              normalised=files.normalised, cannot_link=pairs)
        knn_index, knn_distance = nearest_neighbours(files.normalised)
        views[r] = RoundView(round=r, labels=files.labels, count=files.count, stats=stats, knn_index=knn_index,
                             knn_distance=knn_distance, attrs=files.attrs, quality=files.quality, cannot_link=pairs)
        progress.advance(task)
    progress.done(task, f"{len(rounds)} round{'s' if len(rounds) != 1 else ''}, {len(train)} tracklets")
    view = RunView(run=run, dataset=dataset, fingerprint=fingerprint, train=train, rounds=views, has_aux=aux is not None,
                   camera_labels=labels)
    if evaluated:
        data = _test_dataset(run, config, fingerprint, evaluated[0])
        view.camera_labels = view.camera_labels or data.camera_labels
        for r in evaluated:
            view.evals[r] = read_evaluation(run, r, data, fingerprint=fingerprint, progress=progress)
    return view


def _train_tracklets(files: RoundFiles, config: Config, aux) -> TrainTracklets:
    """The train tracklets in train order, their picked frames made absolute under the root that holds them."""
    table, in_order = files.table, files.in_order
    counts = np.diff(table.offsets)[in_order]
    first = str(table.paths[table.offsets[in_order[0]]]) if len(in_order) and counts[0] else ""
    try:
        configured = dataset_root(config.data)
    except AuxReidError:
        configured = ""
    root = _frame_root([files.root, configured], first)
    frames = []
    for row in in_order.tolist():  # O(1) work per tracklet: at most FRAMES_SHOWN paths
        start, stop = int(table.offsets[row]), int(table.offsets[row + 1])
        frames.append(tuple(os.path.join(root, str(table.paths[start + pick])) for pick in frame_picks(stop - start)))
    start = end = None
    if aux is not None and aux.has_times and "train" in aux.starts and len(aux.starts["train"]) == len(in_order):
        start, end = aux.starts["train"], aux.ends["train"]
    return TrainTracklets(names=np.asarray(table.names)[in_order].astype(str), camera=files.camera,
                          person_id=files.person_id,
                          start=start, end=end, frames=frames, num_frames=counts, root=root)


def _test_dataset(run: RunDir, config: Config, fingerprint: str, round: int) -> DatasetSplit:
    """The run's dataset, for the query and gallery frames (eval.h5 stores none)."""
    try:
        data = load_dataset(config.data)
    except AuxReidError as exc:
        raise AuxReidError(f"the evaluation page of round {round} needs the query and gallery frames, but the run's "
                           f"dataset cannot be loaded: {str(exc).rstrip('.')}; leave the evaluated rounds out of "
                           "--rounds to browse the clusters alone") from None
    if data.fingerprint != fingerprint:
        raise AuxReidError(f"the dataset at {data.root} (fingerprint {data.fingerprint}) is not run {run.name}'s "
                           f"({fingerprint}); point {run.config_path}'s data.root at the run's dataset")
    return data


def _test_side(tracklets, rows: np.ndarray) -> TestSide:
    chosen = [tracklets[int(i)] for i in rows.tolist()]
    frames = [tuple(t.frames[p] for p in frame_picks(len(t.frames))) for t in chosen]
    return TestSide(names=[t.name for t in chosen], camera=np.array([t.camera for t in chosen], dtype=np.int64),
                    person_id=np.array([t.person_id for t in chosen], dtype=np.int64), frames=frames,
                    tracklets=chosen)


def read_evaluation(run: RunDir, round: int, data: DatasetSplit, *, fingerprint: str, progress: Progress) -> EvalView:
    """One eval.h5 with its query and gallery tracklets looked up in the dataset."""
    path: Path = run.eval(round)
    artifact = read_eval(path, fingerprint=fingerprint, round=round, progress=progress)
    query_rows = np.asarray(artifact["query/tracklet_index"], dtype=np.int64)
    gallery_rows = np.asarray(artifact["gallery/tracklet_index"], dtype=np.int64)
    for name, rows, split in (("query", query_rows, data.query), ("gallery", gallery_rows, data.gallery)):
        if rows.size and (rows.min() < 0 or rows.max() >= len(split)):
            raise AuxReidError(f"{path}: {name}/tracklet_index points outside the dataset's {len(split)} {name} "
                               f"tracklets; re-run `auxreid evaluate {run.name} --round {round}`")
    topk = np.asarray(artifact["topk_index"], dtype=np.int64)[:, :EVAL_TOP]
    if topk.size and (topk.min() < 0 or topk.max() >= len(gallery_rows)):
        raise AuxReidError(f"{path}: topk_index points outside its {len(gallery_rows)} gallery rows; re-run "
                           f"`auxreid evaluate {run.name} --round {round}`")
    metrics = {"mAP": float(artifact["metrics/mAP"]), "mINP": float(artifact["metrics/mINP"]),
               "plain mAP": float(artifact["plain/mAP"])}
    cmc = np.asarray(artifact["metrics/cmc"], dtype=np.float64)
    for rank in (1, 5, 10):
        if len(cmc) >= rank:
            metrics[f"rank-{rank}"] = float(cmc[rank - 1])
    attrs = {key: (value.item() if isinstance(value, np.generic) else value) for key, value in artifact.attrs.items()}
    return EvalView(round=round, ap=np.asarray(artifact["ap"], dtype=np.float64), topk_index=topk,
                    topk_distance=np.asarray(artifact["topk_distance"], dtype=np.float64)[:, :EVAL_TOP],
                    query=_test_side(data.query, query_rows), gallery=_test_side(data.gallery, gallery_rows),
                    metrics=metrics, attrs=attrs)

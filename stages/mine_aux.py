"""mine-aux stage: cameras, time spans, TOC pairs and the STS transit model -> aux.h5.

Runs once per dataset before the training loop, and again whenever a better label-free source of
confident pairs exists (a later round's features or clusters) to re-estimate the STS model. SCP
needs only the stored cameras; TOC and STS need timestamps, which MARS lacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.artifacts.h5 import Artifact, make_provenance, write_artifact
from stages.artifacts.lock import writes
from stages.artifacts.readers import Features, read_clusters, read_features
from stages.artifacts.schemas import AUX
from stages.auxinfo.spans import Spans
from stages.auxinfo.sts import group_pairs, mutual_knn_pairs, transit_from_pairs
from stages.auxinfo.toc import overlap_pairs, overlap_pairs_between
from stages.auxinfo.transit import TransitModel
from stages.config import AuxConfig, Config
from stages.data import DatasetSplit, load_dataset
from stages.data.base import SPLITS
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress
from stages.rundir import StageIO


def span_columns(dataset: DatasetSplit) -> dict[str, np.ndarray]:
    """Per-split `camera` (and `start`, `end` in seconds when the dataset has times), aux.h5 names."""
    data: dict[str, np.ndarray] = {}
    for split in SPLITS:
        columns = dataset.arrays(split)
        data[f"{split}/camera"] = columns["camera"]
        if dataset.has_times:
            data[f"{split}/start"] = columns["start"]
            data[f"{split}/end"] = columns["end"]
    return data


def toc_pairs(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TOC: train cannot-link pairs (i < j) and query x gallery overlap pairs, aux.h5 names.

    Args:
        columns: the output of `span_columns` for a dataset with times.
    """
    spans = {s: _spans(columns, s) for s in SPLITS}
    return {
        "toc/train_pairs": overlap_pairs(spans["train"]),
        "toc/query_gallery_pairs": overlap_pairs_between(spans["query"], spans["gallery"]),
    }


def _spans(columns: dict[str, np.ndarray], split: str) -> Spans:
    return Spans(columns[f"{split}/camera"], columns[f"{split}/start"], columns[f"{split}/end"])


def _feature_rows(features: Features, dataset: DatasetSplit) -> tuple[np.ndarray, np.ndarray]:
    """The train features and the train tracklet of each row, checked against the dataset.

    `read_features` has checked the columns themselves (present, equal lengths, finite).

    Returns:
        features (r, d) float32 and tracklet index (r,) int64.
    """
    train = features["train"]
    vectors = np.asarray(train["features"], dtype=np.float32)
    index = np.asarray(train["tracklet_index"], dtype=np.int64)
    camera = np.asarray(train["camera"], dtype=np.int64)
    n = len(dataset.train)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise AuxReidError(
            f"{features.path}: train/tracklet_index reaches {index.max()}, but the dataset has {n} train "
            "tracklets; re-run `auxreid extract`"
        )
    if not np.array_equal(camera, dataset.arrays("train")["camera"][index]):
        raise AuxReidError(f"{features.path}: train/camera disagrees with the dataset's cameras; re-run `auxreid extract`")
    return vectors, index


def _cluster_labels(clusters: Artifact, features: Features, rows: int) -> np.ndarray:
    """The clusters' labels, one per features row, refusing clusters of another round or row count."""
    labels = np.asarray(clusters["labels"], dtype=np.int64)
    if clusters.provenance.round != features.provenance.round:
        raise AuxReidError(
            f"{clusters.path} is from round {clusters.provenance.round} but {features.path} from round "
            f"{features.provenance.round}; pass the features the clusters were made from"
        )
    if labels.shape != (rows,):
        raise AuxReidError(
            f"{clusters.path} has {labels.size} labels but {features.path} has {rows} train rows; "
            "pass the features the clusters were made from"
        )
    return labels


def check_sts_sources(source: str, features: Path | None, clusters: Path | None) -> bool:
    """Whether an STS model can be estimated from what was given; contradictions are errors."""
    if source == "oracle" and (features is not None or clusters is not None):
        raise AuxReidError(
            "aux.sts_source=oracle uses ground-truth person ids; drop --features/--clusters, "
            "or choose --sts-source appearance / clusters"
        )
    if clusters is not None and source != "clusters":
        raise AuxReidError(f"--clusters was given but aux.sts_source is {source}; add --sts-source clusters")
    if source == "clusters" and clusters is not None and features is None:
        raise AuxReidError(
            "--sts-source clusters needs --features F.h5 too: the clusters' labels are rows of that features file"
        )
    return source == "oracle" or (source == "appearance" and features is not None) or clusters is not None


def _no_times_warning(name: str, config: Config) -> str:
    """Say that only SCP is possible, and which of the config's TOC/STS switches will be refused later."""
    switches = [f"{section}.{what}" for section in ("cluster", "evaluate") for what in ("toc", "sts")
                if getattr(getattr(config, section), what)]
    message = f"dataset {name} has no timestamps: TOC and STS are unavailable; aux.h5 holds cameras only (SCP)"
    if switches:
        message += f"; this config turns on {', '.join(switches)}: set them to false before cluster/evaluate"
    return message


def confident_pairs(
    dataset: DatasetSplit, *, source: str, aux: AuxConfig, features: Features | None, clusters: Artifact | None
) -> np.ndarray:
    """Train tracklet pairs that the STS source judges the same person (labels only for the oracle).

    Args:
        dataset: the dataset (train cameras; person ids for the oracle).
        source: "appearance" (mutual kNN of `features`), "clusters" (pairs inside the clusters of
            `clusters`, whose labels are rows of `features`) or "oracle" (ground-truth ids).
        aux: the aux settings (mutual kNN k).
        features, clusters: the read artifacts the source needs, else None.

    Returns:
        (m, 2) int64 train tracklet index pairs.
    """
    if source == "oracle":
        person = dataset.arrays("train")["person_id"]
        if not (person >= 0).any():
            raise AuxReidError(
                f"aux.sts_source=oracle needs ground-truth person ids, but dataset {dataset.name} has none in train; "
                "use --sts-source appearance --features F.h5"
            )
        return group_pairs(person)
    vectors, index = _feature_rows(features, dataset)
    if source == "appearance":
        rows = mutual_knn_pairs(vectors, dataset.arrays("train")["camera"][index], k=aux.sts_mutual_k)
    else:
        rows = group_pairs(_cluster_labels(clusters, features, index.size))
    return index[rows]


@writes(lambda output, **_: (output,))
def mine_aux_to_file(
    config: Config,
    *,
    output: str | Path,
    features: str | Path | None = None,
    clusters: str | Path | None = None,
    dataset: DatasetSplit | None = None,
    progress: Progress | None = None,
) -> Path:
    """Mine the auxiliary information of `config.data`'s dataset into aux.h5.

    The STS model is estimated when its source (`config.aux.sts_source`) has its inputs: appearance
    needs `features`, clusters needs `clusters` and `features`, oracle needs nothing. Without them
    aux.h5 holds cameras, spans and TOC only, and a warning says how to add STS later.

    Args:
        config: the run's config (data and aux sections are used).
        output: aux.h5 path (written atomically).
        features: features.h5 of any round (appearance / clusters sources).
        clusters: clusters.h5 of the same round as `features` (clusters source).
        dataset: an already loaded dataset (else loaded from `config.data`).
        progress: progress sink.

    Returns:
        The written path.

    Raises:
        AuxReidError: STS requested on a dataset without timestamps, inputs from another dataset
            (fingerprint) or round, contradictory source options.
    """
    progress = progress or NullProgress()
    aux = config.aux
    features = Path(features) if features is not None else None
    clusters = Path(clusters) if clusters is not None else None
    wants_sts = check_sts_sources(aux.sts_source, features, clusters)
    if dataset is None:
        progress.start("load dataset")
        dataset = load_dataset(config.data)
        progress.done("load dataset", f"{dataset.name}: {len(dataset.train)} train tracklets")
    if not dataset.has_times and wants_sts:
        raise AuxReidError(
            f"dataset {dataset.name} has no timestamps: TOC and STS are unavailable, so aux.sts_source="
            f"{aux.sts_source} cannot be used; mine without --features/--clusters/--sts-source oracle"
        )
    data = {**span_columns(dataset), "camera_labels": np.array(dataset.camera_labels, dtype=str)}
    attrs = {"has_times": dataset.has_times, "num_cameras": dataset.num_cameras, "sts_source": "", "sts_pairs": 0}
    if dataset.has_times:
        progress.start("TOC")
        data.update(toc_pairs(data))
        progress.done("TOC", f"{len(data['toc/train_pairs'])} cannot-link pairs")
    else:
        progress.warn(_no_times_warning(dataset.name, config))
    parents: dict[str, Path] = {}
    round_ = 0
    if wants_sts:
        inputs = {
            "features": (read_features(features, fingerprint=dataset.fingerprint, mode=None, progress=progress)
                         if features else None),
            "clusters": read_clusters(clusters, fingerprint=dataset.fingerprint, progress=progress) if clusters else None,
        }
        for role, art in inputs.items():
            if art is not None:
                parents[role], round_ = art.path, art.provenance.round
        progress.start("STS")
        pairs = confident_pairs(
            dataset, source=aux.sts_source, aux=aux, features=inputs["features"], clusters=inputs["clusters"]
        )
        model = estimate_from_pairs(pairs, data, num_cameras=dataset.num_cameras, aux=aux, source=aux.sts_source)
        data.update(model.to_arrays())
        attrs.update(sts_source=aux.sts_source, sts_pairs=len(pairs))
        progress.done("STS", f"{len(pairs)} confident pairs from {aux.sts_source}")
        if int(model.support.sum()) < aux.sts_min_pairs:
            progress.warn(
                f"the STS source gave only {int(model.support.sum())} usable pairs (< aux.sts_min_pairs="
                f"{aux.sts_min_pairs}): p = 1 everywhere, STS will change nothing"
            )
    elif dataset.has_times:
        needs = "--clusters C.h5 and --features F.h5" if aux.sts_source == "clusters" else "--features F.h5"
        progress.warn(
            f"no STS model written: aux.sts_source={aux.sts_source} needs {needs}; re-run mine-aux with it "
            "once features exist (any round), or use --sts-source oracle for ablations"
        )
    provenance = make_provenance(
        AUX, dataset=dataset.name, fingerprint=dataset.fingerprint, round=round_, config=config, parents=parents
    )
    return write_artifact(output, provenance, data, attrs=attrs, compression="gzip")


def estimate_from_pairs(
    pairs: np.ndarray, columns: dict[str, np.ndarray], *, num_cameras: int, aux: AuxConfig, source: str
) -> TransitModel:
    """The transit model from confident train pairs, with the aux config's histogram settings.

    Args:
        pairs: (m, 2) train tracklet index pairs.
        columns: `span_columns` output (train camera, start, end are used).
        num_cameras: C.
        aux: histogram bin width, gap range, smoothing and minimum support.
        source: recorded in the model.
    """
    return transit_from_pairs(
        pairs,
        _spans(columns, "train"),
        num_cameras=num_cameras,
        bin_seconds=aux.sts_bin_seconds,
        max_gap_seconds=aux.sts_max_gap_seconds,
        sigma_bins=aux.sts_smooth_sigma_bins,
        min_pairs=aux.sts_min_pairs,
        source=source,
    )


def run_mine_aux(config: Config, io: StageIO, *, progress: Progress | None = None) -> list[Path]:
    """`auxreid mine-aux`: the dataset's auxiliary information, STS from the features (and clusters) given."""
    return [mine_aux_to_file(config, output=io.outputs["aux"], features=io.input("features"),
                             clusters=io.input("clusters"), progress=progress)]

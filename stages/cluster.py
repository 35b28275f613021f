"""cluster stage: pseudo labels for one round from the train features.

Teng et al. 2022 (arXiv 2205.03124) cluster the teacher's cluster-mode features each round: the
k-reciprocal Jaccard distance (sparse, `stages.clustering.jaccard`), plus a same-camera penalty (SCP) and times
a spatio-temporal factor (STS), then DBSCAN, or cannot-link DBSCAN when temporal-overlap
constraints (TOC) are on. Each cluster's centroid and its K nearest clusters (the RLSCE neighbour
map of the ID loss) are stored beside the labels. `cluster_to_file` is the only function touching
files; everything else is pure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from stages.artifacts.h5 import Artifact, make_provenance, write_artifact
from stages.artifacts.lock import writes
from stages.artifacts.readers import read_clusters, read_features
from stages.artifacts.schemas import CLUSTERS
from stages.auxinfo.aux_file import missing_aux_message, read_aux
from stages.auxinfo.sts import group_pairs, transit_from_pairs
from stages.clustering.camera_norm import camera_standardise
from stages.clustering.centroids import centroid_neighbours, cluster_centroids
from stages.clustering.city import capped_distance
from stages.clustering.dbscan import dbscan
from stages.clustering.diagnosis import Knobs, failed_clustering_message
from stages.clustering.eps import adaptive_eps
from stages.clustering.icdbscan import cannot_link_violations, enforced_pairs, icdbscan
from stages.clustering.jaccard import jaccard_from_weights, jaccard_weights
from stages.clustering.knn import gpu_fallback_message, knn_settings
from stages.clustering.oracle import oracle_labels
from stages.clustering.penalties import AuxPenalties
from stages.clustering.quality import cluster_sizes, noise_ratio, quality
from stages.config import ClusterConfig, Config
from stages.data.frame_table import TABLE_COLUMNS
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress
from stages.rundir import StageIO
from stages.runtime import distributed_from_env, rank_device, resolve_device
from stages.shards import WHOLE, Shard, shard_from_env


@dataclass(frozen=True)
class ClusterResult:
    """Everything clusters.h5 stores, in memory.

    Attributes:
        labels: (n,) int64, -1 noise.
        centroids: (C, d) float32 mean member features.
        nearest: (C, K) int64 RLSCE neighbour map.
        eps: the radius used.
    """

    labels: np.ndarray
    centroids: np.ndarray
    nearest: np.ndarray
    eps: float

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])


def resolve_eps(
    cluster: ClusterConfig, *, eps_from: str | Path | None, fingerprint: str, progress: Progress | None = None
) -> tuple[float | None, str]:
    """The radius of this round when it is known before clustering, and where it comes from.

    Fixed: the config's eps. Adaptive: read back from round 1's clusters.h5 when `eps_from` is given
    (the paper computes it once, at the first round), else None: computed from this round's distance.

    Returns:
        (eps or None, source) with source "fixed", "adaptive" or "adaptive, from <path>".
    """
    if cluster.eps_mode == "fixed":
        return float(cluster.eps), "fixed"
    if eps_from is None:
        return None, "adaptive"
    first = read_clusters(eps_from, fingerprint=fingerprint, progress=progress)
    if "eps" not in first.attrs:
        raise AuxReidError(f"{eps_from} has no eps attribute; re-run `auxreid cluster` for its round")
    if not str(first.attrs.get("eps_source", "")).startswith("adaptive"):
        raise AuxReidError(
            f"{eps_from} used a {first.attrs.get('eps_source', 'unknown')} eps, not an adaptive one to reuse; re-run "
            "its round with cluster.eps_mode=adaptive, or set cluster.eps_mode=fixed"
        )
    return float(first.attrs["eps"]), f"adaptive, from {eps_from}"


def cluster_partition(
    distance: Any, *, eps: float, cluster: ClusterConfig, cannot_link: np.ndarray | None
) -> np.ndarray:
    """DBSCAN, or cannot-link DBSCAN when `cluster.toc` is on (then `cannot_link` is required).

    Returns:
        (n,) int64 labels, -1 noise.
    """
    if cluster.toc:
        assert cannot_link is not None, "TOC clustering needs the cannot-link pairs"
        return icdbscan(distance, cannot_link, eps=eps, min_samples=cluster.min_samples, relaxed=cluster.relaxed)
    return dbscan(distance, eps=eps, min_samples=cluster.min_samples)


def _train_columns(path: str | Path, round: int, progress: Progress) -> tuple[Artifact, dict[str, np.ndarray]]:
    """The train group of a cluster-mode features.h5 of `round`, validated by `read_features`."""
    features = read_features(path, round=round, split="train", mode="cluster", progress=progress)
    return features.artifact, features["train"]


def _load_aux_for(
    cluster: ClusterConfig, aux_path: str | Path | None, *, fingerprint: str, tracklet_index: np.ndarray,
    progress: Progress,
):
    """The AuxInfo when TOC, STS or the violation count can use it; refuses what the config needs but lacks.

    Oracle labels use none of it (only the violation count, when aux.h5 is given).
    """
    needs = [key for key, on in (("cluster.toc", cluster.toc), ("cluster.sts", cluster.sts))
             if on and cluster.labels == "clustering"]
    if aux_path is None:
        if needs:
            raise AuxReidError(missing_aux_message(needs))
        return None
    aux = read_aux(aux_path, fingerprint=fingerprint, progress=progress)
    count = aux.camera("train").shape[0]
    if not np.array_equal(tracklet_index, np.arange(count)):
        raise AuxReidError(
            f"{aux_path} describes {count} train tracklets but the features' rows are not exactly those, in order "
            f"({tracklet_index.size} rows); re-run `auxreid extract` for the whole train split"
        )
    if "cluster.toc" in needs:
        aux.require_times("cluster.toc")
    if "cluster.sts" in needs:
        aux.require_sts("cluster.sts")
    return aux


def _sts_model(
    config: Config, aux: Any, previous_clusters: str | Path | None, *, fingerprint: str, n: int, progress: Progress
):
    """The transit model STS uses: aux.h5's, or re-estimated from the previous round's clusters."""
    if not (config.cluster.sts_reestimate and previous_clusters is not None):
        return aux.transit
    previous = read_clusters(previous_clusters, fingerprint=fingerprint, progress=progress)
    labels = previous["labels"]
    if labels.shape[0] != n:
        raise AuxReidError(f"{previous_clusters} labels {labels.shape[0]} tracklets but the features have {n}")
    return transit_from_pairs(
        group_pairs(labels), aux.spans("train"),
        num_cameras=aux.transit.num_cameras, bin_seconds=config.aux.sts_bin_seconds,
        max_gap_seconds=config.aux.sts_max_gap_seconds, sigma_bins=config.aux.sts_smooth_sigma_bins,
        min_pairs=config.aux.sts_min_pairs, source="clusters",
    )


def cluster_features(
    features: np.ndarray,
    cluster: ClusterConfig,
    *,
    eps: float | None,
    cannot_link: np.ndarray | None = None,
    adjust: Any = None,
    seed: int = 0,
    progress: Progress | None = None,
    shard: Shard = WHOLE,
) -> tuple[np.ndarray, float, Any]:
    """Labels of n tracklets: Jaccard distance, optional aux terms (`adjust`), eps, (cannot-link) DBSCAN.

    From `cluster.jaccard_cap_from` tracklets on, the distance keeps only the pairs below a cap above the radius
    (`stages.clustering.city`): the same eps and labels, in memory that follows the pairs kept.

    Args:
        features: (n, d) cluster-mode features.
        cluster: the cluster config section.
        eps: the radius, or None to compute the adaptive eps from this distance.
        cannot_link: (m, 2) pairs for TOC clustering.
        adjust: optional function distance -> distance adding SCP / STS.
        seed: draws the rows a city-scale cap is measured on.
        progress: progress sink (kNN / Jaccard tasks are reported by `jaccard_weights` / `jaccard_from_weights`).
        shard: under torchrun, the slice of the kNN lists and Jaccard rows this rank computes; every rank gathers
            them all and gets the same labels (`stages.shards`).

    Returns:
        (labels (n,) int64, eps, the final sparse distance).
    """
    progress = progress or NullProgress()
    weights = jaccard_weights(
        features, k1=cluster.k1, k2=cluster.k2, normalize=cluster.normalize, backend=cluster.knn_backend,
        device=cluster.device, knn=knn_settings(cluster, seed=seed), progress=progress, shard=shard,
    )
    if len(features) >= cluster.jaccard_cap_from:
        distance, eps = capped_distance(weights, cluster, eps=eps, adjust=adjust, seed=seed, progress=progress,
                                        shard=shard)
    else:
        distance = jaccard_from_weights(weights, progress=progress, shard=shard)
        if adjust is not None:
            distance = adjust(distance)
        if eps is None:
            eps = float(adaptive_eps(distance, rho=cluster.rho, pairs_per_point=cluster.eps_pairs_per_point))
    task = "ICDBSCAN" if cluster.toc else "DBSCAN"
    progress.start(task, total=1)
    labels = cluster_partition(distance, eps=eps, cluster=cluster, cannot_link=cannot_link)
    progress.done(task, f"{int(labels.max()) + 1 if labels.size else 0} clusters at eps {eps:.4g}")
    return labels, eps, distance


def cluster_records(
    result: ClusterResult, *, columns: dict[str, np.ndarray], cannot_link: np.ndarray | None,
    enforced: np.ndarray | None, eps_source: str, algorithm: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The datasets and root attributes of clusters.h5 (see docs/artifacts.md).

    `cannot_link_violations` counts every cannot-link pair of aux.h5 that shares a cluster. Under
    TOC the pairs ICDBSCAN enforced (`enforced`, after `relaxed`) never do; with relaxed < 0 the
    far-apart pairs are not enforced and may. Both counts are left out when no pairs are known.
    Quality scores are written when every tracklet's person id is known (>= 0). The tracklet names and
    frames of features.h5 are copied when it has them, so the pseudo labels can be exported from this file alone.
    """
    labels = result.labels
    data = {
        "labels": labels,
        "centroids": result.centroids,
        "nearest_clusters": result.nearest,
        "sizes": cluster_sizes(labels),
        "tracklet_index": columns["tracklet_index"],
        "camera": columns["camera"],
        **{key: columns[key] for key in TABLE_COLUMNS if key in columns},
    }
    attrs: dict[str, Any] = {
        "eps": float(result.eps),
        "eps_source": eps_source,
        "algorithm": algorithm,
        "num_clusters": result.num_clusters,
        "noise_ratio": noise_ratio(labels),
    }
    if cannot_link is not None:
        attrs["cannot_link_pairs"] = len(np.unique(np.sort(cannot_link, axis=1), axis=0))
        attrs["cannot_link_violations"] = cannot_link_violations(labels, cannot_link)
    if enforced is not None:
        attrs["cannot_link_enforced"] = len(enforced)
        assert cannot_link_violations(labels, enforced) == 0, "ICDBSCAN let an enforced cannot-link pair meet"
    ids = columns["person_id"]
    if ids.size and (ids >= 0).all():
        data.update({f"quality/{key}": np.float64(value) for key, value in quality(labels, ids).items()})
    return data, attrs


@writes(lambda out_path, **_: (out_path,))
def cluster_to_file(
    config: Config,
    *,
    features_path: str | Path,
    aux_path: str | Path | None,
    out_path: str | Path,
    round: int,
    eps_from: str | Path | None = None,
    previous_clusters: str | Path | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    shard: Shard | None = None,
) -> Path:
    """Cluster one round's train features and write clusters.h5 (atomically).

    Under torchrun (`torchrun --nproc_per_node R -m auxreid_cli.main cluster ...`) each rank searches and computes
    its slice of the kNN lists and Jaccard rows, every rank gathers them and clusters alike, and rank 0 writes.

    Args:
        config: the run's config (its `cluster` and `aux` sections are used).
        features_path: features.h5 of this round (cluster mode, train split).
        aux_path: aux.h5 (cameras, TOC pairs, STS model), or None when neither TOC nor STS is on.
        out_path: clusters.h5 to write.
        round: the round; the features must be from it.
        eps_from: round 1's clusters.h5 to reuse its adaptive eps (later rounds).
        previous_clusters: the previous round's clusters.h5, for `cluster.sts_reestimate`.
        device: overrides config.cluster.device for the kNN searches (where, not what: the stored
            config stays the run's).
        progress: progress sink (kNN, Jaccard, DBSCAN, RLSCE map).
        shard: this process's slice of the rows (None: from torchrun's RANK / WORLD_SIZE, the whole without).

    Returns:
        out_path. A result without clusters is written too; `progress.warn` says so and
        `require_clusters` refuses it downstream. A clustering that mostly failed (mostly noise, or
        very few clusters) is written with one `progress.warn` that explains it
        (`stages.clustering.diagnosis`).
    """
    began = time.perf_counter()
    progress = progress or NullProgress()
    shard = shard_from_env() if shard is None else shard
    cluster = config.cluster if device is None else replace(config.cluster, device=device)
    if shard.world > 1:  # each rank searches on its own GPU (by LOCAL_RANK), or the CPU
        cluster = replace(cluster, device=str(rank_device(resolve_device(cluster.device), distributed_from_env())))
    fallback = gpu_fallback_message(resolve_device(cluster.device), cluster.knn_backend)  # a bad device fails here
    if fallback is not None:
        progress.warn(fallback)
    artifact, columns = _train_columns(features_path, round, progress)
    fingerprint = artifact.provenance.fingerprint
    features = columns["features"]
    oracle = cluster.labels == "oracle"
    aux = _load_aux_for(cluster, aux_path, fingerprint=fingerprint, tracklet_index=columns["tracklet_index"],
                        progress=progress)
    pairs = aux.cannot_link if aux is not None and aux.has_times else None
    if oracle:
        labels = oracle_labels(columns["person_id"], source=str(features_path))
        eps, eps_source, enforced = 0.0, "oracle", None
        eps_from = previous_clusters = None
        progress.warn(f"cluster.labels = oracle: round {round}'s pseudo labels are the {int(labels.max()) + 1} true "
                      "identities (an upper bound, not the method)")
    else:
        eps, eps_source = resolve_eps(cluster, eps_from=eps_from, fingerprint=fingerprint, progress=progress)
        adjust = None
        if cluster.scp or cluster.sts:
            transit = (_sts_model(config, aux, previous_clusters, fingerprint=fingerprint, n=features.shape[0],
                                  progress=progress)
                       if cluster.sts else None)
            adjust = AuxPenalties(
                camera=columns["camera"], scp_lambda=cluster.scp_lambda if cluster.scp else None,
                spans=aux.spans("train") if cluster.sts else None, transit=transit, sts_lambda=cluster.sts_lambda,
                sts_gamma=cluster.sts_gamma,
            )
        points = camera_standardise(features, columns["camera"]) if cluster.camera_norm else features
        labels, eps, distance = cluster_features(points, cluster, eps=eps, cannot_link=pairs, adjust=adjust,
                                                 seed=config.seed, progress=progress, shard=shard)
        enforced = enforced_pairs(distance, pairs, eps=eps, relaxed=cluster.relaxed) if cluster.toc else None
    if not shard.is_main:
        return Path(out_path)
    progress.start("RLSCE map", total=1)
    centroids = cluster_centroids(features, labels)
    nearest = centroid_neighbours(centroids, cluster=cluster)
    result = ClusterResult(labels=labels, centroids=centroids, nearest=nearest, eps=eps)
    progress.done("RLSCE map", f"K = {result.nearest.shape[1]}")
    algorithm = "oracle" if oracle else "icdbscan" if cluster.toc else "dbscan"
    data, attrs = cluster_records(result, columns=columns, cannot_link=pairs, enforced=enforced, eps_source=eps_source,
                                  algorithm=algorithm)
    attrs["seconds"] = time.perf_counter() - began
    attrs["rlsce_k"] = cluster.rlsce_k
    if "data_root" in artifact.attrs:
        attrs["data_root"] = str(artifact.attrs["data_root"])
    if "camera_labels" in artifact:  # so export and browse name the cameras from this file alone
        data["camera_labels"] = artifact["camera_labels"]
    sources = {"features": features_path, "aux": aux_path, "eps_from": eps_from,
               "previous_clusters": previous_clusters if cluster.sts and cluster.sts_reestimate else None}
    parents = {role: path for role, path in sources.items() if path is not None}
    provenance = make_provenance(CLUSTERS, dataset=artifact.provenance.dataset, fingerprint=fingerprint, round=round,
                                 config=config, parents=parents)
    written = write_artifact(out_path, provenance, data, attrs=attrs)
    knobs = Knobs(min_samples=cluster.min_samples, eps=eps, eps_source=eps_source, rho=cluster.rho,
                  dense_step=config.data.dense_step)
    warning = None if oracle else failed_clustering_message(
        labels, camera=columns["camera"], num_frames=columns["num_frames"], person_id=columns["person_id"], knobs=knobs,
        path=str(written))
    if warning is not None:
        progress.warn(warning)
    return written


def run_cluster(config: Config, io: StageIO, *, progress: Progress | None = None) -> list[Path]:
    """`auxreid cluster`: one round's pseudo labels from its features (and aux.h5, round 1's eps, ...)."""
    return [cluster_to_file(config, features_path=io.inputs["features"], aux_path=io.input("aux"),
                            out_path=io.outputs["clusters"], round=io.round, eps_from=io.input("eps_from"),
                            previous_clusters=io.input("previous_clusters"), device=io.options.get("device"),
                            progress=progress)]

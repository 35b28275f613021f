"""Says when a clustering mostly failed, with the numbers and the settings that explain it.

DBSCAN makes a cluster only around a core tracklet with `cluster.min_samples` tracklets within eps
(itself included). On a camera network where each identity has 2-4 tracklets, min_samples 4 leaves
most identities without a core point: a held-out Duke-layout network gave 2 clusters and 95.8 %
noise at min_samples 4, 25 clusters at 2, and 42 with `data.dense_step: 8` (more pieces per
identity). Nothing in the labels says why, so the stage warns once, above `NOISE_RATIO_LIMIT` noise
or below `CLUSTERS_PER_TRACKLET_LIMIT` clusters per tracklet, with the tracklets per camera, the
tracklet lengths and, when the dataset's ids are known, the tracklets per identity (used for this
diagnosis only, never for clustering), and the knobs that matter: min_samples, dense_step, rho / eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.artifacts.h5 import Artifact
from stages.clustering.dbscan import NOISE
from stages.errors import AuxReidError

#: Noise ratio above which the clustering is reported as mostly failed. On the synthetic network
#: (`configs/synth.yaml`, round 1) min_samples 4 and 3 leave 86 % and 81 % noise, min_samples 2 70 %.
NOISE_RATIO_LIMIT = 0.8
#: Fewer clusters than this fraction of the tracklets (on average more than 100 tracklets per cluster,
#: where identities have a few to a few dozen) is reported as mostly failed too.
CLUSTERS_PER_TRACKLET_LIMIT = 0.01
@dataclass(frozen=True)
class Knobs:
    """The settings the warning names, as used for this clustering.

    Attributes:
        min_samples: cluster.min_samples.
        eps: the radius used; eps_source: "fixed", "adaptive" or "adaptive, from <path>".
        rho: cluster.rho (the adaptive eps's fraction).
        dense_step: data.dense_step.
    """

    min_samples: int
    eps: float
    eps_source: str
    rho: float
    dense_step: int


def failed_clustering_message(
    labels: np.ndarray, *, camera: np.ndarray, num_frames: np.ndarray, person_id: np.ndarray, knobs: Knobs, path: str
) -> str | None:
    """The warning for a clustering that mostly failed, or None when it did not.

    Zero clusters give `zero_cluster_message` followed by the same explanation.

    Args:
        labels: (n,) cluster labels, -1 noise.
        camera: (n,) camera of each tracklet.
        num_frames: (n,) frames of each tracklet (or piece, with dense_step).
        person_id: (n,) dataset ids, -1 where unknown; only read when all are known.
        knobs: the settings used.
        path: the clusters.h5 written, named in the message.

    Returns:
        A multi-line message, or None.
    """
    n = labels.size
    clusters = int(labels.max()) + 1 if n else 0
    noise = float(np.mean(labels == NOISE)) if n else 0.0
    if n == 0 or (clusters > 0 and noise <= NOISE_RATIO_LIMIT and clusters >= CLUSTERS_PER_TRACKLET_LIMIT * n):
        return None
    if clusters == 0:
        head = zero_cluster_message(path, knobs.eps, knobs.eps_source)
    else:
        head = (f"{path}: clustering mostly failed: {clusters} cluster{'s' if clusters > 1 else ''} for {n:,} "
                f"tracklets, {noise:.1%} noise "
                f"(warned above {NOISE_RATIO_LIMIT:.0%} noise or below one cluster per "
                f"{1 / CLUSTERS_PER_TRACKLET_LIMIT:.0f} tracklets)")
    per_id = _tracklets_per_identity(person_id)
    lines = [head, _min_samples_line(knobs, per_id), _data_line(camera, num_frames, knobs),
             _try_line(knobs, per_id, num_frames)]
    return "\n  ".join(lines)


def _tracklets_per_identity(person_id: np.ndarray) -> np.ndarray | None:
    """(identities,) tracklets of each known identity, or None when some id is unknown."""
    if person_id.size == 0 or (person_id < 0).any():
        return None
    return np.unique(person_id, return_counts=True)[1]


def _spread(values: np.ndarray) -> str:
    return f"{int(values.min())} / {float(np.median(values)):g} / {int(values.max())}"


def _min_samples_line(knobs: Knobs, per_id: np.ndarray | None) -> str:
    line = (f"why: a cluster needs a core tracklet with cluster.min_samples = {knobs.min_samples} tracklets within "
            f"eps = {knobs.eps:.4g} ({knobs.eps_source}), itself included, so an identity with fewer tracklets "
            "cannot form one")
    if per_id is None:
        return line + "; the tracklets per identity are unknown here (no dataset ids)"
    below = float(np.mean(per_id < knobs.min_samples))
    return (line + f"; tracklets per identity (dataset ids, read for this check only) min / median / max "
            f"{_spread(per_id)}, {below:.0%} of {per_id.size:,} identities have fewer than {knobs.min_samples}")


def _data_line(camera: np.ndarray, num_frames: np.ndarray, knobs: Knobs) -> str:
    per_camera = np.unique(camera, return_counts=True)[1]
    cut = (f"pieces of {knobs.dense_step} frames, the last with the remainder (data.dense_step = {knobs.dense_step})"
           if knobs.dense_step else "whole tracklets")
    return (f"data: {camera.size:,} train tracklets on {per_camera.size} cameras, per camera min / median / max "
            f"{_spread(per_camera)}; frames per tracklet min / median / max {_spread(num_frames)} ({cut})")


def _try_line(knobs: Knobs, per_id: np.ndarray | None, num_frames: np.ndarray) -> str:
    hints = []
    if knobs.min_samples > 2:
        # Every identity can reach min_samples = its fewest tracklets; 2 is the smallest that still needs a pair.
        lower = 2 if per_id is None else int(np.clip(per_id.min(), 2, knobs.min_samples - 1))
        hints.append(f"--set cluster.min_samples={lower} (no more than the tracklets an identity has)")
    if knobs.dense_step:
        hints.append(f"a smaller data.dense_step (now {knobs.dense_step}) cuts each tracklet into more pieces")
    else:
        step = int(np.median(num_frames)) // max(knobs.min_samples, 2)
        example = f" (e.g. {step}: {max(knobs.min_samples, 2)} pieces of a median tracklet)" if step >= 2 else ""
        hints.append(f"data.dense_step{example} cuts tracklets into pieces, more per identity")
    hints[-1] += " (then re-run extract)"
    if knobs.eps_source == "fixed":
        hints.append(f"a larger cluster.eps (now {knobs.eps:.4g})")
    elif knobs.eps_source == "adaptive":
        hints.append(f"a larger cluster.rho (now {knobs.rho:g}) gives a larger adaptive eps")
    else:
        hints.append(f"a larger cluster.rho (now {knobs.rho:g}) at round 1, whose eps this round reuses")
    return "try: " + "; ".join(hints)


def zero_cluster_message(path: str | Path, eps: float, eps_source: str | None = None) -> str:
    """The one message for a clustering without clusters (cluster reports it, train-round refuses).

    The hint depends on where eps came from (clusters.h5's `eps_source`; None when unknown) and never
    proposes the eps that was just used.
    """
    if eps_source == "fixed":
        hint = f"raise cluster.eps above {eps:.6g} or use --set cluster.eps_mode=adaptive"
    elif eps_source == "adaptive":
        hint = "raise cluster.rho (a larger fraction of the distances gives a larger eps) or lower cluster.min_samples"
    elif eps_source:
        hint = (f"this eps is round 1's ({eps_source}): re-cluster round 1 with a larger cluster.rho, or use "
                f"--set cluster.eps_mode=fixed with cluster.eps above {eps:.6g}")
    else:
        hint = (f"raise cluster.eps above {eps:.6g} (fixed eps) or cluster.rho (adaptive eps), or lower "
                "cluster.min_samples")
    return f"{path} has no clusters: every tracklet is noise at eps={eps:.6g}; {hint}, then re-run `auxreid cluster`"


def require_clusters(artifact: Artifact) -> None:
    """Refuse a clusters.h5 with zero clusters (nothing to train on).

    Raises:
        AuxReidError: `zero_cluster_message`.
    """
    if int(artifact.attrs.get("num_clusters", len(artifact["centroids"]))) == 0:
        source = artifact.attrs.get("eps_source")
        raise AuxReidError(zero_cluster_message(artifact.path, float(artifact.attrs.get("eps", float("nan"))),
                                                None if source is None else str(source)))

"""Training losses of Teng et al. 2022, unsupervised video person re-id with auxiliary information
(arXiv 2205.03124), on top of the MMT mean-teacher framework.

ID losses (CE, LSCE, RLSCE), the batch-hard soft triplet and WATL on the student, and the mean
teacher's soft ID and soft triplet terms. All functions are pure torch: no I/O, no config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stages.errors import AuxReidError

# Offsets that push the other class out of reach in batch-hard mining (as in MMT's _batch_hard);
# finite, so a batch with no negative gives a finite loss instead of inf - inf = nan.
_FAR = 9999999.0

ID_LOSSES = ("rlsce", "lsce", "ce")
TRIPLET_LOSSES = ("soft", "watl")


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances as MMT computes them: sqrt(clamp(|x|^2 + |y|^2 - 2 x.y, 1e-12)).

    One matrix product instead of an (m, n, d) difference tensor; the clamp keeps rounding from
    putting a negative under the root and the gradient at zero distance finite.

    Args:
        x: rows `(m, d)`.
        y: rows `(n, d)`.

    Returns:
        Distances `(m, n)`.
    """
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * (x @ y.t())
    return sq.clamp(min=1e-12).sqrt()


def batch_hard(
    dist: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hardest positive (farthest, the anchor itself included) and hardest negative (nearest) per row.

    Args:
        dist: distances `(n, n)`.
        labels: pseudo labels `(n,)`.

    Returns:
        `(d_ap, d_an, ap_idx, an_idx)`, each `(n,)`.
    """
    same = (labels.unsqueeze(0) == labels.unsqueeze(1)).to(dist.dtype)
    d_ap, ap_idx = (dist - _FAR * (1.0 - same)).max(dim=1)
    d_an, an_idx = (dist + _FAR * same).min(dim=1)
    return d_ap, d_an, ap_idx, an_idx


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain cross-entropy on the pseudo labels, mean over the batch.

    Args:
        logits: classifier outputs `(n, C)`.
        labels: pseudo labels `(n,)` in `[0, C)`.

    Returns:
        Scalar loss.
    """
    return F.cross_entropy(logits, labels)


def _ce_with_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a soft target distribution `(n, C)`, summed over classes, mean over rows."""
    return (-target * F.log_softmax(logits, dim=1)).sum(1).mean()


def label_smoothing_ce(logits: torch.Tensor, labels: torch.Tensor, *, epsilon: float = 0.1) -> torch.Tensor:
    """LSCE: cross-entropy against (1 - eps) one-hot + eps / C on every cluster (MMT/SpCL style).

    Smoothing keeps the classifier from becoming over-confident in noisy pseudo labels.

    Args:
        logits: classifier outputs `(n, C)`.
        labels: pseudo labels `(n,)`.
        epsilon: mass spread uniformly over all C clusters.

    Returns:
        Scalar loss.
    """
    one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return _ce_with_target(logits, (1.0 - epsilon) * one_hot + epsilon / logits.shape[1])


def rlsce(
    logits: torch.Tensor, labels: torch.Tensor, nearest: torch.Tensor, *, epsilon: float = 0.1,
    k: int | None = None,
) -> torch.Tensor:
    """RLSCE: 1 - eps on the label, eps / K on each of the label's nearest clusters, 0 elsewhere.

    A wrong pseudo label most likely confuses neighbouring clusters, so the smoothing mass goes only
    to them instead of to all C clusters as in LSCE. K is the configured neighbour count even when a
    round has fewer other clusters (`nearest` then has C - 1 columns): the target then sums to less
    than 1, exactly as in the authors' code, so a round with few clusters is not smoothed harder.

    Args:
        logits: classifier outputs `(n, C)`.
        labels: pseudo labels `(n,)`.
        nearest: `(C, K')` int64, each cluster's K' = min(K, C - 1) nearest other clusters
            (clusters.h5's `nearest_clusters`); K' = 0 puts all mass on the label.
        epsilon: smoothing mass of a full set of K neighbours.
        k: the configured K, the divisor of epsilon; None divides by K' (the map's own width).

    Returns:
        Scalar loss.
    """
    one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    width = nearest.shape[1]
    if width == 0:
        return _ce_with_target(logits, (1.0 - epsilon) * one_hot if k else one_hot)
    divisor = width if k is None else k
    if divisor < width:
        raise ValueError(f"the RLSCE map has {width} neighbours per cluster, more than K = {divisor}")
    neighbours = torch.zeros_like(one_hot).scatter_(1, nearest[labels].long(), epsilon / divisor)
    return _ce_with_target(logits, (1.0 - epsilon) * one_hot + neighbours)


def soft_triplet(feats: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.0) -> torch.Tensor:
    """Soft triplet (MMT): -(m log p_ap + (1 - m) log p_an), p = softmax([d_ap, d_an]), batch-hard.

    With margin 0 this is -log softmax([d_ap, d_an])[an]: a margin-free triplet whose gradient
    fades once the negative is far relative to the positive.

    Args:
        feats: student features `(n, d)`, Euclidean distances (not normalised).
        labels: pseudo labels `(n,)`.
        margin: weight of the positive term; the paper uses 0.

    Returns:
        Scalar loss, mean over anchors.
    """
    d_ap, d_an, _, _ = batch_hard(euclidean_dist(feats, feats), labels)
    log_p = F.log_softmax(torch.stack((d_ap, d_an), dim=1), dim=1)
    return (-margin * log_p[:, 0] - (1.0 - margin) * log_p[:, 1]).mean()


def soft_triplet_teacher(feats: torch.Tensor, feats_teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean-teacher soft triplet: the student's batch-hard pair against the teacher's view of it.

    The hardest positive/negative are chosen on the student's distances; the teacher's distances
    at the same indices, softmaxed and detached, are the soft target of the student's
    log-softmax (MMT SoftTripletLoss with emb2).

    Args:
        feats: student features `(n, d)`.
        feats_teacher: teacher features `(n, d)`; receive no gradient.
        labels: pseudo labels `(n,)`.

    Returns:
        Scalar loss: (-target * log_p).mean(0).sum().
    """
    dist = euclidean_dist(feats, feats)
    _, _, ap_idx, an_idx = batch_hard(dist, labels)
    rows = torch.arange(feats.shape[0], device=feats.device)
    log_p = F.log_softmax(torch.stack((dist[rows, ap_idx], dist[rows, an_idx]), dim=1), dim=1)
    with torch.no_grad():
        dist_t = euclidean_dist(feats_teacher, feats_teacher)
        target = F.softmax(torch.stack((dist_t[rows, ap_idx], dist_t[rows, an_idx]), dim=1), dim=1)
    return (-target * log_p).mean(0).sum()


def watl(feats: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.5, lam: float = -0.01) -> torch.Tensor:
    """WATL: weighted adaptive triplet, mean of exp(lam t) t over violating triplets, t = d_ap - d_an + m.

    Triplets already satisfying the margin (t <= 0) contribute 0; lam < 0 down-weights the most
    violating ones, which under noisy pseudo labels are the most likely to be wrong.

    Args:
        feats: student features `(n, d)`, Euclidean distances (not normalised).
        labels: pseudo labels `(n,)`.
        margin: triplet margin m.
        lam: weight exponent lambda.

    Returns:
        Scalar loss, mean over all anchors.
    """
    d_ap, d_an, _, _ = batch_hard(euclidean_dist(feats, feats), labels)
    t = F.relu(d_ap - d_an + margin)  # t <= 0 -> 0 * exp(0) = 0, and no nan from exp of -t
    return (torch.exp(lam * t) * t).mean()


def soft_cross_entropy(logits: torch.Tensor, logits_teacher: torch.Tensor) -> torch.Tensor:
    """Soft ID: cross-entropy of the student's logits against the teacher's (detached) softmax.

    Args:
        logits: student classifier outputs `(n, C)`.
        logits_teacher: teacher classifier outputs `(n, C)`; receive no gradient.

    Returns:
        Scalar loss, mean over the batch.
    """
    return _ce_with_target(logits, F.softmax(logits_teacher.detach(), dim=1))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four terms in the total; defaults are the paper's."""

    id: float = 0.5
    triplet: float = 0.2
    soft_id: float = 0.5
    soft_triplet: float = 0.8


def _choose(name: str, choices: tuple[str, ...], what: str) -> str:
    if name not in choices:
        raise AuxReidError(f"unknown {what} {name!r}; choose one of: {', '.join(choices)}")
    return name


def total_loss(
    logits: torch.Tensor,
    feats: torch.Tensor,
    logits_teacher: torch.Tensor,
    feats_teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    id_loss: str = "rlsce",
    triplet: str = "soft",
    nearest: torch.Tensor | None = None,
    rlsce_k: int | None = None,
    epsilon: float = 0.1,
    soft_margin: float = 0.0,
    watl_margin: float = 0.5,
    watl_lambda: float = -0.01,
    weights: LossWeights = LossWeights(),
) -> dict[str, torch.Tensor]:
    """All four terms of one training step and their weighted sum.

    Args:
        logits, feats: student outputs `(n, C)` and `(n, d)`.
        logits_teacher, feats_teacher: mean-teacher outputs of the same batch; no gradient.
        labels: pseudo labels `(n,)`.
        id_loss: "rlsce", "lsce" or "ce".
        triplet: "soft" (soft triplet, `soft_margin`) or "watl" (`watl_margin`, `watl_lambda`).
        nearest: `(C, K')` nearest-cluster indices, required by "rlsce".
        rlsce_k: RLSCE's configured K, the divisor of epsilon (None: the map's width).
        epsilon: smoothing of LSCE/RLSCE.
        weights: the four weights.

    Returns:
        Scalars under "id", "triplet", "soft_id", "soft_triplet" and "total".

    Raises:
        AuxReidError: an unknown loss name.
    """
    id_name, tri_name = _choose(id_loss, ID_LOSSES, "ID loss"), _choose(triplet, TRIPLET_LOSSES, "triplet loss")
    if id_name == "rlsce":
        if nearest is None:
            raise ValueError("the rlsce ID loss needs the nearest-cluster map")
        id_term = rlsce(logits, labels, nearest, epsilon=epsilon, k=rlsce_k)
    elif id_name == "lsce":
        id_term = label_smoothing_ce(logits, labels, epsilon=epsilon)
    else:
        id_term = cross_entropy(logits, labels)
    if tri_name == "soft":
        tri_term = soft_triplet(feats, labels, margin=soft_margin)
    else:
        tri_term = watl(feats, labels, margin=watl_margin, lam=watl_lambda)
    soft_id, soft_tri = soft_cross_entropy(logits, logits_teacher), soft_triplet_teacher(feats, feats_teacher, labels)
    total = (weights.id * id_term + weights.triplet * tri_term
             + weights.soft_id * soft_id + weights.soft_triplet * soft_tri)
    return {"id": id_term, "triplet": tri_term, "soft_id": soft_id, "soft_triplet": soft_tri, "total": total}

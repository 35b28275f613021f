"""Retrieval metrics of the market1501 protocol: mAP, CMC (first match break) and mINP, vectorised.

For each query, gallery items with the same person id AND the same camera are ignored; queries left
with no correct match are skipped and counted. Average precision is the area under the
precision-recall curve exactly as scikit-learn's `average_precision_score` computes it on the
scores `-distance` (the reference's per-query loop, open-reid/SpCL `mean_ap`): gallery items with
tied distances form one step of the curve, so AP does not depend on how ties are ordered. CMC and
mINP count positions in the ranked list, where ties are broken by gallery index (a stable sort), so
results are the same on every machine. mINP follows Ye et al. (AGW, TPAMI 2021): the number of
correct matches over the position of the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.errors import AuxReidError

#: CMC ranks stored in artifacts (ranks 1..20).
CMC_RANKS = 20

#: Queries ranked per block: bounds memory to a few (block x gallery) arrays.
QUERY_BLOCK = 256


@dataclass(frozen=True)
class RankingResult:
    """Metrics of one query x gallery distance matrix plus each query's top-k gallery list.

    Attributes:
        ap: (n_query,) average precision per query, NaN for skipped queries.
        inp: (n_query,) inverse negative penalty per query, NaN for skipped queries.
        cmc: (max_rank,) fraction of valid queries whose first correct match is within rank r.
        mAP: mean of `ap` over valid queries.
        mINP: mean of `inp` over valid queries.
        num_valid: queries with at least one correct match after the protocol's filtering.
        num_skipped: queries without one (excluded from every mean).
        topk_index: (n_query, k) gallery indices by increasing distance, ties by index; unfiltered.
        topk_distance: (n_query, k) their distances.
    """

    ap: np.ndarray
    inp: np.ndarray
    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int
    num_skipped: int
    topk_index: np.ndarray
    topk_distance: np.ndarray


def check_ranking_inputs(
    dist: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: np.ndarray,
    gallery_cams: np.ndarray,
) -> None:
    """Refuse inputs whose shapes disagree or whose distances are not finite numbers.

    Raises:
        AuxReidError: naming the mismatching array and both lengths.
    """
    if dist.ndim != 2 or dist.shape[0] == 0 or dist.shape[1] == 0:
        raise AuxReidError(f"the distance matrix must be (n_query, n_gallery) with both > 0, got shape {dist.shape}")
    n_query, n_gallery = dist.shape
    for name, values, expected in (
        ("query person ids", query_ids, n_query),
        ("query cameras", query_cams, n_query),
        ("gallery person ids", gallery_ids, n_gallery),
        ("gallery cameras", gallery_cams, n_gallery),
    ):
        if values.ndim != 1 or len(values) != expected:
            raise AuxReidError(
                f"{name} have shape {values.shape} but the distance matrix has {expected} "
                f"{name.split()[0]} rows; ids and cameras must give one value per tracklet"
            )
    if dist.dtype.kind != "f" or not np.isfinite(dist).all():
        raise AuxReidError("the distance matrix holds non-finite values (NaN or inf); check the features for NaN")


def _tie_group_end(sorted_dist: np.ndarray) -> np.ndarray:
    """For each position of ascending rows, the last position holding the same distance. (b, g) int64."""
    b, g = sorted_dist.shape
    is_last = np.ones((b, g), dtype=bool)
    is_last[:, :-1] = sorted_dist[:, 1:] != sorted_dist[:, :-1]
    positions = np.where(is_last, np.arange(g), g)
    return np.minimum.accumulate(positions[:, ::-1], axis=1)[:, ::-1]


def _rank_block(
    dist: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: np.ndarray,
    gallery_cams: np.ndarray,
    *,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP, first-match position and top-k of a block of queries; see `evaluate_ranking`."""
    order = np.argsort(dist, axis=1, kind="stable")
    sorted_dist = np.take_along_axis(dist, order, axis=1)
    same_id = gallery_ids[order] == query_ids[:, None]
    valid = ~(same_id & (gallery_cams[order] == query_cams[:, None]))
    match = same_id & valid
    position = np.cumsum(valid, axis=1)  # 1-based position among valid items
    true_pos = np.cumsum(match, axis=1)
    num_pos = true_pos[:, -1]
    has_match = num_pos > 0
    # sklearn's AP: sum over tie groups of (recall step) x (precision at the group's end).
    group_end = _tie_group_end(sorted_dist)
    seen = np.maximum(np.take_along_axis(position, group_end, axis=1), 1)  # 0 only for ignored items
    precision_at_end = np.take_along_axis(true_pos, group_end, axis=1) / seen
    safe_pos = np.where(has_match, num_pos, 1)
    ap = np.where(match, precision_at_end, 0.0).sum(axis=1) / safe_pos
    last_match = np.where(match, position, 0).max(axis=1)
    inp = num_pos / np.maximum(last_match, 1)
    first_match = np.where(has_match, np.argmax(match, axis=1), 0)
    first_rank = np.take_along_axis(position, first_match[:, None], axis=1)[:, 0] - 1
    ap = np.where(has_match, ap, np.nan)
    inp = np.where(has_match, inp, np.nan)
    first_rank = np.where(has_match, first_rank, -1)
    return ap, inp, first_rank, order[:, :top_k], sorted_dist[:, :top_k]


def evaluate_ranking(
    dist: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: np.ndarray,
    gallery_cams: np.ndarray,
    *,
    max_rank: int = CMC_RANKS,
    top_k: int = 100,
    block: int = QUERY_BLOCK,
) -> RankingResult:
    """mAP, CMC and mINP of a distance matrix under the market1501 protocol, one sort per query block.

    Args:
        dist: (n_query, n_gallery) distances, smaller = more similar.
        query_ids: (n_query,) person ids.
        gallery_ids: (n_gallery,) person ids.
        query_cams: (n_query,) cameras.
        gallery_cams: (n_gallery,) cameras.
        max_rank: length of the CMC curve.
        top_k: gallery items kept per query in `topk_index` (clipped to n_gallery).
        block: queries sorted at once.

    Returns:
        RankingResult with per-query AP/INP (NaN where skipped), CMC, means and counts.

    Raises:
        AuxReidError: mismatching shapes, non-finite distances, or no query with a valid match.
    """
    dist = np.asarray(dist)
    ids_cams = [np.asarray(a) for a in (query_ids, gallery_ids, query_cams, gallery_cams)]
    check_ranking_inputs(dist, *ids_cams)
    query_ids, gallery_ids, query_cams, gallery_cams = ids_cams
    n_query, n_gallery = dist.shape
    top_k = min(top_k, n_gallery)
    parts = [
        _rank_block(
            dist[lo : lo + block],
            query_ids[lo : lo + block],
            gallery_ids,
            query_cams[lo : lo + block],
            gallery_cams,
            top_k=top_k,
        )
        for lo in range(0, n_query, block)
    ]
    ap, inp, first_rank, topk_index, topk_distance = (np.concatenate(p) for p in zip(*parts))
    valid = ~np.isnan(ap)
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise AuxReidError(
            f"none of the {n_query} queries has a correct match in the gallery once same-id same-camera "
            "items are ignored; check that query and gallery person ids and cameras belong to the same dataset"
        )
    hits = first_rank[valid]
    cmc = np.bincount(hits[hits < max_rank], minlength=max_rank).cumsum() / num_valid
    return RankingResult(
        ap=ap,
        inp=inp,
        cmc=cmc.astype(np.float64),
        mAP=float(np.mean(ap[valid])),
        mINP=float(np.mean(inp[valid])),
        num_valid=num_valid,
        num_skipped=n_query - num_valid,
        topk_index=topk_index.astype(np.int64),
        topk_distance=topk_distance,
    )

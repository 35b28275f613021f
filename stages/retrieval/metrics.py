"""Retrieval metrics of the market1501 protocol: mAP, CMC (first match break) and mINP, vectorised.

For each query, gallery items with the same person id AND the same camera are ignored; queries left
with no correct match are skipped and counted. Average precision is the area under the
precision-recall curve exactly as scikit-learn's `average_precision_score` computes it on the
scores `-distance` (the reference's per-query loop, open-reid/SpCL `mean_ap`): gallery items with
tied distances form one step of the curve, so AP does not depend on how ties are ordered. CMC and
mINP count positions in the ranked list, where ties are broken by gallery index, so results are the
same on every machine. mINP follows Ye et al. (AGW, TPAMI 2021): the number of correct matches over
the position of the last one.

Nothing is argsorted: only the few same-id (query, gallery) pairs of each query are ranked, by
counting the items of the row at or below each pair's distance (one comparison pass collects the
candidates up to the query's farthest same-id item). That is what makes it ~50x faster than the
reference's per-query loop at MARS size (benchmarks/evaluate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.errors import AuxReidError

#: CMC ranks stored in artifacts (ranks 1..20).
CMC_RANKS = 20

#: Queries ranked per block: bounds memory to a few (block x gallery) arrays.
QUERY_BLOCK = 512

#: Same-id pairs tied with other gallery items, resolved per chunk (each costs one gallery row).
TIE_CHUNK = 1024


@dataclass(frozen=True)
class RankingResult:
    """Metrics of one query x gallery distance matrix.

    Attributes:
        ap: (n_query,) average precision per query, NaN for skipped queries.
        inp: (n_query,) inverse negative penalty per query, NaN for skipped queries.
        cmc: (max_rank,) fraction of valid queries whose first correct match is within rank r.
        mAP: mean of `ap` over valid queries.
        mINP: mean of `inp` over valid queries.
        num_valid: queries with at least one correct match after the protocol's filtering.
        num_skipped: queries without one (excluded from every mean).
    """

    ap: np.ndarray
    inp: np.ndarray
    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int
    num_skipped: int


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
    if dist.dtype.kind != "f":
        raise AuxReidError(f"the distance matrix must hold floating-point values, got dtype {dist.dtype}")
    if not np.isfinite(dist).all():
        raise AuxReidError("the distance matrix holds non-finite values (NaN or inf); check the features for NaN")


def _match_pairs(query_ids: np.ndarray, gallery_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, gallery) pair with the same person id, grouped by query. Two (m,) int64 arrays."""
    by_id = np.argsort(gallery_ids, kind="stable")
    sorted_ids = gallery_ids[by_id]
    lo = np.searchsorted(sorted_ids, query_ids, side="left")
    counts = np.searchsorted(sorted_ids, query_ids, side="right") - lo
    pair_query = np.repeat(np.arange(len(query_ids)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return pair_query, by_id[np.repeat(lo, counts) + offsets]


def _counts_below(dist: np.ndarray, rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, how many items of its row of `dist` are <= and < its value.

    Only items up to the largest pair value of a row can count, so those candidates are collected
    with one comparison pass and bucketed against the row's (few, ascending) pair values; no row is
    sorted. `rows` ascend over the pairs and values ascend within a row.
    """
    n_rows = len(dist)
    bounds = np.searchsorted(rows, np.arange(n_rows + 1))
    ceiling = np.full(n_rows, -np.inf)
    present = np.diff(bounds) > 0
    ceiling[present] = values[bounds[1:][present] - 1]
    cand_row, cand_col = np.nonzero(dist <= ceiling[:, None].astype(dist.dtype))
    cand_value = dist[cand_row, cand_col]
    cand_bounds = np.searchsorted(cand_row, np.arange(n_rows + 1))
    at_most, equal = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
    for r in np.flatnonzero(present):  # O(candidates x log pairs) per query
        part = slice(bounds[r], bounds[r + 1])
        thresholds = values[part]
        found = cand_value[cand_bounds[r] : cand_bounds[r + 1]]
        slot = np.searchsorted(thresholds, found, side="left")  # thresholds below each candidate
        at_most[part] = np.cumsum(np.bincount(slot, minlength=len(thresholds) + 1))[:-1]
        hit = slot[found == thresholds[np.minimum(slot, len(thresholds) - 1)]]
        equal[part] = np.bincount(hit, minlength=len(thresholds))[np.searchsorted(thresholds, thresholds, side="left")]
    return at_most, at_most - equal


def top_k_gallery(dist: np.ndarray, *, k: int, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery items of each query, by distance then gallery index.

    Args:
        dist: (n_query, n_gallery) distances.
        k: items kept (clipped to n_gallery).
        block: queries per block.

    Returns:
        (n_query, k) int64 gallery indices and (n_query, k) their distances.
    """
    k = min(k, dist.shape[1])
    indices, distances = [], []
    for lo in range(0, len(dist), block):
        part = dist[lo : lo + block]
        kth = np.partition(part, k - 1, axis=1)[:, k - 1 : k]
        row, col = np.nonzero(part <= kth)
        values = part[row, col]
        order = np.lexsort((col, values, row))
        row, col, values = row[order], col[order], values[order]
        keep = np.arange(len(row)) - np.searchsorted(row, row, side="left") < k
        indices.append(col[keep].reshape(-1, k).astype(np.int64))
        distances.append(values[keep].reshape(-1, k))
    return np.concatenate(indices), np.concatenate(distances)


def _rank_block(
    dist: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: np.ndarray,
    gallery_cams: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP and first-match rank of a block of queries; see `evaluate_ranking`.

    Only the same-id (query, gallery) pairs are ranked: each is placed in its row by counting the
    items below it (`_counts_below`), and the pairs of a query sorted by (distance, index) say how
    many correct matches and ignored items precede or tie with each pair.
    """
    n_query = len(dist)
    pq, pg = _match_pairs(query_ids, gallery_ids)
    x = dist[pq, pg]
    order = np.lexsort((pg, x, pq))
    pq, pg, x = pq[order], pg[order], x[order]
    right = gallery_cams[pg] != query_cams[pq]  # same id, other camera: a correct match; else ignored
    at_most, below = np.zeros(len(pq), np.int64), np.zeros(len(pq), np.int64)
    at_most[right], below[right] = _counts_below(dist, pq[right], x[right])  # ignored pairs need no rank
    m = len(pq)
    index = np.arange(m)
    new_group = np.ones(m, dtype=bool)
    new_group[1:] = pq[1:] != pq[:-1]
    new_run = new_group.copy()
    new_run[1:] |= x[1:] != x[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, index, 0))
    run_start = np.maximum.accumulate(np.where(new_run, index, 0))
    run_end = np.append(np.flatnonzero(new_run)[1:], m)[np.cumsum(new_run) - 1] - 1
    c_right = np.concatenate([[0], np.cumsum(right)])
    c_ignored = np.concatenate([[0], np.cumsum(~right)])
    right_at_most = c_right[run_end + 1] - c_right[group_start]
    ignored_at_most = c_ignored[run_end + 1] - c_ignored[group_start]
    ignored_below = c_ignored[run_start] - c_ignored[group_start]
    # sklearn's AP: each tie group is one step, with the precision at the group's end.
    precision = right_at_most / np.maximum(at_most - ignored_at_most, 1)
    # Position among valid items in the (distance, index) order; ties with other rows' items are rare.
    tied_before = c_right[index + 1] - c_right[run_start]
    outside = right & ((at_most - below) != (run_end - run_start + 1))
    tied_outside = np.flatnonzero(outside)
    for lo in range(0, len(tied_outside), TIE_CHUNK):
        chosen = tied_outside[lo : lo + TIE_CHUNK]
        rows, cols = pq[chosen], pg[chosen]
        same = dist[rows] == x[chosen][:, None]
        same &= np.arange(dist.shape[1]) <= cols[:, None]
        same &= ~((gallery_ids == query_ids[rows][:, None]) & (gallery_cams == query_cams[rows][:, None]))
        tied_before[chosen] = same.sum(axis=1)
    position = below - ignored_below + tied_before
    num_right = np.bincount(pq[right], minlength=n_query)
    has_match = num_right > 0
    safe = np.maximum(num_right, 1)
    ap = np.bincount(pq[right], weights=precision[right], minlength=n_query) / safe
    first = np.full(n_query, np.iinfo(np.int64).max)
    np.minimum.at(first, pq[right], position[right])
    last = np.zeros(n_query, dtype=np.int64)
    np.maximum.at(last, pq[right], position[right])
    inp = num_right / np.maximum(last, 1)
    return np.where(has_match, ap, np.nan), np.where(has_match, inp, np.nan), np.where(has_match, first - 1, -1)


def evaluate_ranking(
    dist: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: np.ndarray,
    gallery_cams: np.ndarray,
    *,
    max_rank: int = CMC_RANKS,
    block: int = QUERY_BLOCK,
) -> RankingResult:
    """mAP, CMC and mINP of a distance matrix under the market1501 protocol, vectorised per query block.

    Args:
        dist: (n_query, n_gallery) distances, smaller = more similar.
        query_ids: (n_query,) person ids.
        gallery_ids: (n_gallery,) person ids.
        query_cams: (n_query,) cameras.
        gallery_cams: (n_gallery,) cameras.
        max_rank: length of the CMC curve.
        block: queries handled at once (bounds the (block, n_gallery) temporaries).

    Returns:
        RankingResult with per-query AP/INP (NaN where skipped), CMC, means and counts.

    Raises:
        AuxReidError: mismatching shapes, non-finite distances, or no query with a valid match.
    """
    dist = np.asarray(dist)
    ids_cams = [np.asarray(a) for a in (query_ids, gallery_ids, query_cams, gallery_cams)]
    check_ranking_inputs(dist, *ids_cams)
    query_ids, gallery_ids, query_cams, gallery_cams = ids_cams
    n_query = dist.shape[0]
    parts = [
        _rank_block(
            dist[lo : lo + block],
            query_ids[lo : lo + block],
            gallery_ids,
            query_cams[lo : lo + block],
            gallery_cams,
        )
        for lo in range(0, n_query, block)
    ]
    ap, inp, first_rank = (np.concatenate(p) for p in zip(*parts))
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
    )

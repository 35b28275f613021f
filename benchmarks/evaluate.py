"""Evaluation metrics at MARS size: the vectorised `stages.retrieval.metrics` against the reference's per-query loop.

Problem: 1,980 queries x 9,330 gallery tracklets (MARS test split sizes), 626 identities over 6
cameras with several gallery tracklets each plus distractors (id 0) and junk (id -1), features
d = 128 from identity centres + noise, squared Euclidean distance (float32).
Baseline, timed in the same run: the reference's open-reid/SpCL functions, i.e. one argsort of the
matrix, then per query a filtered row and sklearn's `average_precision_score` (mAP) and a Python
first-match loop (CMC). Ours: one `evaluate_ranking` call (mAP, CMC and mINP); the top-100 lists that
eval.h5 stores (`top_k_gallery`) are timed on their own line, outside the ratio.
Both results are checked equal (mAP and CMC within 1e-9).
Run: .venv/bin/python benchmarks/evaluate.py [--repeat 1] [--rerank]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import average_precision_score

from stages.retrieval.distance import squared_distances
from stages.retrieval.metrics import evaluate_ranking, top_k_gallery

N_QUERY, N_GALLERY, N_IDS, N_CAMS, DIM, TOP_CMC = 1980, 9330, 626, 6, 128, 20
#: Feature noise relative to the identity centres; 1.3 gives mAP about 0.7 (the paper reports 72.4 on MARS).
NOISE = 1.3


def mars_like(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Query/gallery features, ids and cameras shaped like the MARS test split."""
    rng = np.random.default_rng(seed)
    query_ids = np.concatenate([np.arange(1, N_IDS + 1), rng.integers(1, N_IDS + 1, N_QUERY - N_IDS)])
    n_distractor, n_junk = 1200, 400
    n_true = N_GALLERY - n_distractor - n_junk
    gallery_ids = np.concatenate([
        np.arange(1, N_IDS + 1), rng.integers(1, N_IDS + 1, n_true - N_IDS),
        np.zeros(n_distractor, np.int64), -np.ones(n_junk, np.int64),
    ])
    query_cams, gallery_cams = rng.integers(0, N_CAMS, N_QUERY), rng.integers(0, N_CAMS, N_GALLERY)
    centres = rng.normal(size=(N_IDS + 2, DIM))
    extra = np.where(gallery_ids <= 0, N_IDS + 1, gallery_ids)

    def embed(ids: np.ndarray) -> np.ndarray:
        noise = rng.normal(size=(len(ids), DIM)) * NOISE
        return (centres[ids] + noise).astype(np.float32)

    query, gallery = embed(query_ids), embed(extra)
    gallery[gallery_ids <= 0] = rng.normal(size=((gallery_ids <= 0).sum(), DIM)).astype(np.float32) * 1.6
    return query, gallery, query_ids, gallery_ids, query_cams, gallery_cams


def reference_map(dist, query_ids, gallery_ids, query_cams, gallery_cams) -> float:
    """The reference's `mean_ap`: per query, filter the sorted row and call sklearn."""
    indices = np.argsort(dist, axis=1)
    matches = gallery_ids[indices] == query_ids[:, None]
    aps = []
    for i in range(dist.shape[0]):
        valid = (gallery_ids[indices[i]] != query_ids[i]) | (gallery_cams[indices[i]] != query_cams[i])
        y_true = matches[i, valid]
        if not np.any(y_true):
            continue
        aps.append(average_precision_score(y_true, -dist[i][indices[i]][valid]))
    return float(np.mean(aps))


def reference_cmc(dist, query_ids, gallery_ids, query_cams, gallery_cams, topk: int = TOP_CMC) -> np.ndarray:
    """The reference's `cmc(..., first_match_break=True)` for the market1501 protocol."""
    indices = np.argsort(dist, axis=1)
    matches = gallery_ids[indices] == query_ids[:, None]
    ret = np.zeros(topk)
    valid_queries = 0
    for i in range(dist.shape[0]):
        valid = (gallery_ids[indices[i]] != query_ids[i]) | (gallery_cams[indices[i]] != query_cams[i])
        if not np.any(matches[i, valid]):
            continue
        first = np.nonzero(matches[i, valid])[0][0]
        if first < topk:
            ret[first] += 1
        valid_queries += 1
    return ret.cumsum() / valid_queries


def _best_of(repeat: int, func, *args):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="timed repetitions (best is shown)")
    parser.add_argument("--rerank", action="store_true", help="also time k-reciprocal re-ranking (ours only)")
    args = parser.parse_args()
    query, gallery, *labels = mars_like()
    dist = squared_distances(query, gallery)
    t_map, ref_map = _best_of(args.repeat, reference_map, dist, *labels)
    t_cmc, ref_cmc = _best_of(args.repeat, reference_cmc, dist, *labels)
    t_ours, ours = _best_of(args.repeat, evaluate_ranking, dist, *labels)
    assert abs(ours.mAP - ref_map) <= 1e-9, (ours.mAP, ref_map)
    assert np.abs(ours.cmc - ref_cmc).max() <= 1e-9
    print(f"MARS-sized evaluation: {N_QUERY} x {N_GALLERY}, mAP {ours.mAP:.4f}, rank-1 {ours.cmc[0]:.4f}, "
          f"{ours.num_skipped} queries skipped")
    t_top, _ = _best_of(args.repeat, lambda: top_k_gallery(dist, k=100))
    print(f"{'method':<48} {'seconds':>9} {'ratio':>8}")
    print(f"{'reference loop: mAP (sklearn per query)':<48} {t_map:>9.3f} {'':>8}")
    print(f"{'reference loop: CMC':<48} {t_cmc:>9.3f} {'':>8}")
    print(f"{'reference loop: mAP + CMC':<48} {t_map + t_cmc:>9.3f} {1.0:>7.1f}x")
    print(f"{'ours: evaluate_ranking (mAP, CMC, mINP)':<48} {t_ours:>9.3f} {(t_map + t_cmc) / t_ours:>7.1f}x")
    print(f"{'ours: top_k_gallery (top-100 per query, eval.h5)':<48} {t_top:>9.3f} {'':>8}")
    if args.rerank:
        from stages.retrieval.rerank import rerank_features

        t_rr, _ = _best_of(1, lambda: rerank_features(query, gallery, q_g=dist))
        print(f"{'ours: k-reciprocal re-ranking (k1 20, k2 6)':<48} {t_rr:>9.3f} {'':>8}")


if __name__ == "__main__":
    main()

"""Tests for stages/retrieval/metrics.py: market1501 mAP / CMC / mINP against the reference and sklearn."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from stages.errors import AuxReidError
from stages.retrieval.metrics import evaluate_ranking, top_k_gallery


def _reference_loop_map(dist, qid, gid, qcam, gcam):
    """The reference's per-query loop (open-reid `mean_ap`), kept here as the test oracle."""
    aps = []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        valid = (gid[order] != qid[i]) | (gcam[order] != qcam[i])
        y_true = gid[order][valid] == qid[i]
        if y_true.any():
            aps.append(average_precision_score(y_true, -dist[i][order][valid]))
    return float(np.mean(aps))


def _loop_cmc_inp(dist, qid, gid, qcam, gcam, max_rank=20):
    """Per-query loop over a stable argsort: CMC (first match break) and mINP (AGW), the test oracle."""
    hits, inps = np.zeros(max_rank), []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        valid = (gid[order] != qid[i]) | (gcam[order] != qcam[i])
        matches = gid[order][valid] == qid[i]
        if not matches.any():
            continue
        positions = np.flatnonzero(matches)
        if positions[0] < max_rank:
            hits[positions[0]] += 1
        inps.append(matches.sum() / (positions[-1] + 1))
    return hits.cumsum() / len(inps), float(np.mean(inps))


def test_evaluate_ranking_random_ties_match_loops():
    rng = np.random.default_rng(11)
    for _ in range(3):
        dist = rng.integers(0, 6, (25, 120)).astype(np.float32)
        qid, gid = rng.integers(0, 6, 25), rng.integers(0, 6, 120)
        qcam, gcam = rng.integers(0, 2, 25), rng.integers(0, 2, 120)
        r = evaluate_ranking(dist, qid, gid, qcam, gcam, block=4)
        cmc, minp = _loop_cmc_inp(dist, qid, gid, qcam, gcam)
        np.testing.assert_allclose(r.cmc, cmc, atol=1e-12, rtol=0)
        assert abs(r.mINP - minp) <= 1e-12
        assert abs(r.mAP - _reference_loop_map(dist, qid, gid, qcam, gcam)) <= 1e-12


def test_evaluate_ranking_matches_reference_vectors(reference):
    r = evaluate_ranking(reference["dist"], reference["qid"], reference["gid"], reference["qcam"], reference["gcam"])
    assert abs(r.mAP - float(reference["mAP"])) <= 1e-6
    np.testing.assert_allclose(r.cmc, reference["cmc"], atol=1e-6, rtol=0)
    assert (r.num_valid, r.num_skipped) == (120, 0)


def test_evaluate_ranking_matches_reference_rerank_metrics(reference):
    r = evaluate_ranking(reference["rerank"], reference["qid"], reference["gid"], reference["qcam"], reference["gcam"])
    assert abs(r.mAP - float(reference["rerank_mAP"])) <= 1e-6
    np.testing.assert_allclose(r.cmc, reference["rerank_cmc"], atol=1e-6, rtol=0)


def test_evaluate_ranking_ties_equal_sklearn():
    rng = np.random.default_rng(3)
    dist = rng.integers(0, 5, (40, 150)).astype(np.float32)  # heavy ties
    qid, gid = rng.integers(0, 8, 40), rng.integers(0, 8, 150)
    qcam, gcam = rng.integers(0, 3, 40), rng.integers(0, 3, 150)
    r = evaluate_ranking(dist, qid, gid, qcam, gcam, block=7)
    assert abs(r.mAP - _reference_loop_map(dist, qid, gid, qcam, gcam)) <= 1e-12


def test_evaluate_ranking_ties_rank_by_gallery_index():
    # gallery 0 (wrong) and 1 (right) tie: index order puts the wrong one first -> rank 2; AP groups them
    dist = np.array([[0.5, 0.5, 0.9]], dtype=np.float32)
    r = evaluate_ranking(dist, np.array([1]), np.array([2, 1, 1]), np.array([0]), np.array([1, 1, 2]))
    np.testing.assert_array_equal(r.cmc[:2], [0.0, 1.0])
    assert r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
    assert r.mINP == pytest.approx(2 / 3, abs=1e-12)


def test_evaluate_ranking_blocks_do_not_change_results(reference):
    args = (reference["dist"], reference["qid"], reference["gid"], reference["qcam"], reference["gcam"])
    whole, blocked = evaluate_ranking(*args), evaluate_ranking(*args, block=7)
    np.testing.assert_array_equal(blocked.ap, whole.ap)
    np.testing.assert_array_equal(blocked.cmc, whole.cmc)
    np.testing.assert_array_equal(blocked.inp, whole.inp)


def test_top_k_gallery_orders_by_distance_then_index():
    dist = np.array([[0.3, 0.1, 0.3, 0.2], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    index, values = top_k_gallery(dist, k=3, block=1)
    np.testing.assert_array_equal(index, [[1, 3, 0], [0, 1, 2]])
    np.testing.assert_array_equal(values, np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]], dtype=np.float32))
    assert top_k_gallery(dist, k=10)[0].shape == (2, 4)


def test_evaluate_ranking_hand_example():
    # query 0 (id 1, cam 0); gallery sorted by distance: id1/cam0 (ignored), id2, id1/cam1, id1/cam2
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    r = evaluate_ranking(dist, np.array([1]), np.array([1, 2, 1, 1]), np.array([0]), np.array([0, 1, 1, 2]))
    # valid ranking: wrong, right, right -> AP = (1/2 + 2/3) / 2, first hit at rank 2, INP = 2/3
    assert r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
    assert r.mINP == pytest.approx(2 / 3, abs=1e-12)
    np.testing.assert_array_equal(r.cmc[:3], [0.0, 1.0, 1.0])


def test_evaluate_ranking_skips_query_without_valid_match():
    dist = np.array([[0.1, 0.9], [0.5, 0.2]])
    # query 1 (id 7, cam 0) only matches gallery 0 which is in its own camera -> skipped
    r = evaluate_ranking(dist, np.array([3, 7]), np.array([7, 3]), np.array([0, 0]), np.array([0, 1]))
    assert (r.num_valid, r.num_skipped) == (1, 1)
    assert np.isnan(r.ap[1]) and r.ap[0] == pytest.approx(0.5)
    assert r.mAP == pytest.approx(0.5)


def test_evaluate_ranking_all_invalid_raises():
    with pytest.raises(AuxReidError, match="none of the 2 queries has a correct match in the gallery"):
        evaluate_ranking(np.ones((2, 2)), np.array([1, 2]), np.array([3, 4]), np.array([0, 0]), np.array([0, 1]))


def test_evaluate_ranking_length_mismatch_raises():
    with pytest.raises(AuxReidError, match=r"gallery cameras have shape \(3,\) but the distance matrix has 2"):
        evaluate_ranking(np.ones((1, 2)), np.array([1]), np.array([1, 2]), np.array([0]), np.array([0, 1, 2]))


def test_evaluate_ranking_nan_raises():
    with pytest.raises(AuxReidError, match="non-finite values"):
        evaluate_ranking(np.array([[np.nan, 1.0]]), np.array([1]), np.array([1, 2]), np.array([0]), np.array([1, 1]))


def test_evaluate_ranking_does_not_modify_inputs(reference):
    dist = reference["dist"].copy()
    evaluate_ranking(dist, reference["qid"], reference["gid"], reference["qcam"], reference["gcam"])
    np.testing.assert_array_equal(dist, reference["dist"])

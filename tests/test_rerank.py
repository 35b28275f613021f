"""Tests for stages/retrieval/rerank.py: k-reciprocal re-ranking against the reference vectors."""

import numpy as np
import pytest

import stages.retrieval.rerank as rerank_module
from stages.retrieval.distance import squared_distances
from stages.retrieval.metrics import evaluate_ranking
from stages.retrieval.rerank import rerank, rerank_features


def test_rerank_matches_reference_vectors(reference):
    q, g = reference["query_emb"], reference["gallery_emb"]
    out = rerank(reference["dist"], squared_distances(q, q), squared_distances(g, g), k1=20, k2=6, lam=0.3)
    assert out.shape == (120, 600) and out.dtype == np.float32
    assert np.abs(out - reference["rerank"]).max() <= 1e-4


def test_rerank_features_matches_reference_metrics(reference):
    out = rerank_features(reference["query_emb"], reference["gallery_emb"])
    assert np.abs(out - reference["rerank"]).max() <= 1e-4
    r = evaluate_ranking(out, reference["qid"], reference["gid"], reference["qcam"], reference["gcam"])
    assert abs(r.mAP - float(reference["rerank_mAP"])) <= 1e-6
    np.testing.assert_allclose(r.cmc, reference["rerank_cmc"], atol=1e-6, rtol=0)


def test_rerank_features_small_blocks_equal_one_block(reference, monkeypatch):
    q, g = reference["query_emb"][:40], reference["gallery_emb"][:200]
    whole = rerank_features(q, g, k1=10, k2=3)
    monkeypatch.setattr(rerank_module, "ROW_BLOCK", 17)
    np.testing.assert_allclose(rerank_features(q, g, k1=10, k2=3), whole, atol=1e-6, rtol=0)


def test_rerank_lambda_one_is_normalised_original():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(6, 4)), rng.normal(size=(15, 4))
    q_g, q_q = squared_distances(q, g), squared_distances(q, q)
    out = rerank(q_g, q_q, squared_distances(g, g), k1=4, k2=2, lam=1.0)
    row_max = np.hstack([q_q, q_g]).astype(np.float64).max(axis=1) ** 2
    np.testing.assert_allclose(out, q_g.astype(np.float64) ** 2 / row_max[:, None], rtol=1e-6)


def test_rerank_duplicate_of_query_gets_zero_distance():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(20, 5))
    q = g[[3]]  # the query is gallery item 3
    out = rerank_features(q, g, k1=5, k2=1, lam=0.3)
    assert out[0, 3] == pytest.approx(0.0, abs=1e-6)
    assert out[0].argmin() == 3 and np.delete(out[0], 3).min() > 0.1


def test_rerank_does_not_modify_inputs(reference):
    q_g = reference["dist"].copy()
    q = reference["query_emb"].copy()
    rerank_features(q, reference["gallery_emb"], q_g=q_g, k1=5, k2=2)
    np.testing.assert_array_equal(q_g, reference["dist"])
    np.testing.assert_array_equal(q, reference["query_emb"])

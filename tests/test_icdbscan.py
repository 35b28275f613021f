"""Cannot-link DBSCAN: reference vectors, a set-based oracle, relaxed semantics, dissolution, inputs."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

from stages.clustering.dbscan import dbscan
from stages.clustering.icdbscan import cannot_link_graph, cannot_link_violations, enforced_pairs, icdbscan
from stages.errors import AuxReidError


def _sparse_below_one(dense):
    rows, cols = np.nonzero(dense < 1)
    return sparse.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)


def _oracle(dense, pairs, eps, min_samples, relaxed):
    """Straightforward set-based ICDBSCAN with the same visiting order (FIFO; by distance, then -index)."""
    n = len(dense)
    neighbours = [set(np.flatnonzero(dense[i] <= eps).tolist()) | {i} for i in range(n)]
    links = [set() for _ in range(n)]
    for i, j in pairs:
        if i != j:
            links[i].add(j)
            links[j].add(i)
    if relaxed is not None:
        for i in range(n):
            far = dense[i] > eps * -relaxed if relaxed < 0 else dense[i] <= eps * relaxed
            links[i] -= set(np.flatnonzero(far).tolist())
    labels = np.full(n, -2)
    cluster = 0
    for start in range(n):
        if labels[start] != -2:
            continue
        labels[start], members, forbidden = cluster, [start], set(links[start])
        for current in members:
            seeds = neighbours[current] - links[current] - forbidden
            if len(seeds) < min_samples:
                continue
            for q in sorted(seeds, key=lambda q: (dense[current, q], -q)):
                if labels[q] == -2 and q not in forbidden:
                    labels[q] = cluster
                    members.append(q)
                    forbidden |= links[q]
        if len(members) < min_samples:
            labels[members] = -2
        else:
            cluster += 1
    labels[labels == -2] = -1
    return labels


def test_icdbscan_matches_reference_labels_without_violations(reference):
    pairs = reference["cannot_link_pairs"]
    labels = icdbscan(_sparse_below_one(reference["jaccard"]), pairs, eps=float(reference["eps"]), relaxed=-1.0)
    assert adjusted_rand_score(labels, reference["icdbscan_labels"]) >= 0.99
    np.testing.assert_array_equal(labels, reference["icdbscan_labels"])
    assert cannot_link_violations(labels, pairs) == 0
    assert labels.max() + 1 == 22 and int((labels == -1).sum()) == 482


@pytest.mark.parametrize("seed", range(30))
def test_icdbscan_equals_set_based_oracle_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 50))
    centers = rng.random((4, 2))
    points = centers[rng.integers(0, 4, n)] + rng.normal(0, 0.05, (n, 2))
    dense = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).round(2)
    dense[dense > 0.6] = 1.0
    pairs = rng.integers(0, n, (int(rng.integers(0, 3 * n)), 2))
    eps, min_samples = float(rng.uniform(0.05, 0.2)), int(rng.integers(2, 5))
    relaxed = [None, 0.5, -1.0, -3.0][seed % 4]
    labels = icdbscan(_sparse_below_one(dense), pairs, eps=eps, min_samples=min_samples, relaxed=relaxed)
    np.testing.assert_array_equal(labels, _oracle(dense, pairs, eps, min_samples, relaxed))
    if relaxed is None:
        assert cannot_link_violations(labels, pairs) == 0


def test_icdbscan_without_cannot_links_equals_dbscan_on_reference(reference):
    graph = _sparse_below_one(reference["jaccard"])
    labels = icdbscan(graph, np.zeros((0, 2), np.int64), eps=float(reference["eps"]))
    assert adjusted_rand_score(labels, dbscan(graph, eps=float(reference["eps"]))) == 1.0


def _two_clumps():
    """Points 0-4 all at distance 0.1 from each other; point 5 far away."""
    dense = np.ones((6, 6))
    dense[:5, :5] = 0.1
    np.fill_diagonal(dense, 0)
    return dense


def test_icdbscan_splits_cannot_linked_pair_and_keeps_the_nearer_first():
    dense = _two_clumps()
    dense[0, 1] = dense[1, 0] = 0.05
    labels = icdbscan(_sparse_below_one(dense), np.array([[1, 4]]), eps=0.2, min_samples=3)
    # 0 starts, admits its neighbours by distance: 0, 1 (0.05), then 4, 3, 2; 4 cannot join 1's cluster.
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, -1, -1])


@pytest.mark.parametrize("noisy", [1, 2])
def test_icdbscan_tie_rule_does_not_hinge_on_float_noise(noisy):
    # 1 and 2 cannot-link; both are at distance 0 from 0 in exact arithmetic, one comes out as 4e-7.
    # Either way they tie, and the larger index (2) is admitted first; 1 is left out.
    dense = _two_clumps()[:5, :5]
    dense[0, [1, 2]] = dense[[1, 2], 0] = 0.0
    dense[0, noisy] = dense[noisy, 0] = 4e-7
    labels = icdbscan(_sparse_below_one(dense), np.array([[1, 2]]), eps=0.2, min_samples=3)
    np.testing.assert_array_equal(labels, [0, -1, 0, 0, 0])


def test_icdbscan_dissolves_clusters_below_min_samples():
    # {0, 1, 2, 3} is a tight cluster; 4 touches 1, 2, 3 but cannot-links 0, so it cannot join it. 4 still
    # counts 4 neighbours (1, 2, 3 and itself) and starts a cluster, which ends as {4} and is dissolved.
    dense = np.ones((5, 5))
    dense[:4, :4] = 0.1
    dense[4, 1:4] = dense[1:4, 4] = 0.15
    np.fill_diagonal(dense, 0)
    graph = _sparse_below_one(dense)
    np.testing.assert_array_equal(icdbscan(graph, np.array([[0, 4]]), eps=0.2, min_samples=4), [0, 0, 0, 0, -1])
    np.testing.assert_array_equal(dbscan(graph, eps=0.2, min_samples=4), [0, 0, 0, 0, 0])


def test_icdbscan_static_core_ignores_cannot_linked_neighbours():
    dense = _two_clumps()
    pairs = np.array([[0, 2], [0, 3], [0, 4], [1, 2], [1, 3], [1, 4]])
    # 0 and 1 keep 2 usable neighbours each, 2, 3 and 4 keep 3: no core at min_samples 4.
    np.testing.assert_array_equal(icdbscan(_sparse_below_one(dense), pairs, eps=0.2, min_samples=4), [-1] * 6)
    np.testing.assert_array_equal(icdbscan(_sparse_below_one(dense), pairs, eps=0.2, min_samples=3),
                                  [-1, -1, 0, 0, 0, -1])


def test_cannot_link_graph_relaxed_semantics():
    dense = np.ones((4, 4))
    np.fill_diagonal(dense, 0)
    dense[0, 1] = dense[1, 0] = 0.1
    dense[0, 2] = dense[2, 0] = 0.3
    graph = _sparse_below_one(dense)
    pairs = np.array([[0, 1], [2, 0], [0, 3], [1, 1]])

    def rows(relaxed):
        indptr, indices = cannot_link_graph(graph, pairs, eps=0.2, relaxed=relaxed)
        return [indices[indptr[i] : indptr[i + 1]].tolist() for i in range(4)]

    assert rows(None) == [[1, 2, 3], [0], [0], [0]]
    assert rows(0.5) == [[2, 3], [], [0], [0]]  # links at distance <= 0.1 dropped
    assert rows(-1.0) == [[1], [0], [], []]  # only links at distance <= 0.2 kept
    assert rows(-2.0) == [[1, 2], [0], [0], []]
    assert rows(-6.0) == rows(None)  # eps * 6 > 1: even off-support pairs (1.0) are near
    assert rows(6.0) == [[], [], [], []]
    np.testing.assert_array_equal(enforced_pairs(graph, pairs, eps=0.2, relaxed=-2.0), [[0, 1], [0, 2]])


def test_icdbscan_does_not_modify_inputs(reference):
    graph = _sparse_below_one(reference["jaccard"][:200, :200])
    pairs = reference["cannot_link_pairs"]
    pairs = pairs[(pairs < 200).all(1)]
    before_graph, before_pairs = graph.copy(), pairs.copy()
    icdbscan(graph, pairs, eps=float(reference["eps"]), relaxed=1.0)
    assert (graph != before_graph).nnz == 0
    np.testing.assert_array_equal(pairs, before_pairs)


def test_icdbscan_is_deterministic(reference):
    graph, pairs, eps = _sparse_below_one(reference["jaccard"]), reference["cannot_link_pairs"], float(reference["eps"])
    np.testing.assert_array_equal(icdbscan(graph, pairs, eps=eps), icdbscan(graph, pairs, eps=eps))


def test_icdbscan_rejects_out_of_range_pairs():
    graph = sparse.csr_matrix(np.zeros((3, 3)))
    with pytest.raises(AuxReidError, match=r"cannot-link pairs index tracklets 0\.\.5 but there are 3"):
        icdbscan(graph, np.array([[0, 5]]), eps=0.1)
    with pytest.raises(AuxReidError, match=r"must be an \(m, 2\) integer array, got shape \(3,\)"):
        icdbscan(graph, np.array([0, 1, 2]), eps=0.1)


def test_cannot_link_violations_counts_distinct_pairs_in_clusters():
    labels = np.array([0, 0, 1, -1, -1, 1])
    assert cannot_link_violations(labels, np.array([[0, 1], [1, 0], [3, 4], [2, 5], [0, 2]])) == 2


def test_benchmark_set_based_baselines_match_reference_labels(reference):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cluster_icdbscan.py"
    spec = importlib.util.spec_from_file_location("cluster_icdbscan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dense, pairs, eps = reference["jaccard"], reference["cannot_link_pairs"], float(reference["eps"])
    for baseline in (module.sets_reference_structure, module.sets_numpy_rows):
        np.testing.assert_array_equal(baseline(dense, pairs, eps=eps, relaxed=-1.0), reference["icdbscan_labels"])

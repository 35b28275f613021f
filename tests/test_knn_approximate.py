"""Approximate kNN (IVF, HNSW, PCA): the exact search's contract, determinism, recall, auto's threshold, errors."""

import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import stages.clustering.knn as knn_module
from stages.cluster import cluster_features
from stages.clustering.jaccard import jaccard_distance
from stages.clustering.knn import EXACT, KnnSettings, knn_search, knn_settings
from stages.config import Config
from stages.errors import AuxReidError

METHODS = ("ivf", "hnsw", "nndescent")


def _clustered(n=3000, d=64, *, latent=12, seed=0):
    """Identities of 2..30 points on a low-dimensional subspace plus isotropic noise, as network features are."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 31, size=n)
    labels = np.repeat(np.arange(n), sizes)[:n]
    centres = rng.standard_normal((n, latent))
    codes = centres[labels] + 0.5 * rng.standard_normal((n, latent))
    basis = np.linalg.qr(rng.standard_normal((d, latent)))[0]
    points = codes @ basis.T + 0.1 * rng.standard_normal((n, d))
    return points.astype(np.float32)


def _recall(found, exact):
    return float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, exact)]) / exact.shape[1])


def _brute_sqdist(points, indices):
    x = points.astype(np.float64)
    return ((x[indices] - x[:, None, :]) ** 2).sum(axis=2)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pca_dim", [0, 16])
def test_knn_search_approximate_keeps_the_exact_contract(method, pca_dim):
    points = _clustered(n=1500)
    before = points.copy()
    found = knn_search(points, k=30, search=KnnSettings(method=method, pca_dim=pca_dim))
    assert found.indices.shape == found.sqdist.shape == (1500, 30)
    assert found.indices.dtype == np.int64 and found.sqdist.dtype == np.float32
    np.testing.assert_array_equal(found.indices[:, 0], np.arange(1500))
    assert (np.diff(found.sqdist, axis=1) >= 0).all()
    assert all(len(np.unique(row)) == 30 for row in found.indices)
    np.testing.assert_allclose(found.sqdist, _brute_sqdist(points, found.indices), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(points, before)


@pytest.mark.parametrize("method", METHODS)
def test_knn_search_approximate_breaks_ties_by_index_self_first(method):
    points = np.array([[1, 0], [0, 0], [1, 0], [3, 0], [1, 0]], dtype=np.float32)
    found = knn_search(points, k=4, search=KnnSettings(method=method))
    exact = knn_search(points, k=4)
    np.testing.assert_array_equal(found.indices, exact.indices)
    np.testing.assert_array_equal(found.indices[4], [4, 0, 2, 1])
    np.testing.assert_array_equal(found.sqdist[4], [0, 0, 0, 1])


@pytest.mark.parametrize("settings", [KnnSettings(method="ivf"), KnnSettings(method="hnsw"),
                                      KnnSettings(method="ivf", pca_dim=16), KnnSettings(method="nndescent")])
def test_knn_search_approximate_is_deterministic(settings):
    points = _clustered(n=2000, seed=1)
    first, second = (knn_search(points, k=30, search=settings) for _ in range(2))
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.sqdist, second.sqdist)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pca_dim", [0, 24])
def test_knn_search_approximate_recall_at_30_is_at_least_098(method, pca_dim):
    points = _clustered(n=4000, seed=2)
    exact = knn_search(points, k=30)
    found = knn_search(points, k=30, search=KnnSettings(method=method, exact_max=100, pca_dim=pca_dim))
    assert _recall(found.indices, exact.indices) >= 0.98


def test_nn_descent_gives_the_same_lists_on_any_number_of_threads():
    import numba

    points = _clustered(n=2500, seed=4)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = knn_search(points, k=30, search=KnnSettings(method="nndescent"))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        more = knn_search(points, k=30, search=KnnSettings(method="nndescent"))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.indices, more.indices)
    np.testing.assert_array_equal(one.sqdist, more.sqdist)


def test_nn_descent_starts_from_trees_whose_leaves_hold_near_points():
    from stages.clustering.nndescent import nn_descent

    points = _clustered(n=3000, seed=6)
    exact = knn_search(points, k=30)
    _, start, rounds = nn_descent(points, k=30, max_rounds=0)
    _, refined, rounds_run = nn_descent(points, k=30)
    assert rounds == 0 and 1 <= rounds_run <= 12
    assert _recall(start, exact.indices) < 0.9 < _recall(refined, exact.indices)  # the rounds do the work


def test_auto_is_the_exact_search_up_to_exact_max(monkeypatch):
    points = _clustered(n=500, seed=3)
    exact = knn_search(points, k=30)
    auto = knn_search(points, k=30, search=KnnSettings(method="auto", exact_max=500, pca_dim=8))
    np.testing.assert_array_equal(auto.indices, exact.indices)
    np.testing.assert_array_equal(auto.sqdist, exact.sqdist)
    used = []
    real = knn_module.build_index
    monkeypatch.setattr(knn_module, "build_index", lambda *a, **kw: used.append(kw["method"]) or real(*a, **kw))
    knn_search(points, k=30, search=KnnSettings(method="auto", exact_max=500))
    assert used == []
    knn_search(points, k=30, search=KnnSettings(method="auto", exact_max=499))
    assert used == [knn_module.AUTO_APPROXIMATE]


def test_knn_settings_follow_the_cluster_config():
    cluster = Config().cluster
    assert knn_settings(cluster) == KnnSettings(method="auto", exact_max=200_000, pca_dim=0)
    assert knn_settings(replace(cluster, knn="ivf", knn_pca_dim=64)).chosen(10) == "ivf"
    assert KnnSettings(method="auto").chosen(200_000) == "exact" and EXACT.chosen(10**7) == "exact"
    assert KnnSettings(method="auto").chosen(200_001) == knn_module.AUTO_APPROXIMATE


def test_jaccard_progress_says_which_search_ran():
    class Recorder:
        def __init__(self):
            self.messages = {}

        def start(self, task, total=None):
            pass

        def advance(self, task, amount=1):
            pass

        def done(self, task, message=""):
            self.messages[task] = message

    points = _clustered(n=300, seed=4)
    exact, approximate = Recorder(), Recorder()
    jaccard_distance(points, k1=30, k2=6, progress=exact)
    jaccard_distance(points, k1=30, k2=6, knn=KnnSettings(method="hnsw", pca_dim=8), progress=approximate)
    assert exact.messages["kNN"] == "300 x 30 neighbours, exact"
    assert approximate.messages["kNN"] == ("300 x 30 neighbours, approximate: hnsw (M 32, efSearch 256) on 8 PCA dims, "
                                       "exact re-rank, recall not measured")


def test_cluster_features_auto_gives_the_exact_labels(reference):
    cluster = Config().cluster
    cluster.k1, cluster.k2 = 30, 6
    exact_labels, exact_eps, _ = cluster_features(reference["features"], replace(cluster, knn="exact"), eps=None)
    auto_labels, auto_eps, _ = cluster_features(reference["features"], replace(cluster, knn="auto"), eps=None)
    np.testing.assert_array_equal(auto_labels, exact_labels)
    assert auto_eps == exact_eps
    hnsw_labels, _, _ = cluster_features(reference["features"], replace(cluster, knn="hnsw"), eps=exact_eps)
    assert adjusted_rand_score(hnsw_labels, exact_labels) >= 0.99


def test_knn_search_refuses_a_pca_dim_above_d():
    with pytest.raises(AuxReidError, match=r"^cluster.knn_pca_dim=65 is more than the features' 64 dimensions; set it "
                                           r"to at most 64, or 0 for no PCA$"):
        knn_search(_clustered(n=200), k=5, search=KnnSettings(method="ivf", pca_dim=65))


def test_approximate_search_without_faiss_says_how_to_install_it(monkeypatch):
    points = _clustered(n=200)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(AuxReidError, match=r"^the approximate kNN search \(hnsw, cluster.knn=auto for 200 points\) "
                                           r"needs faiss, which is not installed: pip install -e '\.\[cpu\]' \(or "
                                           r"'\.\[gpu\]' for CUDA 13\), or set cluster.knn=exact$"):
        knn_search(points, k=5, search=KnnSettings(method="auto", exact_max=100))


class _GpuFaiss:
    """The installed (CPU) faiss dressed as a GPU build, recording which GPU an index is moved to."""

    def __init__(self):
        import faiss

        self._faiss, self.used = faiss, []

    def __getattr__(self, name):
        return getattr(self._faiss, name)

    def get_num_gpus(self):
        return 1

    def StandardGpuResources(self):
        return object()

    def index_cpu_to_gpu(self, resources, gpu, index):
        self.used.append(gpu)
        return index


@pytest.mark.parametrize(("method", "device", "used"), [
    ("ivf", torch.device("cuda", 0), [0]),   # IVF searches on the GPU of the device
    ("ivf", "cpu", []),                      # a CPU device never touches a GPU
    ("hnsw", torch.device("cuda", 0), []),   # faiss has no GPU HNSW: the CPU
])
def test_approximate_search_runs_ivf_on_the_gpu_given(monkeypatch, method, device, used):
    fake = _GpuFaiss()
    monkeypatch.setitem(sys.modules, "faiss", fake)
    points = _clustered(n=400, seed=5)
    found = knn_search(points, k=10, device=device, search=KnnSettings(method=method))
    assert fake.used == used
    np.testing.assert_array_equal(found.indices[:, 0], np.arange(400))

"""Exact kNN: self first, ascending distance, ties by index, both backends agree."""

import sys

import numpy as np
import pytest
import torch

from stages.clustering.knn import faiss_gpu, gpu_fallback_message, knn_search
from stages.errors import AuxReidError


def _points(n=40, d=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_knn_search_matches_brute_force():
    points = _points()
    found = knn_search(points, k=5)
    sq = ((points[:, None, :].astype(np.float64) - points[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(sq, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(found.indices, expected)
    np.testing.assert_allclose(found.sqdist, np.take_along_axis(sq, expected, axis=1), atol=1e-4)
    assert found.indices.dtype == np.int64 and found.sqdist.dtype == np.float32 and found.k == 5


def test_knn_search_torch_backend_equals_faiss():
    points = _points(seed=1)
    faiss_result = knn_search(points, k=7, backend="faiss")
    torch_result = knn_search(points, k=7, backend="torch", block_rows=9)
    np.testing.assert_array_equal(torch_result.indices, faiss_result.indices)
    np.testing.assert_allclose(torch_result.sqdist, faiss_result.sqdist, atol=1e-4)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_knn_search_ties_broken_by_index_self_first(backend):
    points = np.array([[1, 0], [0, 0], [1, 0], [3, 0], [1, 0]], dtype=np.float32)
    found = knn_search(points, k=4, backend=backend)
    np.testing.assert_array_equal(found.indices[0], [0, 2, 4, 1])
    np.testing.assert_array_equal(found.indices[2], [2, 0, 4, 1])
    np.testing.assert_array_equal(found.indices[4], [4, 0, 2, 1])
    np.testing.assert_array_equal(found.sqdist[4], [0, 0, 0, 1])


def test_knn_search_puts_self_first_among_more_duplicates_than_k():
    points = np.zeros((5, 3), dtype=np.float32)
    found = knn_search(points, k=2)
    np.testing.assert_array_equal(found.indices, [[0, 1], [1, 0], [2, 0], [3, 0], [4, 0]])


def test_knn_search_is_deterministic_and_keeps_input():
    points = _points(seed=2)
    before = points.copy()
    first, second = knn_search(points, k=6), knn_search(points, k=6)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.sqdist, second.sqdist)
    np.testing.assert_array_equal(points, before)


def test_knn_search_rejects_unknown_backend():
    with pytest.raises(AuxReidError, match="^unknown kNN backend 'annoy'; choose one of auto, faiss, torch$"):
        knn_search(_points(), k=3, backend="annoy")


def test_knn_search_rejects_k_above_n():
    with pytest.raises(AuxReidError, match=r"^kNN list length k=41 must be between 1 and the number of points \(40\)$"):
        knn_search(_points(), k=41)


class _GpuFaiss:
    """The installed (CPU) faiss dressed as a GPU build with `gpus` GPUs, recording which GPU is used."""

    def __init__(self, gpus):
        import faiss

        self._faiss, self.gpus, self.used = faiss, gpus, []

    def __getattr__(self, name):
        return getattr(self._faiss, name)

    def get_num_gpus(self):
        return self.gpus

    def StandardGpuResources(self):
        return object()

    def index_cpu_to_gpu(self, resources, gpu, index):
        self.used.append(gpu)
        return index


@pytest.mark.parametrize(("device", "gpus", "used"), [
    ("cpu", 2, []),                        # a CPU device never touches a GPU, even where faiss could
    (torch.device("cuda", 1), 2, [1]),     # the chosen GPU, not GPU 0
    (torch.device("cuda", 1), 0, []),      # a CPU-only faiss build searches on the CPU
])
def test_faiss_search_runs_on_the_device_given(monkeypatch, device, gpus, used):
    fake = _GpuFaiss(gpus)
    monkeypatch.setitem(sys.modules, "faiss", fake)
    found = knn_search(_points(seed=3), k=5, backend="faiss", device=device)
    assert fake.used == used
    np.testing.assert_array_equal(found.indices, knn_search(_points(seed=3), k=5, backend="torch").indices)


def test_faiss_gpu_of_a_bare_cuda_device_is_the_current_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", _GpuFaiss(4))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert faiss_gpu(torch.device("cuda")) == 3 and faiss_gpu(torch.device("cuda", 2)) == 2
    assert faiss_gpu(torch.device("cpu")) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_knn_search_cuda_without_cuda_is_a_one_line_error(backend):
    with pytest.raises(AuxReidError, match=r"^device 'cuda:0' was asked for but CUDA is not available here; "
                                           r"use --device cpu or auto$"):
        knn_search(_points(), k=3, backend=backend, device="cuda:0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_knn_search_on_the_last_gpu_matches_the_cpu():
    device = f"cuda:{torch.cuda.device_count() - 1}"
    points = _points(n=300, d=16, seed=4)
    cpu = knn_search(points, k=8, backend="faiss", device="cpu")
    for backend in ("faiss", "torch"):
        gpu = knn_search(points, k=8, backend=backend, device=device)
        np.testing.assert_array_equal(gpu.indices, cpu.indices)
        np.testing.assert_allclose(gpu.sqdist, cpu.sqdist, atol=1e-3)


def test_knn_search_without_faiss_installed(monkeypatch):
    """faiss is an extra: auto falls back to torch, an explicit faiss says how to install it."""
    points = _points(seed=5)
    expected = knn_search(points, k=4, backend="torch")
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    np.testing.assert_array_equal(knn_search(points, k=4).indices, expected.indices)
    with pytest.raises(AuxReidError, match=r"^the faiss kNN backend needs faiss, which is not installed: pip install "
                                           r"-e '\.\[cpu\]' \(or '\.\[gpu\]' for CUDA 13\), or set "
                                           r"cluster.knn_backend=torch$"):
        knn_search(points, k=4, backend="faiss")


def test_a_cuda_device_with_a_cpu_only_faiss_says_the_knn_falls_back_to_the_cpu():
    """faiss-cpu has no StandardGpuResources: a CUDA device searches on the CPU, with a note saying so."""
    import faiss

    cuda = torch.device("cuda", 0)
    if hasattr(faiss, "StandardGpuResources"):
        pytest.skip("this faiss build has GPU support")
    message = gpu_fallback_message(cuda, "auto")
    assert message == ("the kNN runs on the CPU: the installed faiss has no GPU support for device cuda:0 (the same "
                       "search, slower); install the gpu extra (make FAISS=gpu) or set "
                       "cluster.knn_backend=torch to search with torch on the GPU")
    assert gpu_fallback_message(cuda, "faiss") == message
    assert gpu_fallback_message(cuda, "torch") is None and gpu_fallback_message(torch.device("cpu"), "faiss") is None

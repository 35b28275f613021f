"""DBSCAN on the sparse Jaccard distance: scikit-learn on the radius graph (`stages.clustering.dbscan`) against the alternatives.

Why this file exists: `stages.clustering.dbscan` used to carry its own DBSCAN (connected components of
the core-core graph of the eps radius graph, numbered and with borders assigned as sklearn does). It
was to be kept only if it beat `sklearn.cluster.DBSCAN(metric="precomputed")` clearly (>= 1.5x at
N = 10,000 and 50,000, same labels). It did not, so `dbscan()` now hands the radius graph (which
ICDBSCAN needs anyway) to scikit-learn; the removed version lives on below as `components_dbscan`,
so the decision can be re-checked.

Methods, all on the same distance and eps, min_samples 4:
  stages     `stages.clustering.dbscan.dbscan`: the eps radius graph, then sklearn DBSCAN on it.
  components the removed version: the same radius graph, then connected components (scipy).
  sk-full    sklearn DBSCAN on the whole sparse distance (every stored pair, as the pipeline holds it);
             the CSR view of the `SparseDistance` is built inside the timed call.
"radius graph s" is the step `stages` and `components` share (included in their times). Each time is
the best of --repeats calls, the methods interleaved; "x" = that method's time / components' time
(above 1: components faster). Labels: "same" = every method's labels equal the components' labels
element for element (hence the same partition, ARI 1.0, the same noise). "peak MB": tracemalloc
peak of one more, untimed call (numpy buffers included). The load average is printed per row: the
machine is shared.

Problem, shaped like the pipeline's: clustered Gaussian features, d = 64, identities
of about 16 tracklets (MARS: 8,298 train tracklets, 625 ids), noise 0.6, L2-normalised; the sparse
k-reciprocal Jaccard distance (k1 30, k2 6, `stages.clustering.jaccard`, float32, every pair < 1
stored, the diagonal too); SCP with 6 random cameras and the default lambda 0.006 (so the diagonal
holds 0.006); eps both adaptive (rho 1.6e-3, `stages.clustering.eps`, the default) and fixed 0.6
(the config's default for eps_mode fixed).

Run: .venv/bin/python benchmarks/dbscan.py [--sizes 10000 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from functools import partial

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from stages.clustering.dbscan import NOISE, dbscan, radius_graph
from stages.clustering.eps import adaptive_eps

MIN_SAMPLES = 4
RHO = 1.6e-3
FIXED_EPS = 0.6
DIM = 64
TRACKLETS_PER_ID = 16
CAMERAS = 6
SCP_LAMBDA = 0.006


def make_distance(n: int, *, seed: int = 0):
    """The penalised sparse Jaccard distance (`SparseDistance`) of clustered random features."""
    from stages.clustering.jaccard import jaccard_distance

    rng = np.random.default_rng(seed)
    identities = max(n // TRACKLETS_PER_ID, 1)
    centres = rng.normal(size=(identities, DIM)).astype(np.float32)
    features = centres[rng.integers(0, identities, n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    distance = jaccard_distance(features, k1=30, k2=6, normalize=True)
    return distance.add_same_camera(rng.integers(0, CAMERAS, n), lam=SCP_LAMBDA)


def components_dbscan(distance, *, eps: float, min_samples: int = MIN_SAMPLES) -> np.ndarray:
    """The removed implementation: connected components of the core-core radius graph, sklearn's numbering.

    Clusters are numbered by their smallest core point and a border point joins the earliest-numbered
    cluster among its core neighbours, as sklearn's depth-first `_dbscan_inner` does.
    """
    graph = radius_graph(distance, eps=eps)
    n = graph.n
    core = graph.degree >= min_samples
    rows, cols = graph.rows(), graph.indices
    labels = np.full(n, NOISE, dtype=np.int64)
    core_index = np.flatnonzero(core)
    if core_index.size == 0:
        return labels
    position = np.full(n, -1, dtype=np.int64)
    position[core_index] = np.arange(core_index.size)
    both = core[rows] & core[cols]
    adjacency = sparse.csr_matrix(
        (np.ones(int(both.sum()), dtype=np.int8), (position[rows[both]], position[cols[both]])),
        shape=(core_index.size, core_index.size),
    )
    _, component = connected_components(adjacency, directed=False)
    first_seen = np.full(component.max() + 1, core_index.size, dtype=np.int64)
    np.minimum.at(first_seen, component, np.arange(core_index.size))
    rank = np.empty_like(first_seen)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(first_seen.size)
    labels[core_index] = rank[component]
    border = ~core[rows] & core[cols]
    if border.any():
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, rows[border], labels[cols[border]])
        reached = (best != np.iinfo(np.int64).max) & ~core
        labels[reached] = best[reached]
    return labels


def sklearn_full(distance, *, eps: float, min_samples: int = MIN_SAMPLES) -> np.ndarray:
    """sklearn DBSCAN on every stored pair of the distance (a CSR view of the `SparseDistance`)."""
    matrix = sparse.csr_matrix((distance.data, distance.indices, distance.indptr), shape=distance.shape)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(matrix).labels_


def _best_of(calls: dict[str, Callable[[], np.ndarray]], repeats: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    seconds = {name: float("inf") for name in calls}
    labels = {}
    for _ in range(repeats):
        for name, call in calls.items():
            began = time.perf_counter()
            labels[name] = call()
            seconds[name] = min(seconds[name], time.perf_counter() - began)
    return seconds, labels


def _peak_mb(call: Callable[[], np.ndarray]) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run(sizes: list[int], repeats: int) -> None:
    print(f"DBSCAN (min_samples {MIN_SAMPLES}) on the sparse Jaccard distance + SCP, d {DIM}; best of {repeats}; "
          "x = time / components time")
    print(f"{'N':>6} {'pairs/row':>9} {'eps':>12} {'deg':>5} {'clusters':>8} {'noise':>6} {'radius graph s':>14} "
          f"{'components s':>12} {'stages s':>8} {'x':>5} {'sk-full s':>9} {'x':>6} "
          f"{'peak MB comp/stages/full':>24} {'labels':>10} {'load':>5}")
    for n in sizes:
        distance = make_distance(n)
        for eps_name, eps in (("adaptive", float(adaptive_eps(distance, rho=RHO))), ("fixed", FIXED_EPS)):
            load = os.getloadavg()[0]
            calls = {
                "components": partial(components_dbscan, distance, eps=eps),
                "stages": partial(dbscan, distance, eps=eps, min_samples=MIN_SAMPLES),
                "full": partial(sklearn_full, distance, eps=eps),
            }
            seconds, labels = _best_of(calls, repeats)
            graph_s, _ = _best_of(
                {"graph": lambda distance=distance, eps=eps: radius_graph(distance, eps=eps, always_self=True).indptr},
                repeats)
            peaks = {name: _peak_mb(call) for name, call in calls.items()}
            reference = labels["components"]
            same = all(np.array_equal(reference, other) for other in labels.values())
            ari = min(adjusted_rand_score(reference, other) for other in labels.values())
            noise_same = all(np.array_equal(reference == NOISE, other == NOISE) for other in labels.values())
            agreement = "same" if same else f"ARI {ari:.4f}{'' if noise_same else ', noise differs'}"
            degree = radius_graph(distance, eps=eps, always_self=True).indices.size / n
            base = seconds["components"]
            print(
                f"{n:>6} {distance.nnz / n:>9.0f} {eps_name[:5]} {eps:6.4f} {degree:>5.1f} {int(reference.max()) + 1:>8} "
                f"{np.mean(reference == NOISE):>6.3f} {graph_s['graph']:>14.3f} {base:>12.3f} "
                f"{seconds['stages']:>8.3f} {seconds['stages'] / base:>5.2f} {seconds['full']:>9.2f} "
                f"{seconds['full'] / base:>6.1f} "
                f"{peaks['components']:>8.0f}/{peaks['stages']:>.0f}/{peaks['full']:>.0f} {agreement:>10} {load:>5.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run(args.sizes, args.repeats)


if __name__ == "__main__":
    main()

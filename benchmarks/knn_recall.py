"""Approximate kNN (`stages.clustering.ann`, IVF and HNSW) against the exact search, timed in the same run.

For each N given: the exact kNN of the cluster stage (k 30, faiss `IndexFlatL2` on the CPU, as `knn_search` with
cluster.knn=exact runs it), then each approximate method as `knn_search` runs it (`stages.clustering.ann`: the
index's candidates re-ranked exactly), with the --nprobe / --ef values given. Printed per method: seconds,
approximate / exact seconds (below 1: faster), recall@30 (the share of each point's exact 30 neighbours that its
approximate list holds, averaged over points), the same for the exact neighbours of the point's own identity
("same-id recall": the pairs the clustering builds on), and the load average at the start of the row (the
machine is shared). --queries Q times and scores Q random rows only, for N where the exact search of every row
takes too long: both searches' query times are scaled by N / Q (queries are independent), the index is built
over all N and timed whole.

Features: identities of 2..30 tracklets. By default of low intrinsic dimension, as a network's features are:
identity centres and each tracklet's offset from its centre are Gaussian in a --latent-dimensional space
(variances falling as 1 / (1 + j / 8)), the tracklet offset 0.5 times the centre spread, embedded in d by a
random orthonormal basis, plus isotropic noise carrying --noise times the latent variance, then
L2-normalised. --latent 0 gives the isotropic worst case of `benchmarks/cluster.py` (centre and tracklet
N(0, I_d)), where the neighbours beyond the identity are at nearly equal distances and no index finds them
without scanning almost everything.

Run: nice .venv/bin/python benchmarks/knn_recall.py [50000 200000] [--dim 256] [--methods ivf hnsw]
     [--nprobe 0] [--lists 4] [--ef 128] [--pca 0] [--queries 0] [--latent 64] [--noise 0.25]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.clustering.ann import (  # noqa: E402
    DEFAULT_PARAMS,
    IndexParams,
    build_index,
    exact_sqdist,
    ivf_lists,
    ivf_probes,
    query_rows,
)

K1 = 30


def clustered_features(n: int, d: int, *, latent: int = 64, noise: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 L2-normalised features and their (n,) identity labels (2..30 tracklets each)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 31, size=n // 2 + 1)
    labels = np.repeat(np.arange(len(sizes)), sizes)[:n]
    if latent == 0:
        points = rng.standard_normal((len(sizes), d), dtype=np.float32)[labels]
        points += rng.standard_normal((n, d), dtype=np.float32)
    else:
        scale = (1.0 / np.sqrt(1.0 + np.arange(latent) / 8.0)).astype(np.float32)
        centres = rng.standard_normal((len(sizes), latent), dtype=np.float32) * scale
        codes = centres[labels] + 0.5 * rng.standard_normal((n, latent), dtype=np.float32) * scale
        basis = np.linalg.qr(rng.standard_normal((d, latent)))[0].astype(np.float32)
        sigma = np.sqrt(noise * 1.25 * float((scale**2).sum()) / d)
        points = codes @ basis.T + sigma * rng.standard_normal((n, d), dtype=np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True), labels


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact list found by the approximate one (order ignored)."""
    width = exact.shape[1]
    both = np.concatenate([found, exact], axis=1)
    both.sort(axis=1)
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return float(shared.mean() / width)


def same_id_recall(found: np.ndarray, exact: np.ndarray, row_labels: np.ndarray, labels: np.ndarray) -> float:
    """Of the exact list's entries of the point's own identity, the share the approximate list holds."""
    own = labels[exact] == row_labels[:, None]
    hit = (exact[:, :, None] == found[:, None, :]).any(axis=2)
    return float((hit & own).sum() / own.sum())


def timed_exact_rows(points: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, float]:
    """The exact k1 lists of `rows` only (faiss `IndexFlatL2` over every point, as `knn_search`) and their seconds."""
    begin = time.perf_counter()
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    _, found = index.search(points[rows], K1)
    return found.astype(np.int64), time.perf_counter() - begin


def timed_search(points: np.ndarray, rows: np.ndarray, method: str, *, pca: int, params: IndexParams
                 ) -> tuple[np.ndarray, float]:
    """The approximate lists of `rows`, as `knn_search` finds them, and the seconds for all N rows.

    The index is built over every point (timed whole); the queries of `rows` are timed and scaled by N / len(rows)
    (each query is independent). With every row queried this is the stage's own search.
    """
    begin = time.perf_counter()
    built = build_index(points, k=K1, method=method, pca_dim=pca, params=params)
    built_s = time.perf_counter() - begin
    begin = time.perf_counter()
    sqdist, indices = query_rows(points, built, rows, k=K1)
    return indices, built_s + (time.perf_counter() - begin) * len(points) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[50_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--methods", nargs="+", default=["ivf", "hnsw"], choices=["ivf", "hnsw"])
    parser.add_argument("--nprobe", nargs="+", type=int, default=[0], help="IVF lists scanned (0: the default share)")
    parser.add_argument("--lists", type=float, default=DEFAULT_PARAMS.lists_per_sqrt_n, help="IVF lists per sqrt(N)")
    parser.add_argument("--ef", nargs="+", type=int, default=[DEFAULT_PARAMS.ef_search])
    parser.add_argument("--pca", type=int, default=0)
    parser.add_argument("--queries", type=int, default=0,
                        help="query only this many random rows (0: all), exactly and approximately; the query "
                             "seconds are then scaled by N / queries (each query is independent; the index is "
                             "still built over all N) and recall is over those rows")
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--noise", type=float, default=0.25)
    args = parser.parse_args()
    print(f"k {K1}, d {args.dim}, pca {args.pca or 'none'}, latent {args.latent or 'isotropic'}, noise {args.noise}, "
          f"faiss threads {faiss.omp_get_max_threads()}, numba threads {numba.get_num_threads()}")
    exact_sqdist(np.zeros((2, 2), np.float32), np.arange(2), np.zeros((2, 1), np.int64))  # load the numba kernel
    print("| N | method | settings | load | seconds | / exact | recall@30 | same-id recall |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        points, labels = clustered_features(n, args.dim, latent=args.latent, noise=args.noise)
        rows = np.arange(n)
        if 0 < args.queries < n:
            rows = np.sort(np.random.default_rng(1).choice(n, size=args.queries, replace=False))
        load = os.getloadavg()[0]
        exact, exact_s = timed_exact_rows(points, rows)
        exact_s *= n / len(rows)
        note = "" if len(rows) == n else f", {len(rows):,} queries timed, x {n / len(rows):.1f}"
        print(f"| {n:,} | exact | faiss IndexFlatL2{note} | {load:.1f} | {exact_s:.2f} | 1 | 1 | 1 |", flush=True)
        lists = IndexParams(lists_per_sqrt_n=args.lists)
        probes = [replace(lists, nprobe=p or None) for p in args.nprobe]
        runs = [("ivf", p, f"nlist {ivf_lists(n, p)}, nprobe {ivf_probes(n, p)}") for p in probes]
        runs += [("hnsw", IndexParams(ef_search=e), f"M {DEFAULT_PARAMS.hnsw_m}, efSearch {e}") for e in args.ef]
        for method, params, settings in runs:
            if method not in args.methods:
                continue
            load = os.getloadavg()[0]
            found, seconds = timed_search(points, rows, method, pca=args.pca, params=params)
            print(f"| {n:,} | {method} | {settings} | {load:.1f} | {seconds:.2f} | {seconds / exact_s:.3f} | "
                  f"{recall(found, exact):.4f} | "
                  f"{same_id_recall(found, exact, labels[rows], labels):.4f} |", flush=True)


if __name__ == "__main__":
    main()

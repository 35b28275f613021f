"""Cannot-link DBSCAN: the CSR / mark-array `stages.clustering.icdbscan` against straightforward set-based versions.

Problem: clustered random features (identities of ~10 tracklets, d = 256) -> the sparse Jaccard
distance (k1 30, k2 6) -> adaptive eps; cannot-links from random cameras and spans (same camera,
overlapping spans, about as many per tracklet as in the reference vectors), relaxed = -1 as there.
Baselines, timed in the same run on the dense N x N matrix, as the reference receives it:
  sets, reference structure: neighbourhoods and the `relaxed` reduction built with a Python
      comprehension over each dense row, cluster expansion with Python sets (the reference's shape);
  sets, numpy rows: the same set-based expansion, but each row's sets built with numpy.
Each baseline is checked against the reference vectors (ARI) and against the fast version (ARI below
1 there comes from the visiting order: the set versions admit tied or conflicting candidates in
CPython's hash order, the fast one by distance). Violations are counted over the cannot-links kept by
`relaxed` (must be 0) and over all of them (relaxed = -1 lets far-apart linked points meet).
Run: .venv/bin/python benchmarks/cluster_icdbscan.py [--sizes 2000 5000 10000]
 or: .venv/bin/python benchmarks/cluster.py --sections icdbscan --sizes 2000 5000 10000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

from stages.clustering.icdbscan import cannot_link_graph, cannot_link_violations, icdbscan
from stages.auxinfo.spans import Spans
from stages.auxinfo.toc import overlap_pairs

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "seed_reference_600.npz"
MIN_SAMPLES = 4
RELAXED = -1.0
CAMERAS = 6
#: Mean cannot-links per tracklet in the reference vectors (5,094 ordered pairs over 600 tracklets).
LINKS_PER_TRACKLET = 8.5
#: Largest N this section builds a Jaccard distance for (the Jaccard section covers larger ones).
MAX_N = 20_000


def _link_sets(pairs: np.ndarray, n: int) -> list[set[int]]:
    links: list[set[int]] = [set() for _ in range(n)]
    for i, j in pairs.tolist():
        links[i].add(j)
        links[j].add(i)
    return links


def _expand_with_sets(neighbours: list[set[int]], links: list[set[int]], min_samples: int) -> np.ndarray:
    """Set-based ICDBSCAN expansion: the seed set's own iteration order, as the reference visits."""
    n = len(neighbours)
    labels = np.full(n, -2, dtype=np.int64)
    cluster = 0
    for start in range(n):
        if labels[start] != -2:
            continue
        labels[start] = cluster
        members, seeds, forbidden = {start}, {start}, set(links[start])
        while seeds:
            current = next(iter(seeds))
            candidates = neighbours[current] - links[current] - forbidden
            if len(candidates) >= min_samples:
                for q in candidates:
                    if labels[q] == -2 and q not in forbidden:
                        labels[q] = cluster
                        members.add(q)
                        forbidden |= links[q]
                        seeds.add(q)
            seeds.discard(current)
        if len(members) < min_samples:
            labels[list(members)] = -2
        else:
            cluster += 1
    labels[labels == -2] = -1
    return labels


def sets_reference_structure(dense: np.ndarray, pairs: np.ndarray, *, eps: float, relaxed: float) -> np.ndarray:
    """Baseline 1: every set built by a Python comprehension over a dense row."""
    n = len(dense)
    links = _link_sets(pairs, n)
    neighbours = [{i for i, near in enumerate(dense[row] <= eps) if near} | {row} for row in range(n)]
    for row in range(n):
        drop = dense[row] <= eps * relaxed if relaxed >= 0 else dense[row] > eps * -relaxed
        links[row] = links[row] - ({i for i, hit in enumerate(drop) if hit} | {row})
    return _expand_with_sets(neighbours, links, MIN_SAMPLES)


def sets_numpy_rows(dense: np.ndarray, pairs: np.ndarray, *, eps: float, relaxed: float) -> np.ndarray:
    """Baseline 2: the same sets, each row's built with numpy."""
    n = len(dense)
    links = _link_sets(pairs, n)
    neighbours = [set(np.flatnonzero(dense[row] <= eps).tolist()) | {row} for row in range(n)]
    for row in range(n):
        drop = dense[row] <= eps * relaxed if relaxed >= 0 else dense[row] > eps * -relaxed
        links[row] = links[row] - (set(np.flatnonzero(drop).tolist()) | {row})
    return _expand_with_sets(neighbours, links, MIN_SAMPLES)


def make_problem(n: int, *, d: int = 256, seed: int = 0) -> tuple[sparse.csr_matrix, np.ndarray, float]:
    """Sparse Jaccard distance of clustered random features, cannot-link pairs, adaptive eps."""
    from stages.clustering.eps import adaptive_eps
    from stages.clustering.jaccard import jaccard_distance

    rng = np.random.default_rng(seed)
    identities = max(n // 10, 1)
    centers = rng.normal(size=(identities, d)).astype(np.float32)
    features = centers[rng.integers(0, identities, n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    distance = jaccard_distance(features, k1=30, k2=6)
    eps = float(adaptive_eps(distance, rho=1.6e-3))
    camera = rng.integers(0, CAMERAS, n)
    length = rng.uniform(50, 400, n)
    horizon = 2 * length.mean() * n / CAMERAS / LINKS_PER_TRACKLET
    start = rng.uniform(0, horizon, n)
    pairs = overlap_pairs(Spans(camera, start, start + length))
    return _as_csr(distance), pairs, eps


def _as_csr(distance) -> sparse.csr_matrix:
    if sparse.issparse(distance):
        return sparse.csr_matrix(distance)
    return sparse.csr_matrix((distance.data, distance.indices, distance.indptr), shape=(len(distance.indptr) - 1,) * 2)


def _dense(distance: sparse.csr_matrix) -> np.ndarray:
    """The N x N matrix the reference receives: missing entries 1.0, explicit zeros kept."""
    dense = np.ones(distance.shape, dtype=np.float32)
    coo = distance.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


def _timed(function: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    began = time.perf_counter()
    labels = function()
    return labels, time.perf_counter() - began


def check_reference() -> list[str]:
    """Every version on the reference vectors: ARI against `icdbscan_labels`, violations."""
    with np.load(REFERENCE) as npz:
        dense, eps = npz["jaccard"], float(npz["eps"])
        pairs, expected = npz["cannot_link_pairs"], npz["icdbscan_labels"]
    rows, cols = np.nonzero(dense < 1)
    graph = sparse.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)
    versions = {
        "fast (stages.clustering.icdbscan)": lambda: icdbscan(graph, pairs, eps=eps, min_samples=MIN_SAMPLES, relaxed=RELAXED),
        "sets, reference structure": lambda: sets_reference_structure(dense, pairs, eps=eps, relaxed=RELAXED),
        "sets, numpy rows": lambda: sets_numpy_rows(dense, pairs, eps=eps, relaxed=RELAXED),
    }
    lines = []
    for name, run in versions.items():
        labels = run()
        lines.append(f"reference vectors, {name}: ARI {adjusted_rand_score(expected, labels):.4f}, "
                     f"violations {cannot_link_violations(labels, pairs)}")
    return lines


def run_icdbscan_section(sizes: list[int], *, baseline_max: int = 10_000) -> None:
    """Print the cannot-link DBSCAN table: times, ratios against both baselines, agreement."""
    for line in check_reference():
        print(line)
    header = (f"{'N':>7} {'pairs':>7} {'eps':>7} {'fast s':>8} {'sets-ref s':>10} {'ratio':>7} {'sets-np s':>9} "
              f"{'ratio':>7} {'ARI ref/np':>11} {'clusters':>8} {'viol. kept/all':>14}")
    print(header)
    for n in sizes:
        graph, pairs, eps = make_problem(n)
        fast, fast_s = _timed(lambda: icdbscan(graph, pairs, eps=eps, min_samples=MIN_SAMPLES, relaxed=RELAXED))
        cells = ["-"] * 5
        if n <= baseline_max:
            dense = _dense(graph)
            by_ref, ref_s = _timed(lambda: sets_reference_structure(dense, pairs, eps=eps, relaxed=RELAXED))
            by_np, np_s = _timed(lambda: sets_numpy_rows(dense, pairs, eps=eps, relaxed=RELAXED))
            del dense
            cells = [f"{ref_s:.2f}", f"{ref_s / fast_s:.0f}x", f"{np_s:.2f}", f"{np_s / fast_s:.0f}x",
                     f"{adjusted_rand_score(by_ref, fast):.3f}/{adjusted_rand_score(by_np, fast):.3f}"]
        indptr, kept = cannot_link_graph(graph, pairs, eps=eps, relaxed=RELAXED)
        kept_pairs = np.stack([np.repeat(np.arange(n), np.diff(indptr)), kept], axis=1)
        violations = f"{cannot_link_violations(fast, kept_pairs)}/{cannot_link_violations(fast, pairs)}"
        print(f"{n:>7} {len(pairs):>7} {eps:>7.4f} {fast_s:>8.3f} {cells[0]:>10} {cells[1]:>7} {cells[2]:>9} "
              f"{cells[3]:>7} {cells[4]:>11} {int(fast.max()) + 1:>8} {violations:>14}")


def cluster_section(args: argparse.Namespace) -> None:
    """`benchmarks/cluster.py --sections icdbscan`: its --sizes (up to MAX_N) and --baseline-max."""
    sizes = [n for n in args.sizes if n <= MAX_N]
    print(f"Cannot-link DBSCAN (min_samples {MIN_SAMPLES}, relaxed {RELAXED}); sizes above {MAX_N:,} skipped")
    run_icdbscan_section(sizes, baseline_max=args.baseline_max)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    args = parser.parse_args()
    run_icdbscan_section(args.sizes)


if __name__ == "__main__":
    main()

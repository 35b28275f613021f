"""Cannot-link DBSCAN: the CSR / mark-array `stages.clustering.icdbscan` against straightforward set-based versions.

Problem: clustered random features (identities of ~10 tracklets, d = 256) -> the sparse Jaccard
distance (k1 30, k2 6) -> adaptive eps; cannot-links from random cameras and spans (same camera,
overlapping spans, about as many per tracklet as in the reference vectors), relaxed = -1 as there.
Baselines, timed in the same run on the dense N x N matrix, as the reference receives it:
  sets, reference structure: neighbourhoods and the `relaxed` reduction built with a Python
      comprehension over each dense row, cluster expansion with Python sets (the reference's shape);
  sets, numpy rows: the same set-based expansion, but each row's sets built with numpy.
Each baseline is checked against the reference vectors (ARI) and against the fast version.

Agreement. The fast version admits the candidates of one expansion step by distance, ties (within
`ZERO_TOLERANCE`) by decreasing index; the set versions admit them in CPython's set order, an
accident of hashing. Between candidates that cannot-link each other, or tie, the order decides who
joins, so the two may differ in a few points; neither violates a kept cannot-link. The rule was
chosen on the reference vectors, and seed 0 (this benchmark's only problem then) may have been looked
at too; the agreement is reported on seeds 1.. (`--seeds`): ARI between the fast labels and each baseline's, and
"moved", the points whose cluster (as a set of members, noise = noise) is not the same in both.
Violations are counted over the cannot-links kept by `relaxed` (must be 0) and over all of them
(relaxed = -1 lets far-apart linked points meet). The 1-minute load average is printed per row:
the machine may be shared.
Run: .venv/bin/python benchmarks/cluster_icdbscan.py [--sizes 2000 5000 10000] [--seeds 1 2 3]
 or: .venv/bin/python benchmarks/cluster.py --sections icdbscan --sizes 2000 5000 10000 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

from stages.auxinfo.spans import Spans
from stages.auxinfo.toc import overlap_pairs
from stages.clustering.icdbscan import cannot_link_graph, cannot_link_violations, icdbscan

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
    features = problem_features(n, d=d, rng=rng)
    distance = jaccard_distance(features, k1=30, k2=6)
    eps = float(adaptive_eps(distance, rho=1.6e-3))
    return _as_csr(distance), random_cannot_links(n, rng=rng), eps


def problem_features(n: int, *, d: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) L2-normalised float32 points around n / 10 random identity centres (noise 0.6 per dimension)."""
    identities = max(n // 10, 1)
    centers = rng.normal(size=(identities, d)).astype(np.float32)
    features = centers[rng.integers(0, identities, n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return features


def random_cannot_links(n: int, *, rng: np.random.Generator) -> np.ndarray:
    """(m, 2) TOC pairs of n tracklets with random cameras and spans, ~LINKS_PER_TRACKLET per tracklet."""
    camera = rng.integers(0, CAMERAS, n)
    length = rng.uniform(50, 400, n)
    horizon = 2 * length.mean() * n / CAMERAS / LINKS_PER_TRACKLET
    start = rng.uniform(0, horizon, n)
    return overlap_pairs(Spans(camera, start, start + length))


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


def moved_points(a: np.ndarray, b: np.ndarray) -> int:
    """Points whose cluster differs between labelings a and b: both noise, or the same member set, agree."""
    both_noise = (a < 0) & (b < 0)
    clustered = (a >= 0) & (b >= 0)
    pair_count = np.unique(np.stack([a[clustered], b[clustered]]), axis=1, return_counts=True)
    same = np.zeros(len(a), dtype=bool)
    sizes_a, sizes_b = np.bincount(a[a >= 0]), np.bincount(b[b >= 0])
    for (la, lb), count in zip(pair_count[0].T.tolist(), pair_count[1].tolist()):
        if sizes_a[la] == sizes_b[lb] == count:
            same |= (a == la) & (b == lb)
    return int(len(a) - np.count_nonzero(both_noise | same))


def run_icdbscan_section(sizes: list[int], *, baseline_max: int = 10_000, seeds: tuple[int, ...] = (1,)) -> None:
    """Print the cannot-link DBSCAN table: times, ratios against both baselines, agreement, per (N, seed)."""
    for line in check_reference():
        print(line)
    header = (f"{'N':>7} {'seed':>4} {'pairs':>7} {'eps':>7} {'fast s':>8} {'sets-ref s':>10} {'ratio':>7} "
              f"{'sets-np s':>9} {'ratio':>7} {'ARI ref/np':>11} {'moved':>6} {'clusters':>8} {'viol. kept/all':>14} "
              f"{'load':>5}")
    print(header)
    for n in sizes:
        for seed in seeds:
            graph, pairs, eps = make_problem(n, seed=seed)
            load = os.getloadavg()[0]
            fast, fast_s = _timed(partial(icdbscan, graph, pairs, eps=eps, min_samples=MIN_SAMPLES, relaxed=RELAXED))
            cells = ["-"] * 6
            if n <= baseline_max:
                dense = _dense(graph)
                by_ref, ref_s = _timed(partial(sets_reference_structure, dense, pairs, eps=eps, relaxed=RELAXED))
                by_np, np_s = _timed(partial(sets_numpy_rows, dense, pairs, eps=eps, relaxed=RELAXED))
                del dense
                cells = [f"{ref_s:.2f}", f"{ref_s / fast_s:.0f}x", f"{np_s:.2f}", f"{np_s / fast_s:.0f}x",
                         f"{adjusted_rand_score(by_ref, fast):.4f}/{adjusted_rand_score(by_np, fast):.4f}",
                         str(moved_points(by_ref, fast))]
            indptr, kept = cannot_link_graph(graph, pairs, eps=eps, relaxed=RELAXED)
            kept_pairs = np.stack([np.repeat(np.arange(n), np.diff(indptr)), kept], axis=1)
            violations = f"{cannot_link_violations(fast, kept_pairs)}/{cannot_link_violations(fast, pairs)}"
            print(f"{n:>7} {seed:>4} {len(pairs):>7} {eps:>7.4f} {fast_s:>8.3f} {cells[0]:>10} {cells[1]:>7} "
                  f"{cells[2]:>9} {cells[3]:>7} {cells[4]:>11} {cells[5]:>6} {int(fast.max()) + 1:>8} "
                  f"{violations:>14} {load:>5.2f}", flush=True)


def cluster_section(args: argparse.Namespace) -> None:
    """`benchmarks/cluster.py --sections icdbscan`: its --sizes (up to MAX_N) and --baseline-max."""
    sizes = [n for n in args.sizes if n <= MAX_N]
    print(f"Cannot-link DBSCAN (min_samples {MIN_SAMPLES}, relaxed {RELAXED}); sizes above {MAX_N:,} skipped")
    run_icdbscan_section(sizes, baseline_max=args.baseline_max, seeds=tuple(args.seeds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="problem seeds; 1.. were not used to choose the tie rule")
    args = parser.parse_args()
    run_icdbscan_section(args.sizes, seeds=tuple(args.seeds))


if __name__ == "__main__":
    main()

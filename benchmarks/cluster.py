"""Cluster-stage benchmarks: one section per step, each against a baseline timed in the same run.

Section "jaccard": the sparse k-reciprocal Jaccard distance (`stages.clustering.jaccard`, k1 30, k2 6) against
`benchmarks/jaccard_baseline.py`, a straightforward version with the reference's structure (dense
N x N arrays, a Python loop per row; checked against the reference vectors in tests/test_jaccard.py).
Both use the same exact faiss CPU kNN, timed apart from the rest ("after kNN"). Features: clustered
random points (identities of 2..24 tracklets, centre ~ N(0, I), tracklet = centre + N(0, I),
L2-normalised), d = 2,048 and 256. Every (method, N, d) runs in its own subprocess, so its peak
memory is the process's peak resident set size (`resource.getrusage(...).ru_maxrss`, whole process,
features included) and "extra" is that peak minus the resident size just before the computation.
The baseline stops at --baseline-max N (dense N x N float32 arrays); the fast version also runs the
larger sizes. The load average is printed with each row: the machine is shared. The sparse version's
numba kernels are compiled once per checkout (cached in `stages/__pycache__`); the table header gives
the compile time (empty cache, measured in a subprocess with a temporary NUMBA_CACHE_DIR) and the
cache load time, and every sparse run warms its kernels up on 64 points before the timed call.

Section "icdbscan": cannot-link DBSCAN against set-based versions (`benchmarks/cluster_icdbscan.py`).
Section "agreement": eps (with the zero tolerance and with the old exact-zero rule) and DBSCAN / ICDBSCAN
labels from features against the reference's structure, per --seeds (`agreement_section`).
Other sections register a function in SECTIONS.

Run: .venv/bin/python benchmarks/cluster.py [--sizes 2000 5000 10000 20000 50000] [--dims 2048 256]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
K1, K2 = 30, 6


def clustered_features(n: int, d: int, *, seed: int = 0) -> np.ndarray:
    """(n, d) float32 L2-normalised points in identities of 2..24 members (centre + unit noise)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 25, size=n // 2 + 1)
    labels = np.repeat(np.arange(len(sizes)), sizes)[:n]
    centres = rng.standard_normal((len(sizes), d), dtype=np.float32)
    points = centres[labels] + rng.standard_normal((n, d), dtype=np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _baseline_module():
    spec = importlib.util.spec_from_file_location("jaccard_baseline", HERE / "jaccard_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_jaccard(method: str, n: int, d: int) -> dict:
    """One timed run in this process: {"knn", "after_knn", "total", "peak_mb", "extra_mb", ...}."""
    from stages.clustering.jaccard import jaccard_distance
    from stages.progress import NullProgress

    baseline = _baseline_module()
    features = clustered_features(n, d)
    before = _rss_mb()
    if method == "baseline":
        dense, timings = baseline.dense_jaccard(features, k1=K1, k2=K2)
        result = {**timings, "peak_mb": _peak_mb(), "extra_mb": _peak_mb() - before}
        fast = jaccard_distance(features, k1=K1, k2=K2).to_dense() if n <= 5000 else None
        result["max_abs_diff"] = float(np.abs(fast - dense).max()) if fast is not None else None
        result["pairs_per_row"] = float((dense < 1).sum() / n)
    else:
        # The numba kernels load from their cache (or compile, first time) on first use: done on a
        # tiny input before the clock starts and reported as "warm-up s".
        warm_start = time.perf_counter()
        jaccard_distance(clustered_features(64, 8, seed=1), k1=K1, k2=K2)
        warm_up = time.perf_counter() - warm_start

        class Clock(NullProgress):
            def done(self, task: str, message: str = "") -> None:
                if task == "kNN":
                    self.knn_done = time.perf_counter()

        clock = Clock()
        start = time.perf_counter()
        distance = jaccard_distance(features, k1=K1, k2=K2, progress=clock)
        end = time.perf_counter()
        result = {
            "knn": clock.knn_done - start, "after_knn": end - clock.knn_done,
            "peak_mb": _peak_mb(), "extra_mb": _peak_mb() - before, "pairs_per_row": distance.nnz / n,
            "warm_up": warm_up,
        }
    result["total"] = result["knn"] + result["after_knn"]
    return result


def measure_compile(method: str, n: int, d: int) -> dict:
    """Seconds of the first Jaccard call on a tiny input in this process ("compile" or cache "load")."""
    from stages.clustering.jaccard import jaccard_distance

    start = time.perf_counter()
    jaccard_distance(clustered_features(n, d, seed=1), k1=K1, k2=K2)
    return {"seconds": time.perf_counter() - start}


def _in_subprocess(section: str, method: str, n: int, d: int, env: dict[str, str] | None = None) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", section, method, str(n), str(d)],
        check=True, capture_output=True, text=True, cwd=HERE.parent, env=env,
    )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}


def _jit_times() -> tuple[float, float]:
    """(compile, load) seconds of the numba kernels: first call with an empty cache, then from that cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        compile_s = _in_subprocess("compile", "sparse", 64, 8, env)["seconds"]
        load_s = _in_subprocess("compile", "sparse", 64, 8, env)["seconds"]
    return compile_s, load_s


def jaccard_section(args: argparse.Namespace) -> None:
    """Print the Jaccard table: per (N, d) the baseline (up to --baseline-max) and the sparse version."""
    header = (
        f"{'d':>5} {'N':>6} {'method':>8} {'kNN s':>7} {'after s':>8} {'total s':>8} {'x after':>8} "
        f"{'x total':>8} {'peak MB':>8} {'extra MB':>9} {'pairs/row':>9} {'max|diff|':>9} {'warm-up s':>9} "
        f"{'load':>5}"
    )
    compile_s, load_s = _jit_times()
    print("Jaccard distance (k1 30, k2 6); x = baseline time / sparse time, same run")
    print(
        f"numba kernels: {compile_s:.1f} s for the first call with an empty cache (compile), {load_s:.2f} s "
        "from the cache; each sparse run warms up on 64 points first (warm-up s), outside the timed columns"
    )
    print(header)
    for d in args.dims:
        for n in args.sizes:
            rows = {}
            if n <= args.baseline_max:
                rows["baseline"] = _in_subprocess("jaccard", "baseline", n, d)
            rows["sparse"] = _in_subprocess("jaccard", "sparse", n, d)
            base = rows.get("baseline")
            for method, r in rows.items():
                ratio_after = f"{base['after_knn'] / r['after_knn']:8.1f}" if base and method == "sparse" else f"{'':>8}"
                ratio_total = f"{base['total'] / r['total']:8.1f}" if base and method == "sparse" else f"{'':>8}"
                diff = r.get("max_abs_diff")
                print(
                    f"{d:>5} {n:>6} {method:>8} {r['knn']:7.2f} {r['after_knn']:8.2f} {r['total']:8.2f} "
                    f"{ratio_after} {ratio_total} {r['peak_mb']:8.0f} {r['extra_mb']:9.0f} "
                    f"{r['pairs_per_row']:9.0f} {'' if diff is None else f'{diff:.1e}':>9} "
                    f"{'' if 'warm_up' not in r else format(r['warm_up'], '.2f'):>9} {r['load']:5.2f}",
                    flush=True,
                )


def _icdbscan_module():
    spec = importlib.util.spec_from_file_location("cluster_icdbscan", HERE / "cluster_icdbscan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def icdbscan_section(args: argparse.Namespace) -> None:
    """Cannot-link DBSCAN against set-based versions: see `benchmarks/cluster_icdbscan.py`."""
    _icdbscan_module().cluster_section(args)


def _from_dense(dense: np.ndarray):
    """A dense distance as `jaccard_distance` stores it: entries below 1 and the diagonal."""
    from stages.clustering.sparse_distance import from_csr

    keep = dense < 1
    np.fill_diagonal(keep, True)
    rows, cols = np.nonzero(keep)
    return from_csr(np.concatenate([[0], np.cumsum(keep.sum(1))]), cols, dense[rows, cols])


def _would_be_zeros(distance) -> int:
    """Stored strictly-upper entries in (0, ZERO_TOLERANCE]: zeros in exact arithmetic, a few ulps here."""
    from stages.clustering.sparse_distance import ZERO_TOLERANCE

    rows = np.repeat(np.arange(distance.n), np.diff(distance.indptr))
    upper = distance.indices > rows
    values = distance.data[upper]
    return int(np.count_nonzero((values > 0) & (values <= ZERO_TOLERANCE)))


def agreement_section(args: argparse.Namespace) -> None:
    """eps and labels from features against the reference's structure, on random sets made per seed.

    Per (N, seed): the problem of `benchmarks/cluster_icdbscan.py` (identities of ~10 tracklets, d 256,
    random cannot-links); "reference": `jaccard_baseline.dense_jaccard` (the reference's float32
    structure), the dense eps rule on it, sklearn DBSCAN and the set-based ICDBSCAN (reference structure,
    relaxed -1) on its dense matrix; "ours": `jaccard_distance`, `adaptive_eps`, `dbscan`, `icdbscan`.
    Each eps is given with the tolerance (now) and with the exact-zero rule (before), and the labels
    are compared (ARI) under each rule.
    """
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from stages.clustering.dbscan import dbscan
    from stages.clustering.eps import adaptive_eps
    from stages.clustering.icdbscan import icdbscan
    from stages.clustering.jaccard import jaccard_distance

    icd, baseline = _icdbscan_module(), _baseline_module()
    print("Agreement from features: ours against the reference's structure (k1 30, k2 6, rho 1.6e-3, min_samples 4)")
    print(f"{'N':>6} {'seed':>4} {'~0 ref/ours':>11} {'eps ref':>8} {'eps ours':>8} {'rel diff':>8} "
          f"{'exact-0 eps ref/ours':>20} {'ARI DBSCAN':>10} {'ARI ICDBSCAN':>12} {'ARI before D/IC':>15} {'load':>5}")
    for n in [size for size in args.sizes if size <= args.baseline_max]:
        for seed in args.seeds:
            load = os.getloadavg()[0]
            rng = np.random.default_rng(seed)
            features = icd.problem_features(n, d=256, rng=rng)
            pairs = icd.random_cannot_links(n, rng=rng)
            dense, _ = baseline.dense_jaccard(features, k1=K1, k2=K2)
            theirs, ours = _from_dense(dense), jaccard_distance(features, k1=K1, k2=K2)
            row = [f"{_would_be_zeros(theirs)}/{_would_be_zeros(ours)}"]
            aris = {}
            for rule, tolerance in (("now", None), ("before", 0.0)):
                extra = {} if tolerance is None else {"zero_tolerance": tolerance}
                eps_ref, eps_ours = (adaptive_eps(d, rho=1.6e-3, **extra) for d in (theirs, ours))
                row.append((eps_ref, eps_ours))
                ref_db = DBSCAN(eps=eps_ref, min_samples=4, metric="precomputed").fit(dense).labels_
                ref_ic = icd.sets_reference_structure(dense, pairs, eps=eps_ref, relaxed=icd.RELAXED)
                aris[rule] = (adjusted_rand_score(ref_db, dbscan(ours, eps=eps_ours)),
                              adjusted_rand_score(ref_ic, icdbscan(ours, pairs, eps=eps_ours, relaxed=icd.RELAXED)))
            (now_ref, now_ours), (old_ref, old_ours) = row[1], row[2]
            exact = f"{old_ref:.5f}/{old_ours:.5f}"
            before = f"{aris['before'][0]:.3f}/{aris['before'][1]:.3f}"
            print(f"{n:>6} {seed:>4} {row[0]:>11} {now_ref:>8.5f} {now_ours:>8.5f} {abs(now_ours / now_ref - 1):>8.1e} "
                  f"{exact:>20} {aris['now'][0]:>10.4f} {aris['now'][1]:>12.4f} {before:>15} {load:>5.2f}", flush=True)
            del dense


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "jaccard": jaccard_section, "icdbscan": icdbscan_section, "agreement": agreement_section,
}
MEASURES: dict[str, Callable[[str, int, int], dict]] = {"jaccard": measure_jaccard, "compile": measure_compile}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[2000, 5000, 10000, 20000, 50000])
    parser.add_argument("--dims", nargs="+", type=int, default=[2048, 256])
    parser.add_argument("--baseline-max", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="problem seeds of the icdbscan section")
    parser.add_argument("--one", nargs=4, metavar=("SECTION", "METHOD", "N", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        section, method, n, d = args.one
        print(json.dumps(MEASURES[section](method, int(n), int(d))))
        return
    for section in args.sections:
        SECTIONS[section](args)


if __name__ == "__main__":
    main()

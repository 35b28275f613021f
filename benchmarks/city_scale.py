"""The cluster stage at city scale: seconds per step, peak memory, neighbour recall and ARI against exact.

For each N it writes the city test bed (`stages.city_bed`: N tracklets on 100 cameras, TOC and the STS model in
aux.h5), then runs the whole cluster stage (`cluster_to_file`: kNN, Jaccard, SCP, STS, eps, ICDBSCAN with TOC,
centroids, the RLSCE map) in a child process per pipeline, so each peak RSS is its own:

- "city": the settings under test, what `cluster.knn: auto` runs above 200,000 tracklets, at every N
  (`cluster.knn=hnsw` on 64 PCA dimensions, `cluster.eps_pairs_per_point=4`, and the capped Jaccard from 20,000
  tracklets on);
- "exact": the same with `cluster.knn=exact`, where N <= --exact-max (the baseline; its Jaccard is capped the
  same way, which keeps every pair within eps, so it is the exact pipeline's answer);
- "full": exact kNN and every Jaccard pair below 1 kept (the stage before city scale), where N <= --full-max:
  the proof that the cap changes no label, and what it saves in memory;
- "f16" (with --float16): the city pipeline on the same bed stored as float16, against the float32 exact run.

Printed per N: each step's seconds, the stage's total, peak RSS, clusters and noise, purity / NMI against the
true identities, and against exact: the recall of the k1 neighbour lists and the ARI of the labels.

    .venv/bin/python benchmarks/city_scale.py --tracklets 50000 200000 1000000 --dim 256 --work /tmp/city
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("kNN", "Jaccard", "ICDBSCAN", "RLSCE map")
CITY_SETTINGS = ("cluster.knn=hnsw", "cluster.knn_pca_dim=64", "cluster.eps_pairs_per_point=4")


class _Timed:
    """The stage's Progress protocol, keeping each task's seconds and last message."""

    def __init__(self) -> None:
        self.began: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.said: dict[str, str] = {}

    def start(self, task: str, total: int | None = None) -> None:
        self.began[task] = time.perf_counter()

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def rate(self, task: str, text: str) -> None:
        pass

    def done(self, task: str, message: str = "") -> None:
        self.seconds[task] = self.seconds.get(task, 0.0) + time.perf_counter() - self.began.pop(task, time.perf_counter())
        self.said[task] = message

    def warn(self, message: str) -> None:
        print(f"  warning: {message}", file=sys.stderr, flush=True)


def _child(folder: Path, out: Path, overrides: list[str], neighbours_out: Path | None) -> None:
    """One pipeline: cluster the bed in `folder` into `out` and print one JSON line of what it measured."""
    from stages.artifacts.readers import config_from_artifact, read_clusters
    from stages.cluster import cluster_to_file

    features = folder / "features.h5"
    config = config_from_artifact(features, overrides=overrides)
    progress = _Timed()
    began = time.perf_counter()
    cluster_to_file(config, features_path=features, aux_path=folder / "aux.h5", out_path=out, round=1,
                    progress=progress)
    total = time.perf_counter() - began
    clusters = read_clusters(out)
    if neighbours_out is not None:
        _save_neighbours(features, config, neighbours_out)
    print(json.dumps({
        "seconds": progress.seconds, "said": progress.said, "total": total,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "clusters": int(clusters.attrs["num_clusters"]), "noise": float(clusters.attrs["noise_ratio"]),
        "eps": float(clusters.attrs["eps"]),
        "purity": float(clusters["quality/purity"]), "nmi": float(clusters["quality/nmi"]),
    }), flush=True)


def _save_neighbours(features: Path, config, out: Path) -> None:
    """The k1 lists this pipeline's kNN search gives (searched again, after the peak was measured)."""
    from stages.artifacts.readers import read_features
    from stages.clustering.knn import knn_search, knn_settings

    points = read_features(features, split="train", mode="cluster")["train"]["features"].astype(np.float32)
    if config.cluster.normalize:
        points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    found = knn_search(points, k=min(config.cluster.k1, len(points)), backend=config.cluster.knn_backend,
                       device="cpu", search=knn_settings(config.cluster))
    np.save(out, found.indices)


def _run_child(folder: Path, name: str, overrides: list[str], *, neighbours: bool) -> dict:
    out = folder / f"clusters_{name}.h5"
    lists = folder / f"neighbours_{name}.npy"
    command = [sys.executable, __file__, "--child", str(folder), "--child-out", str(out),
               *[a for o in overrides for a in ("--set", o)], *(["--child-neighbours", str(lists)] if neighbours else [])]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sys.stderr.write(result.stderr[-2000:] if result.returncode else "")
    if result.returncode:
        raise SystemExit(f"the {name} pipeline failed on {folder} (exit {result.returncode})")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    found["labels"] = out
    found["neighbours"] = lists if neighbours else None
    return found


def _recall(found: Path, exact: Path) -> float:
    """The share of the exact k1 lists' entries that the other lists hold (row by row)."""
    a, b = np.load(found), np.load(exact)
    rows = np.repeat(np.arange(len(a)), a.shape[1])
    pairs_a = rows * len(a) + a.ravel()
    pairs_b = rows * len(b) + b.ravel()
    return float(np.isin(pairs_b, pairs_a).mean())


def _ari(found: Path, exact: Path) -> float:
    from sklearn.metrics import adjusted_rand_score

    from stages.artifacts.readers import read_clusters

    return float(adjusted_rand_score(read_clusters(exact)["labels"], read_clusters(found)["labels"]))


def _row(n: int, name: str, found: dict, recall: float | None, ari: float | None) -> str:
    seconds = found["seconds"]
    cells = [f"{n:>9,}", f"{name:<5}", *(f"{seconds.get(step, float('nan')):8.1f}" for step in STEPS),
             f"{found['total']:8.1f}", f"{found['peak_rss_gib']:6.2f}", f"{found['clusters']:>8,}",
             f"{found['noise']:6.3f}", f"{found['purity']:6.3f}", f"{found['nmi']:6.3f}",
             "     -" if recall is None else f"{recall:6.4f}", "     -" if ari is None else f"{ari:6.4f}"]
    return " ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracklets", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/auxreid-city"), help="where the beds are written")
    parser.add_argument("--exact-max", type=int, default=200_000, help="largest N the exact baseline runs at")
    parser.add_argument("--full-max", type=int, default=50_000, help="largest N the uncapped exact stage runs at")
    parser.add_argument("--float16", action="store_true",
                        help="also run the city pipeline on the same bed stored as float16 (compared with exact float32)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="more settings for the city pipeline (and the exact one)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-neighbours", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.child_out, args.overrides, args.child_neighbours)
        return
    from stages.city_bed import write_city_bed

    print(f"load before: {os.getloadavg()[0]:.2f}; d = {args.dim}; city settings: "
          f"{' '.join(CITY_SETTINGS + tuple(args.overrides))}", flush=True)
    header = (f"{'N':>9} {'run':<5} " + " ".join(f"{s[:8]:>8}" for s in STEPS)
              + f" {'total s':>8} {'GiB':>6} {'clusters':>8} {'noise':>6} {'purity':>6} {'NMI':>6} {'recall':>6} "
                f"{'ARI':>6}")
    rows = []
    for n in args.tracklets:
        folder = args.work / f"n{n}_d{args.dim}_s{args.seed}"
        if not (folder / "features.h5").is_file():
            began = time.perf_counter()
            write_city_bed(folder, tracklets=n, dim=args.dim, seed=args.seed)
            print(f"bed N={n:,}: written in {time.perf_counter() - began:.1f} s", flush=True)
        exact_too = n <= args.exact_max
        city = _run_child(folder, "city", [*CITY_SETTINGS, *args.overrides], neighbours=exact_too)
        print(f"N={n:,} city: {city['total']:.1f} s, {city['said'].get('kNN', '')}", flush=True)
        half = None
        if args.float16:
            half_folder = args.work / f"n{n}_d{args.dim}_s{args.seed}_float16"
            if not (half_folder / "features.h5").is_file():
                write_city_bed(half_folder, tracklets=n, dim=args.dim, seed=args.seed, dtype="float16")
            half = _run_child(half_folder, "city", [*CITY_SETTINGS, *args.overrides], neighbours=exact_too)
        if exact_too:
            exact = _run_child(folder, "exact", [*CITY_SETTINGS, *args.overrides, "cluster.knn=exact"], neighbours=True)
            if n <= args.full_max:
                full = _run_child(folder, "full", [*CITY_SETTINGS, *args.overrides, "cluster.knn=exact",
                                                   "cluster.jaccard_cap_from=1000000000"], neighbours=False)
                rows.append(_row(n, "full", full, None, _ari(full["labels"], exact["labels"])))
            rows.append(_row(n, "exact", exact, None, None))
            rows.append(_row(n, "city", city, _recall(city["neighbours"], exact["neighbours"]),
                             _ari(city["labels"], exact["labels"])))
            if half is not None:
                rows.append(_row(n, "f16", half, _recall(half["neighbours"], exact["neighbours"]),
                                 _ari(half["labels"], exact["labels"])))
        else:
            rows.append(_row(n, "city", city, None, None))
            if half is not None:
                rows.append(_row(n, "f16", half, None, None))
        print(f"load now: {os.getloadavg()[0]:.2f}", flush=True)
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

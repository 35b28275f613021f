"""The capped Jaccard rows at city scale: the kernel's variants timed in one run, as ratios to the slowest.

On the city test bed (`stages.city_bed`, d = 256, seed 0) it encodes the tracklets as the stage does (HNSW lists
on 64 PCA dimensions, k1 30, k2 6), measures the cap for 4 pairs a tracklet with SCP and STS (`cap_for`), then
computes every row of the capped distance four ways:

- "dense, every pair": one accumulator over all N columns, SCP and STS evaluated for every pair below the cap
  (the kernel before it was made for a million rows);
- "buckets, every pair": each row's terms summed through buckets of columns (what the stage does beyond 131,072
  tracklets; forced here at any N), every pair still evaluated;
- "buckets, windows": what the stage runs at a million: the tracklets in time order, and the partners outside a
  row's transit window dropped without reading their row when STS's largest factor already passes the cap;
- "buckets, no penalties": the same rows without SCP and STS (the floor; keeps other pairs).

The first three must keep the same pairs with the same values; the script says so or stops.

    .venv/bin/python benchmarks/jaccard_rows.py --tracklets 200000 --work /tmp/city
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracklets", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/auxreid-city"), help="where the bed is written")
    args = parser.parse_args()

    from stages.artifacts.readers import config_from_artifact
    from stages.city_bed import write_city_bed
    from stages.cluster import _load_aux_for, _train_columns
    from stages.clustering import kernels
    from stages.clustering.jaccard import _capped_rows, cap_for, jaccard_from_weights, jaccard_weights
    from stages.clustering.knn import knn_settings
    from stages.clustering.penalties import AuxPenalties
    from stages.progress import NullProgress

    folder = args.work / f"n{args.tracklets}_d256_s0"
    if not (folder / "features.h5").is_file():
        write_city_bed(folder, tracklets=args.tracklets, dim=256, seed=0)
    features = folder / "features.h5"
    config = config_from_artifact(features, overrides=["cluster.knn=hnsw", "cluster.knn_pca_dim=64"])
    cluster = config.cluster
    artifact, columns = _train_columns(features, 1, NullProgress())
    aux = _load_aux_for(cluster, folder / "aux.h5", fingerprint=artifact.provenance.fingerprint,
                        tracklet_index=columns["tracklet_index"], progress=NullProgress())
    penalties = AuxPenalties(camera=columns["camera"], scp_lambda=cluster.scp_lambda, spans=aux.spans("train"),
                             transit=aux.transit, sts_lambda=cluster.sts_lambda, sts_gamma=cluster.sts_gamma)
    points = np.ascontiguousarray(columns["features"], dtype=np.float32)
    print(f"load before: {os.getloadavg()[0]:.2f}; N = {args.tracklets:,}", flush=True)
    began = time.perf_counter()
    weights = jaccard_weights(points, k1=cluster.k1, k2=cluster.k2, knn=knn_settings(cluster))
    cap = cap_for(weights, pairs_per_row=16.0, adjust=penalties, seed=0)
    print(f"encoding {time.perf_counter() - began:.1f} s, {weights.nnz / len(points):.1f} weights a tracklet; "
          f"cap {cap:.4f}", flush=True)

    def rows(penalty, *, direct: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kernels.DIRECT_MAX_COLUMNS = 1 << 62 if direct else 0
        n = weights.shape[0]
        return _capped_rows(weights, 0, n, cap=cap, penalties=penalty, progress=NullProgress())

    def windows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kernels.DIRECT_MAX_COLUMNS = 0
        found = jaccard_from_weights(weights, cap=cap, penalties=penalties)
        return np.diff(found.indptr), found.indices, found.data

    variants = {
        "dense, every pair": lambda: rows(penalties, direct=True),
        "buckets, every pair": lambda: rows(penalties, direct=False),
        "buckets, windows": windows,
        "buckets, no penalties": lambda: rows(None, direct=False),
    }
    seconds, results = {}, {}
    for name, run in variants.items():
        began = time.perf_counter()
        results[name] = run()
        seconds[name] = time.perf_counter() - began
        print(f"{name}: {seconds[name]:.1f} s, {results[name][0].mean():.1f} pairs kept a row", flush=True)
    reference = results["dense, every pair"]
    for name in ("buckets, every pair", "buckets, windows"):
        if not all(np.array_equal(a, b) for a, b in zip(results[name], reference)):
            raise SystemExit(f"{name} kept other pairs than the dense kernel")
    slowest = seconds["dense, every pair"]
    print(f"load now: {os.getloadavg()[0]:.2f}; the same pairs and values from the first three")
    print(f"{'variant':<24} {'s':>8} {'ms a row':>9} {'x faster':>9}")
    for name, value in seconds.items():
        print(f"{name:<24} {value:8.1f} {value / args.tracklets * 1e3:9.3f} {slowest / value:9.2f}")


if __name__ == "__main__":
    main()

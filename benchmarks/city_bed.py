"""Write a city-scale test bed for the cluster stage: features.h5 and aux.h5 of N simulated tracklets, no images.

People walk a network of cameras (`stages.city_bed`); the features are identity + camera offset + noise; aux.h5
holds TOC's cannot-links and the STS model from the true identities (as `mine-aux --sts-source oracle`). Prints
each step's seconds, the file sizes and the cluster command that reads them:

    .venv/bin/python benchmarks/city_bed.py --tracklets 50000 --dim 256 --out artifacts/city50k --seed 0
    .venv/bin/auxreid cluster --features artifacts/city50k/features.h5 --aux artifacts/city50k/aux.h5 \\
        --out artifacts/city50k/clusters.h5

The files record a config with `cluster.toc` on (`stages.city_bed.city_config`); `--set` changes it (its aux keys
shape the STS model here). 1,000,000 x 2048 float32 features take 8 GB on disk and in memory while written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from stages.city_bed import CAMERA_BIAS, CROWDING, DTYPES, NOISE, city_config, write_city_bed
from stages.errors import AuxReidError


class _Printed:
    """Progress as one line per finished step, with its seconds (the stage's Progress protocol)."""

    def __init__(self) -> None:
        self._began: dict[str, float] = {}

    def start(self, task: str, total: int | None = None) -> None:
        self._began[task] = time.perf_counter()

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def done(self, task: str, message: str = "") -> None:
        print(f"{task:<9} {time.perf_counter() - self._began.pop(task, time.perf_counter()):7.1f} s  {message}",
              flush=True)

    def rate(self, task: str, text: str) -> None:
        pass

    def warn(self, message: str) -> None:
        print(f"warning: {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracklets", type=int, required=True, help="N, the train tracklets")
    parser.add_argument("--dim", type=int, default=256, help="feature dimension (default 256)")
    parser.add_argument("--out", type=Path, required=True, help="folder for features.h5 and aux.h5")
    parser.add_argument("--seed", type=int, default=0, help="fixes every draw (default 0)")
    parser.add_argument("--cameras", type=int, default=100, help="cameras in the network (default 100)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="stored feature type (default float32)")
    parser.add_argument("--crowding", type=float, default=CROWDING,
                        help=f"mean same-camera overlaps per tracklet (default {CROWDING})")
    parser.add_argument("--noise", type=float, default=NOISE, help=f"appearance noise (default {NOISE})")
    parser.add_argument("--camera-bias", type=float, default=CAMERA_BIAS,
                        help=f"per-camera offset (default {CAMERA_BIAS})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config setting recorded in both files (repeatable), e.g. cluster.k1=20")
    args = parser.parse_args()
    began = time.perf_counter()
    features, aux, truth = write_city_bed(
        args.out, tracklets=args.tracklets, dim=args.dim, cameras=args.cameras, seed=args.seed, dtype=args.dtype,
        crowding=args.crowding, noise=args.noise, camera_bias=args.camera_bias, config=city_config(args.overrides),
        progress=_Printed())
    sizes = truth.sizes
    print(f"total     {time.perf_counter() - began:7.1f} s  {truth.person.size:,} tracklets of {sizes.size:,} identities "
          f"(2-30 each, median {int(np.median(sizes))}), {args.cameras} cameras")
    for path in (features, aux):
        print(f"{path}: {path.stat().st_size / 2**20:,.1f} MiB")
    print(f"cluster them: .venv/bin/auxreid cluster --features {features} --aux {aux} --out {args.out / 'clusters.h5'}")


if __name__ == "__main__":
    try:
        main()
    except AuxReidError as exc:
        raise SystemExit(f"error: {exc}") from None

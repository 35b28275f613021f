"""`auxreid status` on a 50-round run of Duke size: reading the files' records (now) against hashing every file (before).

Builds a run in a temporary folder with the real writers (`write_artifact` with the provenance the stages record,
`save_model`), wired as `stage_io` wires a run, so status reads it as a trained run:
- config.yaml: the schema's defaults (the paper's Duke settings);
- aux.h5 (made from round 1's features) and, per round R = 1..50: features.h5 (2,196 train tracklets x 2,048
  float32, ~18 MB, from model R-1), clusters.h5 (700 clusters: centroids, RLSCE map; from features R, aux.h5
  and round 1's clusters), model.pt (from clusters R and model R-1);
- round 0, every 2nd round and round 50 evaluated: test_features.h5 and eval.h5 (702 query + 2,636 gallery
  tracklets x 2,048 float32, ~27 MB each, from model R and aux.h5);
- every model.pt: `--model-mb` MB (default 180, a demo run's model.pt with its optimizer state; ResNet-50's with
  Adam's is about twice that), one dummy tensor as student and teacher.

Then, each in a fresh process (what a user's `auxreid status` is; the files sit in the page cache as just
written, the best case for hashing), `--repeat` times, the fastest shown:
1. now: `run_status` with the records the writers left (no file hashed, no torch);
2. before: the same with every record ignored, as before records existed: every parent hashed (SHA-256), every
   model.pt loaded with torch for its provenance;
3. the whole command, `python -m auxreid_cli.main status RUN`, wall clock (start-up included).
The ratio is 2 over 1. `os.getloadavg()` is printed before and after, as the machine may be shared.

    .venv/bin/python benchmarks/status.py [--rounds 50] [--model-mb 180] [--repeat 3] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: DukeMTMC-VideoReID: train tracklets, query, gallery; the feature width; clusters and RLSCE K of a middle round.
TRAIN, QUERY, GALLERY, DIM, NUM_CLUSTERS, RLSCE_K, TOP_K = 2196, 702, 2636, 2048, 700, 60, 100

#: Runs `run_status` once in a fresh process and prints {"seconds", "rows", "stale", "torch"} as JSON; BEFORE
#: first makes every record read as absent.
PROBE = """
import json, sys, time
from pathlib import Path
if {before}:
    from stages.artifacts import readers, sidecar
    readers.read_record = sidecar.read_record = lambda path, stat=None: None
from stages.rundir import RunDir
from stages.status import run_status
began = time.perf_counter()
rows = run_status(RunDir(Path({run!r})))
seconds = time.perf_counter() - began
print(json.dumps({{"seconds": seconds, "rows": sum(r.exists for r in rows), "torch": "torch" in sys.modules,
                  "stale": sum(bool(r.stale or r.settings or r.problem) for r in rows)}}))
"""


def build(run_path: Path, rounds: int, model_mb: float) -> None:
    """The fake run (see the module's docstring), written in pipeline order."""
    import torch

    from stages.artifacts.h5 import make_provenance, write_artifact
    from stages.artifacts.model_file import save_model
    from stages.artifacts.schemas import AUX, CLUSTERS, EVAL, FEATURES
    from stages.config import Config
    from stages.rundir import RunDir, write_run_config

    config, run, rng = Config(), RunDir(run_path), np.random.default_rng(0)
    write_run_config(run, config)
    per_network = int(model_mb * 2**20 / 2 / 4)  # float32 values of student and teacher each

    def h5(path, schema, round, parents, data, attrs=None):
        provenance = make_provenance(schema, dataset="duke", fingerprint="f" * 16, round=round, config=config,
                                     parents=parents)
        write_artifact(path, provenance, data, attrs=attrs)

    def columns(prefix, n):
        return {f"{prefix}/features": rng.standard_normal((n, DIM), dtype=np.float32),
                f"{prefix}/tracklet_index": np.arange(n), f"{prefix}/camera": rng.integers(0, 8, n),
                f"{prefix}/person_id": np.full(n, -1), f"{prefix}/num_frames": rng.integers(10, 400, n)}

    def model(round, parents):
        state = {"w": torch.full((per_network,), float(round))}
        save_model(run.model(round), student=state, teacher=state, config=config, round=round, step=round,
                   dataset="duke", fingerprint="f" * 16, parents=parents)

    def evaluate(round):
        h5(run.test_features(round), FEATURES, round, {"model": run.model(round)},
           {**columns("query", QUERY), **columns("gallery", GALLERY)}, {"mode": "infer"})
        h5(run.eval(round), EVAL, round, {"test_features": run.test_features(round), "model": run.model(round),
                                          "aux": run.aux},
           {**columns("query", QUERY), **columns("gallery", GALLERY), "ap": rng.random(QUERY),
            "inp": rng.random(QUERY), "metrics/mAP": np.float64(0.5), "metrics/cmc": np.linspace(0.5, 1, 20),
            "metrics/mINP": np.float64(0.2), "topk_index": rng.integers(0, GALLERY, (QUERY, TOP_K)),
            "topk_distance": rng.random((QUERY, TOP_K), dtype=np.float32)})

    run.round_dir(0).mkdir(parents=True)
    model(0, None)
    for round in range(1, rounds + 1):
        run.round_dir(round).mkdir()
        h5(run.features(round), FEATURES, round, {"model": run.model(round - 1)}, columns("train", TRAIN),
           {"mode": "cluster"})
        if round == 1:
            h5(run.aux, AUX, 1, {"features": run.features(1)},
               {"train/camera": rng.integers(0, 8, TRAIN), "toc/train_pairs": np.zeros((0, 2), np.int64)})
            evaluate(0)  # round 0's evaluation reads aux.h5, mined from round 1's features
        parents = {"features": run.features(round), "aux": run.aux, **({"eps_from": run.clusters(1)} if round > 1
                                                                          else {})}
        h5(run.clusters(round), CLUSTERS, round, parents,
           {"labels": rng.integers(-1, NUM_CLUSTERS, TRAIN), "centroids": rng.standard_normal((NUM_CLUSTERS, DIM),
                                                                                         dtype=np.float32),
            "nearest_clusters": rng.integers(0, NUM_CLUSTERS, (NUM_CLUSTERS, RLSCE_K)), "sizes": np.full(NUM_CLUSTERS, 3)},
           {"num_clusters": NUM_CLUSTERS})
        model(round, {"clusters": run.clusters(round), "model": run.model(round - 1)})
        if round % 2 == 0 or round == rounds:
            evaluate(round)


def probe(run: Path, *, before: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE.format(before=before, run=str(run))], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        sys.exit(f"run_status failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def command_seconds(run: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "auxreid_cli.main", "status", str(run)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"})
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"auxreid status failed:\n{done.stdout}{done.stderr}")
    return seconds


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50, help="rounds of the fake run (default 50)")
    parser.add_argument("--model-mb", type=float, default=180, help="size of each model.pt in MB (default 180)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measurement; the fastest is shown")
    parser.add_argument("--folder", type=Path, default=None,
                        help="build the run in DIR/run and keep it (reused when it is there); default: a temporary "
                             "folder, removed at the end")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="auxreid_status_bench_"))
    run = folder / "run"
    try:
        if not (run / "config.yaml").is_file():
            began = time.perf_counter()
            build(run, args.rounds, args.model_mb)
            print(f"built {run} in {time.perf_counter() - began:.0f} s")
        files = [p for p in run.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        print(f"run: {args.rounds} rounds, {len(files)} files, {size / 2**30:.2f} GiB; load before: {load()}")
        now = [probe(run, before=False) for _ in range(args.repeat)]
        before = [probe(run, before=True) for _ in range(args.repeat)]
        command = [command_seconds(run) for _ in range(args.repeat)]
        for name, result in (("now", now[0]), ("before", before[0])):
            print(f"{name}: {result['rows']} artifacts, {result['stale']} stale or unreadable, torch imported: "
                  f"{result['torch']}")
        fast, slow = min(r["seconds"] for r in now), min(r["seconds"] for r in before)

        def runs(seconds: list[float]) -> str:
            return ", ".join(f"{s:.3f}" for s in seconds)

        print(f"run_status, records (now):           {fast:.3f} s  (runs: {runs([r['seconds'] for r in now])})")
        print(f"run_status, hashing all (before):    {slow:.3f} s  (runs: {runs([r['seconds'] for r in before])})")
        print(f"ratio before / now:                  {slow / fast:.1f}x")
        print(f"`auxreid status RUN`, whole command: {min(command):.3f} s  (runs: {runs(command)})")
        print(f"load after: {load()}")
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

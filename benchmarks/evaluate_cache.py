"""`auxreid evaluate RUN --round R` with the round's test features kept (test_features.h5) against extracting them again.

Three fresh `auxreid evaluate` processes (what a user or make runs), wall clock, on a copy of a run's round
(config.yaml, aux.h5, round_R/model.pt) in a temporary folder, so the run itself is not touched:
1. first call: extracts every query/gallery frame, keeps them in test_features.h5, ranks;
2. a changed test-time setting (`--set evaluate.rerank=true`): reuses test_features.h5, re-ranks;
3. the same setting the old way, every call extracting (`--model` given: nothing kept or reused).
Calls 2 and 3 must give the same numbers (same features, same ranking); the ratio is 3 over 2. The stage's
own seconds (eval.h5's `seconds`) are printed beside, and `uptime`'s load, as the machine may be shared.

    .venv/bin/python benchmarks/evaluate_cache.py [--run demo] [--round 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUXREID = [sys.executable, "-m", "auxreid_cli.main"]


def timed(args: list[str], cwd: Path) -> float:
    """Wall seconds of one `auxreid` process; exits with its output when it fails."""
    began = time.perf_counter()
    done = subprocess.run([*AUXREID, *args], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"auxreid {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def copy_round(run: Path, round: int, into: Path) -> Path:
    """config.yaml, aux.h5 and round R's model.pt of `run` in a new run folder under `into`."""
    copy = into / run.name
    (copy / f"round_{round:03d}").mkdir(parents=True)
    for name in ("config.yaml", "aux.h5", f"round_{round:03d}/model.pt"):
        if (run / name).is_file():
            shutil.copy(run / name, copy / name)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="demo", help="run name (under $AUXREID_ARTIFACTS, default artifacts) or path")
    parser.add_argument("--round", type=int, default=5, help="the round to evaluate (its model.pt)")
    args = parser.parse_args()
    from stages.artifacts.h5 import read_artifact
    from stages.rundir import RunDir

    run = RunDir.resolve(args.run)
    if not run.model(args.round).is_file():
        sys.exit(f"{run.model(args.round)} does not exist; make the run first (make demo)")
    with tempfile.TemporaryDirectory(prefix="auxreid-evaluate-cache-") as folder:
        copy = RunDir(copy_round(run.path, args.round, Path(folder)))
        where, r = str(copy.path), str(args.round)
        old_out = copy.round_dir(args.round) / "eval_extracting.h5"
        calls = [
            ("first call: extract, keep test_features.h5, rank", ["evaluate", where, "--round", r], copy.eval(args.round)),
            ("changed setting: reuse test_features.h5, re-rank",
             ["evaluate", where, "--round", r, "--set", "evaluate.rerank=true"], copy.eval(args.round)),
            ("changed setting, extracting again (--model, as before)",
             ["evaluate", where, "--round", r, "--set", "evaluate.rerank=true", "--model",
              str(copy.model(args.round)), "--out", str(old_out)], old_out),
        ]
        rows, maps = [], []
        for label, command, out in calls:
            wall = timed(command, ROOT)
            artifact = read_artifact(out)
            rows.append((label, wall, float(artifact.attrs["seconds"])))
            maps.append(float(artifact["metrics/mAP"]))
        if maps[1] != maps[2]:
            sys.exit(f"reused and re-extracted features gave different mAP: {maps[1]} vs {maps[2]}")
        frames = sum(int(n) for split in ("query", "gallery")
                     for n in read_artifact(copy.test_features(args.round))[f"{split}/num_frames"])
    print(f"run {run.name} round {args.round}: {frames} query/gallery frames; mAP with re-ranking {maps[1]:.4f} "
          "(reused = extracted again)")
    print(f"{'call':58s} {'wall s':>8s} {'stage s':>8s}")
    for label, wall, stage in rows:
        print(f"{label:58s} {wall:8.2f} {stage:8.2f}")
    print(f"re-rank after a changed setting: {rows[2][1] / rows[1][1]:.1f}x faster wall clock, "
          f"{rows[2][2] / rows[1][2]:.1f}x in the stage (extracting again / reusing)")
    print("load (uptime):", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()

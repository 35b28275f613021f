"""Fixed start-up cost of every `auxreid` command: `--help` and a quick run, against two baselines.

Each line is the best of --repeat wall-clock runs of a fresh process (the fixed cost is the floor; slower
runs are other load). Baselines measured in the same run: `python -c pass` (the interpreter) and
`python -c 'import torch'` (the floor of any command that touches a model). The quick runs work on a tiny
synthetic dataset and run made in a temporary folder first (not timed).

    .venv/bin/python benchmarks/startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUXREID = [sys.executable, "-m", "auxreid_cli.main"]


def best_of(command: list[str], repeat: int, env: dict[str, str], cwd: Path) -> float | str:
    """The fastest of `repeat` runs in seconds, or the last line a failing command printed."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            return f"failed (exit {done.returncode}): {output[-1] if output else ''}"
    return min(times)


def commands() -> list[list[str]]:
    """Every command path of the CLI (`datasets show` for a group), read from this checkout's typer app."""
    import typer.main

    sys.path.insert(0, str(ROOT))

    from auxreid_cli.main import app

    found = []
    for name, command in sorted(typer.main.get_command(app).commands.items()):
        subcommands = getattr(command, "commands", None)
        found += [[name, sub] for sub in sorted(subcommands)] if subcommands else [[name]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per line; the fastest is shown (default 3)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth = work / "data" / "synth"
        env.update(AUXREID_ARTIFACTS=str(work / "artifacts"), AUXREID_DATA=str(work / "data"))
        init = AUXREID + ["init", "quick", "--config", str(ROOT / "configs/synth.yaml"), "--set", f"data.root={synth}"]
        tiny = ["--ids", "6", "--test-ids", "3", "--distractors", "0", "--cams", "3", "--tracklets-per-id", "2"]
        for command in (AUXREID + ["synth", "--out", str(synth), *tiny], init):
            subprocess.run(command, env=env, cwd=work, check=True, capture_output=True)
        run = work / "artifacts" / "quick"
        lines = [("python -c pass", [sys.executable, "-c", "pass"]),
                 ("python -c 'import torch'", [sys.executable, "-c", "import torch"])]
        lines += [(f"auxreid {' '.join(path)} --help", AUXREID + path + ["--help"]) for path in commands()]
        lines += [
            ("auxreid --version", AUXREID + ["--version"]),
            ("auxreid init (synth config, tiny data)", init + ["--force"]),
            ("auxreid status RUN", AUXREID + ["status", "quick"]),
            ("auxreid inspect RUN/config.yaml", AUXREID + ["inspect", str(run / "config.yaml")]),
            ("auxreid inspect RUN/round_000/model.pt", AUXREID + ["inspect", str(run / "round_000/model.pt")]),
            ("auxreid report RUN", AUXREID + ["report", "quick", "--out", str(work / "report.png")]),
            ("auxreid mine-aux --dataset synth (tiny data)", AUXREID + ["mine-aux", "--dataset", "synth"]),
        ]
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"best of {args.repeat} runs each; {os.cpu_count()} CPUs, load average {load} (1 / 5 / 15 min)")
        base, torch_base = None, None
        for label, command in lines:
            seconds = best_of(command, args.repeat, env, work)
            if isinstance(seconds, str):
                print(f"{label:<48} {seconds}", flush=True)
                continue
            if base is None:
                base = seconds
            elif torch_base is None:
                torch_base = seconds
            ratio = f"{seconds / torch_base:5.2f} x import torch" if torch_base else ""
            print(f"{label:<48} {seconds:6.2f} s  {ratio}", flush=True)


if __name__ == "__main__":
    main()

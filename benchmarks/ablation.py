"""Ablation of the method on the synthetic camera network, like the paper's ablation tables.

Every training variant runs the whole loop (init, extract, mine-aux, then extract -> cluster ->
train-round per round, evaluate at the last round) through the subcommands, once per seed, and the
table gives the final mAP and rank-1 as mean +- standard deviation over the seeds. Variants:

- the full method of configs/synth.yaml (TOC, SCP, STS in clustering; RLSCE; WATL; fixed iterations);
- auxiliary information off in clustering: TOC, SCP, STS one at a time, and all three;
- ID loss LSCE and CE instead of RLSCE; soft triplet instead of WATL; dynamic iterations;
- the adaptive eps re-estimated every round; the STS model re-estimated from each round's clusters;
  the features standardised per camera before clustering;
- the oracle: the true identities as pseudo labels (`cluster.labels=oracle`), the same model, data and
  iterations trained supervised, so the other rows read as a share of it;
- auxiliary information at test time: the full method's final features re-evaluated from its saved
  eval.h5 (no retraining) with TOC, SCP, STS off one at a time and all off.

The seed changes the synthetic network (identities, walks, clocks), the sampling and the initial
weights together. A difference smaller than the spread over seeds is noise. `--synth-args` generates
another kind of network (given to `auxreid synth`; use a `--work` folder of its own for it).

    .venv/bin/python benchmarks/ablation.py --rounds 3 --seeds 0 1 2        # writes benchmarks/results/ablation.md
    .venv/bin/python benchmarks/ablation.py --only full no_aux_cluster --seeds 0
    .venv/bin/python benchmarks/ablation.py --rounds 2 --seeds 2 --keep --out /tmp/s2.md    # one seed per process
    .venv/bin/python benchmarks/ablation.py --rounds 2 --seeds 0 1 2 --collect              # their runs, one table
    .venv/bin/python benchmarks/ablation.py --only full oracle --seeds 1 --work artifacts/ablation_sparse \
        --synth-args "--ids 160 --test-ids 60 --tracklets-per-id 3 --size 128x64"            # a sparse network
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: name -> (label, --set overrides) of the training variants.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "full": ("configs/synth.yaml: the paper's method + features standardised per camera before clustering", []),
    "paper_loop": ("the paper's loop (configs/synth.yaml without cluster.camera_norm)", ["cluster.camera_norm=false"]),
    "no_toc_cluster": ("clustering without TOC (plain DBSCAN)", ["cluster.toc=false"]),
    "no_scp_cluster": ("clustering without SCP", ["cluster.scp=false"]),
    "no_sts_cluster": ("clustering without STS", ["cluster.sts=false"]),
    "no_aux_cluster": ("clustering without TOC, SCP, STS", ["cluster.toc=false", "cluster.scp=false", "cluster.sts=false"]),
    "lsce": ("ID loss LSCE instead of RLSCE", ["train.id_loss=lsce"]),
    "ce": ("ID loss CE instead of RLSCE", ["train.id_loss=ce"]),
    "soft_triplet": ("soft triplet instead of WATL", ["train.triplet=soft"]),
    "dynamic_iters": ("dynamic iterations (0.6 x clusters) instead of fixed", ["train.iters_multiplier=0.6"]),
    "eps_every_round": ("full + adaptive eps re-estimated every round instead of kept from round 1",
                        ["cluster.eps_every_round=true"]),
    "sts_reestimate": ("full + STS model re-estimated from each round's clusters", ["cluster.sts_reestimate=true"]),
    "oracle": ("oracle: true identities as pseudo labels (an upper bound, not the method)", ["cluster.labels=oracle"]),
}
#: name -> (label, --set overrides) of the test-time variants, re-evaluated from the full method's eval.h5.
TEST_VARIANTS: dict[str, tuple[str, list[str]]] = {
    "test_no_toc": ("full method, test without TOC", ["evaluate.toc=false"]),
    "test_no_scp": ("full method, test without SCP", ["evaluate.scp=false"]),
    "test_no_sts": ("full method, test without STS", ["evaluate.sts=false"]),
    "test_no_aux": ("full method, test without TOC, SCP, STS", ["evaluate.toc=false", "evaluate.scp=false",
                                                                 "evaluate.sts=false"]),
}


def _auxreid(*args: str) -> None:
    command = [str(Path(sys.executable).with_name("auxreid")), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr.strip()}")


def _metrics(path: Path) -> dict[str, float]:
    """mAP and rank-1 with the run's test-time terms, and the mAP of the features alone (`plain`).

    The plain mAP shows differences of training that the test-time terms partly even out.
    """
    metrics = json.loads(path.read_text())
    plain = metrics["plain"]["mAP"] if isinstance(metrics.get("plain"), dict) else metrics["mAP"]
    return {"mAP": float(metrics["mAP"]), "rank1": float(metrics["rank1"]), "plain": float(plain)}


def _cluster_trend(run: Path) -> dict[str, float]:
    """Purity, NMI and noise of the pseudo labels at round 2 and at the last round.

    Purity and NMI count clustered tracklets only; a loop whose eps merges more people every round shows
    them falling while noise falls.
    """
    from stages.report import collect_rows

    rows = [row for row in collect_rows(run) if row.purity is not None]
    if len(rows) < 2:
        return {}
    second, last = next((row for row in rows if row.round == 2), rows[0]), rows[-1]
    return {f"{key}_{end}": float(getattr(row, attribute)) for key, attribute in
            (("purity", "purity"), ("nmi", "nmi"), ("noise", "noise_ratio"))
            for end, row in (("from", second), ("to", last))}


def _record(run: Path, rounds: int) -> dict[str, float]:
    return {**_metrics(run / f"round_{rounds:03d}" / "eval.json"), **_cluster_trend(run)}


def _sets(overrides: list[str]) -> list[str]:
    return [item for value in overrides for item in ("--set", value)]


def _finished(run: Path, settings: list[str], rounds: int) -> bool:
    """True when `run` already holds this variant's final evaluation, made with exactly these settings.

    The run's frozen config.yaml must equal configs/synth.yaml with the same --set values, so a run of
    another variant, seed, network or an older synth config is never taken for this one; and the final
    evaluation must have been made with that config (its recorded hash), so rounds left by an interrupted
    earlier run under another config.yaml (`init --force` rewrites config.yaml first) are not taken either.
    """
    from stages.artifacts.h5 import read_provenance
    from stages.config import config_hash, config_to_dict, load_config

    final = run / f"round_{rounds:03d}" / "eval.h5"
    if not (final.is_file() and final.with_suffix(".json").is_file() and (run / "config.yaml").is_file()):
        return False
    expected = load_config("configs/synth.yaml", settings)
    if config_to_dict(load_config(run / "config.yaml")) != config_to_dict(expected):
        return False
    return read_provenance(final)[0].config_hash == config_hash(expected)


def run_variant(name: str, overrides: list[str], *, seed: int, rounds: int, data: Path, root: Path,
                keep: bool = False) -> Path:
    """The whole loop for one variant and seed; returns the run directory.

    With `keep`, a run that already finished with the same settings is reused (an interrupted ablation,
    or seeds run by separate processes, then collected into one table).
    """
    run = root / f"{name}_s{seed}"
    settings = [f"data.root={data}", f"seed={seed}", *overrides]
    if keep and _finished(run, settings, rounds):
        return run
    _auxreid("init", str(run), "--config", "configs/synth.yaml", "--set", f"data.root={data}", "--set",
             f"seed={seed}", *_sets(overrides), "--force")
    for r in range(1, rounds + 1):
        _auxreid("extract", str(run), "--round", str(r))
        if r == 1:
            _auxreid("mine-aux", str(run), "--features", str(run / "round_001" / "features.h5"))
        _auxreid("cluster", str(run), "--round", str(r))
        _auxreid("train-round", str(run), "--round", str(r))
    _auxreid("evaluate", str(run), "--round", str(rounds))
    return run


def _summary(values: list[float], seeds: list[int]) -> str:
    """Mean ± standard deviation over the seeds, then each seed's value (one seed: its value alone)."""
    each = ", ".join(f"s{seed} {value:.3f}" for seed, value in zip(seeds, values))
    if len(values) == 1:
        return each
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({each})"


Results = dict[str, dict[int, dict[str, float]]]
"""variant (or round0 / a test-time variant) -> seed -> its numbers."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--work", type=Path, default=Path("artifacts/ablation"), help="runs and networks go here")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation.md"))
    parser.add_argument("--synth-args", default="", help="more `auxreid synth` options for the networks (quoted)")
    parser.add_argument("--keep", action="store_true",
                        help="reuse runs that already finished with the same settings (resume, or collect the "
                             "seeds that separate processes ran into one table)")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: write the table from the runs that finished (as --keep would reuse them)")
    args = parser.parse_args()
    started = time.perf_counter()
    results: Results = {}
    for seed in args.seeds:
        data = args.work / f"synth_s{seed}"
        if args.collect:
            _collect(args, seed, data, results)
            continue
        if not (data / "synth.json").is_file():
            _auxreid("synth", "--out", str(data), "--seed", str(seed), *args.synth_args.split(), "--force")
        for name in args.only:
            run = run_variant(name, VARIANTS[name][1], seed=seed, rounds=args.rounds, data=data.resolve(),
                              root=args.work, keep=args.keep)
            record = results.setdefault(name, {})[seed] = _record(run, args.rounds)
            print(f"seed {seed} {name}: mAP {record['mAP']:.3f} rank-1 {record['rank1']:.3f} "
                  f"plain {record['plain']:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
            if "round0" not in results or seed not in results["round0"]:
                if not (args.keep and (run / "round_000" / "eval.json").is_file()):
                    _auxreid("evaluate", str(run), "--round", "0")
                results.setdefault("round0", {})[seed] = _metrics(run / "round_000" / "eval.json")
            if name == "full":
                saved = run / f"round_{args.rounds:03d}" / "eval.h5"
                for test_name, (_, overrides) in TEST_VARIANTS.items():
                    out = run / f"{test_name}.h5"
                    _auxreid("evaluate", "--features", str(saved), "--aux", str(run / "aux.h5"), "--out", str(out),
                             *_sets(overrides))
                    results.setdefault(test_name, {})[seed] = _metrics(out.with_suffix(".json"))
            _write_table(args, results, time.perf_counter() - started)
    _write_table(args, results, time.perf_counter() - started)
    print(args.out.read_text())


def _collect(args: argparse.Namespace, seed: int, data: Path, results: Results) -> None:
    """Add this seed's finished runs to `results`, computing nothing; a variant not finished is left out."""
    for name in args.only:
        run = args.work / f"{name}_s{seed}"
        if not _finished(run, [f"data.root={data.resolve()}", f"seed={seed}", *VARIANTS[name][1]], args.rounds):
            continue
        results.setdefault(name, {})[seed] = _record(run, args.rounds)
        extra = [("round0", run / "round_000" / "eval.json")]
        if name == "full":
            extra += [(test_name, run / f"{test_name}.json") for test_name in TEST_VARIANTS]
        for key, path in extra:
            if path.is_file() and seed not in results.get(key, {}):
                results.setdefault(key, {})[seed] = _metrics(path)


COLUMNS = (
    ("mAP", "mAP"), ("rank1", "rank-1"), ("plain", "mAP, features alone"), ("share", "share of the oracle's mAP"),
    ("purity_from", "purity round 2"), ("purity_to", "purity last round"), ("nmi_from", "NMI round 2"),
    ("nmi_to", "NMI last round"), ("noise_from", "noise round 2"), ("noise_to", "noise last round"),
)


def _write_table(args: argparse.Namespace, results: Results, seconds: float) -> None:
    """The table so far, rewritten after every run so an interrupted ablation keeps what it measured.

    "share of the oracle" is the variant's mAP over the oracle's on the same seed (only seeds with both).
    """
    oracle = results.get("oracle", {})
    for by_seed in results.values():
        for seed, record in by_seed.items():
            if seed in oracle and "mAP" in record:
                record["share"] = record["mAP"] / oracle[seed]["mAP"]
    lines = [
        f"Ablation on the synthetic network: {args.rounds} rounds of configs/synth.yaml, seeds {args.seeds}: "
        f"final mAP and rank-1 with the variant's test-time terms, the mAP of the features alone (no test-time "
        f"terms), the share of the oracle's mAP on the same seed, and purity, NMI (clustered tracklets) and noise "
        f"of the pseudo labels at round 2 and at the last round; mean ± standard deviation over the seeds, then "
        f"each seed's value (`benchmarks/ablation.py --rounds {args.rounds} --seeds {' '.join(map(str, args.seeds))}"
        + (f" --synth-args '{args.synth_args}'" if args.synth_args else "") + "`, "
        + ("collected from the finished runs)." if args.collect else f"{seconds:.0f} s, load {os.getloadavg()[0]:.1f})."),
        "",
        "| variant | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    labels = {**VARIANTS, **TEST_VARIANTS, "round0": ("round 0: initial weights, no training", [])}
    for name in sorted(results, key=lambda name: name != "round0"):
        by_seed = results[name]
        cells = []
        for key, _ in COLUMNS:
            seeds = [seed for seed in sorted(by_seed) if key in by_seed[seed]]
            cells.append(_summary([by_seed[seed][key] for seed in seeds], seeds) if seeds else "-")
        lines.append(f"| {labels[name][0]} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Rounds 1..N of the method on the synthetic network through the subcommands, then the per-round report.
#   benchmarks/rounds.sh RUN N [--set key=value ...]     (e.g. benchmarks/rounds.sh synth3 3)
# Per round: extract (round R-1's teacher) -> cluster -> train-round -> evaluate; mine-aux once after round 1's
# features; round 0 is evaluated too. DATA (default synth under $AUXREID_DATA or ./data: `auxreid synth`) is
# the synthetic network to use.
set -euo pipefail
usage() { sed -n '2,6s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 2 ]; then usage >&2; exit 2; fi
run=$1; rounds=$2; shift 2
aux=${AUXREID:-.venv/bin/auxreid}
dir=${AUXREID_ARTIFACTS:-artifacts}/$run
$aux init "$run" --config configs/synth.yaml --set data.root="${DATA:-${AUXREID_DATA:-data}/synth}" "$@" --force
for r in $(seq 1 "$rounds"); do
  $aux extract "$run" --round "$r" > /dev/null
  if [ "$r" = 1 ]; then
    $aux mine-aux "$run" --features "$dir/round_001/features.h5" > /dev/null
    $aux evaluate "$run" --round 0 > /dev/null
  fi
  $aux cluster "$run" --round "$r" > /dev/null
  $aux train-round "$run" --round "$r"
  $aux evaluate "$run" --round "$r" > /dev/null
done
$aux report "$run" --out "$dir/report.png"

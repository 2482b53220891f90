#!/usr/bin/env bash
# Comparison (c) of docs/results.md: `dae probe` of the equal-total-steps runs of
# scripts/study_cpu.sh, one probe per seed (baseline and DAE together, so a pair shares one
# recipe), JOBS at a time. scripts/study_report.py --probe reads the probe.json files.
# Usage: scripts/study_probe.sh FAMILY...   Env: RUNS (runs/study), OUT (runs/probe), SEEDS (3),
# SEED0 (0), JOBS (2), PROBE_ARGS (the probe recipe; see the default below), FD (0: --no-fd, e.g. for
# CIFAR-10 when its FD classifier is not trained yet), VARIANT (dae-a: the DAE arm probed beside
# the baseline; dae-e for the equal-encoder-steps arm, into its own OUT).
# Re-running skips seeds whose probe.json is complete, continues a killed probe (its finished
# runs are cached), and leaves one that another invocation is probing (flock on
# OUT/<family>/s<seed>.lock) to it; a missing run is reported, not probed.
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/study} OUT=${OUT:-runs/probe} SEEDS=${SEEDS:-3} SEED0=${SEED0:-0} JOBS=${JOBS:-2}
PROBE_ARGS=${PROBE_ARGS:---steps 1000 --lr 6e-4 -n 1000 --curve-n 200 --prior-steps 500 --precision auto}
[[ ${FD:-1} == 0 ]] && PROBE_ARGS="$PROBE_ARGS --no-fd"
DAE=${DAE:-.venv/bin/dae}
source scripts/study_lib.sh
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
one() {  # family seed
  local out=$OUT/$1/s$2 runs=("$RUNS/$1-baseline-s$2" "$RUNS/$1-${VARIANT:-dae-a}-s$2")
  # probe.json is rewritten after each run: done only when it says so ("complete", dae probe)
  if grep -q '"complete": true' "$out/probe.json" 2>/dev/null; then echo "done: $out"; return; fi
  pair_job "$out" "${runs[@]}" || return 0
  mkdir -p "$out"
  # shellcheck disable=SC2086
  $DAE probe "${runs[@]}" --out "$out" $PROBE_ARGS >> "$out.log" 2>&1 || echo "FAILED: $out (see $out.log)"
  echo "end: $out"
}
export -f one; export RUNS OUT PROBE_ARGS DAE VARIANT
per_seed "$@"
exit
}

#!/usr/bin/env bash
# The whole seeded CPU study of docs/results.md, in priority order, one resumable command:
#   1. comparison (a) for mnist-vq, then cifar10-vq          (scripts/study_cpu.sh)
#   2. (c) the probe of mnist-vq's (a) encoders               (scripts/study_probe.sh)
#   3. (b) for mnist-vq                                       (scripts/study_cpu.sh)
#   4. GPT priors on mnist-vq's (a) codes, sample FD          (scripts/study_priors.sh;
#      DiT priors on the KL-AE's latents come with step 6)
#   5. latent statistics of the (a) runs: dae evaluate (recon, codebook, diagnostics, Lipschitz),
#      and their figures (dae report -> STUDY/report-<family>)
#   6. cifar10-vq's probe and (b), then the KL-AE families (and their latent statistics)
#   7. (e) equal encoder steps (DAE S + S), its probe (into PROBES-e) and latent statistics:
#      mnist-vq, then cifar10-vq; GPT priors on cifar10-vq's (a) codes; then (e) for mnist-kl
#   8. the tables, curves and paired tests                    (scripts/study_report.py)
# Every step skips what is finished and continues what is half done, so a killed study is resumed
# by running this again. Env: STUDY (runs/study), PROBES (runs/probe), PRIORS (runs/priors),
# FAMILIES (the families to run, default all: mnist-vq cifar10-vq mnist-kl), N_EVAL (2000 test
# images for dae evaluate), and what the step scripts read (S, LR, SEEDS, JOBS, PROBE_ARGS, PRIOR_ARGS, ...).
# Usage: nohup scripts/study_all.sh > runs/study.log 2>&1 &
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
STUDY=${STUDY:-runs/study} PROBES=${PROBES:-runs/probe} PRIORS=${PRIORS:-runs/priors}
FAMILIES=${FAMILIES:-mnist-vq cifar10-vq mnist-kl} N_EVAL=${N_EVAL:-2000}
DAE=${DAE:-.venv/bin/dae} PYTHON=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
want() { [[ " $FAMILIES " == *" $1 "* ]]; }
train() { if want "$2"; then ONLY=$1 OUT=$STUDY scripts/study_cpu.sh "$2"; fi; }
probe() { if want "$1"; then RUNS=$STUDY OUT=$PROBES scripts/study_probe.sh "$1"; fi; }
probe_e() { if want "$1"; then VARIANT=dae-e RUNS=$STUDY OUT=$PROBES-e scripts/study_probe.sh "$1"; fi; }
priors() { if want "$1"; then RUNS=$STUDY OUT=$PRIORS scripts/study_priors.sh "$1"; fi; }
# family [variant...]: latent statistics of each finished run of these variants that has none
# yet (default: (a)'s baseline and dae-a)
evaluate() {
  local r v fam=$1
  want "$fam" || return 0
  shift
  (($#)) || set -- baseline dae-a
  for v in "$@"; do for r in "$STUDY/$fam-$v"-s*; do
    [[ -f $r/model.safetensors && ! -f $r.evaluated ]] || continue
    echo "evaluate: $r"
    $DAE evaluate "$r" --metrics recon,codebook,diagnostics,lipschitz -n "$N_EVAL" \
      > "$r.eval.log" 2>&1 && touch "$r.evaluated" || echo "FAILED: dae evaluate $r (see $r.eval.log)"
  done; done
}
figures() {  # family: `dae report` over its evaluated (a) runs (Lipschitz, codebook figures)
  local r runs=()
  want "$1" || return 0
  for r in "$STUDY/$1"-{baseline,dae-a}-s*; do [[ -f $r.evaluated ]] && runs+=("$r"); done
  if ((${#runs[@]})); then
    $DAE report "${runs[@]}" --out "$STUDY/report-$1" > "$STUDY/report-$1.log" 2>&1 ||
      echo "FAILED: dae report of $1 (see $STUDY/report-$1.log)"
  fi
}
train a mnist-vq
train a cifar10-vq
probe mnist-vq
train b mnist-vq
priors mnist-vq
evaluate mnist-vq
figures mnist-vq
FD=0 probe cifar10-vq
train b cifar10-vq
train a mnist-kl
probe mnist-kl
train b mnist-kl
priors mnist-kl
evaluate cifar10-vq
figures cifar10-vq
evaluate mnist-kl
figures mnist-kl
train e mnist-vq
probe_e mnist-vq
train e cifar10-vq
FD=0 probe_e cifar10-vq
evaluate mnist-vq dae-e
evaluate cifar10-vq dae-e
priors cifar10-vq
train e mnist-kl
probe_e mnist-kl
evaluate mnist-kl dae-e
shopt -s nullglob
$PYTHON scripts/study_report.py "$STUDY" --out "$STUDY/report" \
  --probe "$PROBES"/*/s*/probe.json "$PROBES"-e/*/s*/probe.json --priors "$PRIORS"/*/s*/results.json
exit
}

#!/usr/bin/env bash
# Priors on comparison (a)'s latents (docs/results.md): per seed, `dae compare-priors` trains the
# same small GPT on the baseline's and on DAE's codes for a fixed budget, samples N images from
# each and scores them with the FD classifier. VQ families only.
# Usage: scripts/study_priors.sh FAMILY...   Env: RUNS (runs/study), OUT (runs/priors), SEEDS (3),
# SEED0 (0), JOBS (2), STEPS (1500), N (2000), PRIOR_ARGS (extra --set overrides of the GPT preset),
# SCORE (feature net of the sample scores; default classifier:<dataset>, none: no scores).
# Re-running skips finished seeds, leaves one that another invocation trains (flock on
# OUT/<family>/s<seed>.lock) to it, and resumes the rest (compare-priors' own resume).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/study} OUT=${OUT:-runs/priors} SEEDS=${SEEDS:-3} SEED0=${SEED0:-0} JOBS=${JOBS:-2}
STEPS=${STEPS:-1500} N=${N:-2000} PRIOR_ARGS=${PRIOR_ARGS:-}
DAE=${DAE:-.venv/bin/dae}
source scripts/study_lib.sh
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
# A 2-layer GPT of width 128: small enough for a CPU core, the same for every latent.
GPT="--set model.n_layer=2 --set model.n_head=4 --set model.n_embd=128 --set train.steps=$STEPS
  --set train.ckpt_every=500 --set train.progress=false --set train.tensorboard=false
  --set optim.warmup_steps=100 $PRIOR_ARGS"
one() {  # family seed
  local fam=$1 seed=$2 data
  case $fam in mnist-vq) data=mnist ;; cifar10-vq) data=cifar10 ;;
    *) echo "no GPT prior for $fam (VQ families only)"; return ;; esac
  local out=$OUT/$fam/s$seed base=$RUNS/$fam-baseline-s$seed dae=$RUNS/$fam-dae-a-s$seed
  if [[ -f $out/results.json ]]; then echo "done: $out"; return; fi
  pair_job "$out" "$base" "$dae" || return 0
  # shellcheck disable=SC2086
  $DAE compare-priors "$base" "$dae" configs/prior_gpt_cifar10.yaml --out "$out" --n "$N" \
    --score "${SCORE:-classifier:$data}" --seed "$seed" --set data.name=$data --set train.seed=$seed $GPT > "$out.log" 2>&1 \
    || echo "FAILED: $out (see $out.log)"
  echo "end: $out"
}
export -f one; export RUNS OUT N GPT DAE SCORE
per_seed "$@"
